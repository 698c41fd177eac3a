"""The HR42 key fields on the client side: normalising keys and keeping them out of sight.

A key is user-chosen material (the paper's "user password", 用户口令) that the proxy uses to
unlock the keystore. It travels in the two trailing fields of HandshakeResponse42; this module
builds that trailer once and hides it behind an object that never prints its content.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

from proxy.protocol.handshake import SSL_REQUEST_LENGTH, hr42_trailer

KeyLike = bytes | bytearray | memoryview | str


class Secret:
    """Bytes that never show up in repr, str, logs, tracebacks or pickles."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a secret cannot be pickled")


def key_bytes(value: KeyLike | None, what: str) -> bytes | None:
    """A key as bytes (str is UTF-8 encoded); errors name the argument, never the value."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8")
    elif isinstance(value, bytearray | memoryview):
        value = bytes(value)
    elif not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} is empty")
    return value


def make_trailer(cryptdb_key: KeyLike | None, old_cryptdb_key: KeyLike | None) -> Secret | None:
    """The HR42 trailer for these keys, or None for a plain HandshakeResponse41."""
    key = key_bytes(cryptdb_key, "cryptdb_key")
    old = key_bytes(old_cryptdb_key, "old_cryptdb_key")
    if old is not None and key is None:
        # The paper: old-cryptdbkey only means something as the key being replaced.
        raise ValueError("old_cryptdb_key needs cryptdb_key (the new key)")
    if key is None:
        return None
    return Secret(hr42_trailer(key, old))


def is_loopback(peer: object) -> bool:
    """True for a Unix socket or a loopback IP peer address (as getpeername() gives it)."""
    if isinstance(peer, str | bytes):  # AF_UNIX
        return True
    if isinstance(peer, tuple) and peer:
        try:
            return ipaddress.ip_address(str(peer[0]).split("%")[0]).is_loopback
        except ValueError:
            return False
    return False


class HR42Writer:
    """Mixin for PyMySQL/aiomysql connections: turns the handshake response into an HR42.

    Both drivers send the HandshakeResponse41 with one `write_packet` call after the
    server greeting; with TLS an SSLRequest (exactly 32 bytes) goes first. The subclass sets
    `_hr42_pending` for the duration of its authentication step, and the first packet longer
    than an SSLRequest written meanwhile gets the trailer appended.
    """

    _hr42_trailer: Secret | None = None
    _hr42_pending: bool = False
    _hr42_allow_insecure: bool = False

    def _hr42_setup(
        self,
        cryptdb_key: KeyLike | None,
        old_cryptdb_key: KeyLike | None,
        allow_insecure_transport: bool,
    ) -> None:
        self._hr42_trailer = make_trailer(cryptdb_key, old_cryptdb_key)
        self._hr42_allow_insecure = allow_insecure_transport

    def write_packet(self, payload: bytes) -> None:
        if self._hr42_pending and len(payload) > SSL_REQUEST_LENGTH:
            self._hr42_pending = False
            if self._hr42_trailer is not None:
                self._hr42_check_channel()
                payload = payload + self._hr42_trailer.reveal()
        super().write_packet(payload)  # type: ignore[misc]

    def _hr42_check_channel(self) -> None:
        # The protocol does not protect the HR42 fields: they go in cleartext without TLS,
        # and to whoever answers with unverified TLS. Only this machine (loopback, Unix
        # socket) or a server whose certificate was verified may receive them.
        if self._hr42_allow_insecure or is_loopback(self._hr42_peer()):
            return
        ctx = self._hr42_tls_context()
        if getattr(self, "_secure", False) and ctx is not None:
            if ctx.verify_mode == ssl.CERT_REQUIRED:
                return
        from pymysql.constants import CR
        from pymysql.err import OperationalError

        raise OperationalError(
            CR.CR_SSL_CONNECTION_ERROR,
            "refusing to send the cryptdb key to a remote server without verified TLS: "
            "give ssl= a context that verifies the server certificate, or pass "
            "allow_insecure_transport=True",
        )

    def _hr42_peer(self) -> object:
        raise NotImplementedError

    def _hr42_tls_context(self) -> ssl.SSLContext | None:
        raise NotImplementedError
