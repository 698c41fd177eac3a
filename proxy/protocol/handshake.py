"""The connection phase's packets: HandshakeV10 out, SSLRequest / HandshakeResponse42 in.

HandshakeResponse42 (seed 004) is HandshakeResponse41 followed by two fields the paper
writes as `string[n] cryptdb-key` and `string[n] old-cryptdbkey`. Two variable-length
strings in a row need a length each to be told apart, so both are length-encoded strings
(`lenenc-str`), as every other variable field after the auth response is; a missing field
is the same as an empty one. Stock clients send neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mysql_mimic.types import Capabilities

from proxy.protocol.codec import lenenc_str, read_lenenc_int, read_lenenc_str, read_null_str

SSL_REQUEST_LENGTH = 32


class HandshakeError(ValueError):
    """The handshake response is malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SSLRequest:
    capabilities: int
    max_packet_size: int
    collation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeResponse42:
    capabilities: int
    max_packet_size: int
    collation: int
    username: str
    auth_response: bytes
    database: str | None = None
    client_plugin: str | None = None
    connect_attrs: dict[str, str] = field(default_factory=dict)
    cryptdb_key: bytes | None = field(default=None, repr=False)
    old_cryptdb_key: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never show keys or auth data in logs or tracebacks
        return f"HandshakeResponse42(username={self.username!r}, database={self.database!r})"


def make_handshake_v10(
    *,
    server_version: str,
    connection_id: int,
    nonce: bytes,
    capabilities: int,
    collation: int,
    status: int,
    auth_plugin: str,
) -> bytes:
    assert len(nonce) == 20
    return b"".join(
        (
            b"\x0a",
            server_version.encode() + b"\x00",
            connection_id.to_bytes(4, "little"),
            nonce[:8],
            b"\x00",
            (capabilities & 0xFFFF).to_bytes(2, "little"),
            bytes((collation & 0xFF,)),
            status.to_bytes(2, "little"),
            ((capabilities >> 16) & 0xFFFF).to_bytes(2, "little"),
            bytes((len(nonce) + 1,)),
            bytes(10),
            nonce[8:] + b"\x00",
            auth_plugin.encode() + b"\x00",
        )
    )


def parse_handshake_response(
    server_capabilities: int, data: bytes
) -> SSLRequest | HandshakeResponse42:
    try:
        return _parse(server_capabilities, data)
    except (IndexError, ValueError, UnicodeDecodeError) as e:
        raise HandshakeError("malformed handshake response") from e


def _parse(server_capabilities: int, data: bytes) -> SSLRequest | HandshakeResponse42:
    if len(data) < SSL_REQUEST_LENGTH:
        raise HandshakeError("handshake response too short")
    client_caps = int.from_bytes(data[0:4], "little")
    if not client_caps & Capabilities.CLIENT_PROTOCOL_41:
        raise HandshakeError("clients older than protocol 4.1 are not supported")
    caps = client_caps & server_capabilities
    max_packet = int.from_bytes(data[4:8], "little")
    collation = data[8]
    if len(data) == SSL_REQUEST_LENGTH:
        return SSLRequest(capabilities=caps, max_packet_size=max_packet, collation=collation)

    pos = SSL_REQUEST_LENGTH
    raw_user, pos = read_null_str(data, pos)
    if caps & Capabilities.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth, pos = read_lenenc_str(data, pos)
        auth = auth or b""
    elif caps & Capabilities.CLIENT_SECURE_CONNECTION:
        n = data[pos]
        auth = data[pos + 1 : pos + 1 + n]
        if len(auth) != n:
            raise HandshakeError("truncated auth response")
        pos += 1 + n
    else:
        auth, pos = read_null_str(data, pos)

    database = None
    if caps & Capabilities.CLIENT_CONNECT_WITH_DB:
        raw_db, pos = read_null_str(data, pos)
        database = raw_db.decode() or None

    plugin = None
    if caps & Capabilities.CLIENT_PLUGIN_AUTH:
        if pos >= len(data):
            raise HandshakeError("missing auth plugin name")
        end = data.find(b"\x00", pos)
        if end < 0:  # some clients omit the terminator at the end of the packet
            end = len(data)
        plugin = data[pos:end].decode() or None
        pos = end + 1

    attrs: dict[str, str] = {}
    if caps & Capabilities.CLIENT_CONNECT_ATTRS and pos < len(data):
        total, pos = read_lenenc_int(data, pos)
        end = pos + (total or 0)
        if end > len(data):
            raise HandshakeError("truncated connection attributes")
        while pos < end:
            k, pos = read_lenenc_str(data, pos)
            v, pos = read_lenenc_str(data, pos)
            attrs[(k or b"").decode()] = (v or b"").decode()
        if pos != end:
            raise HandshakeError("connection attributes overrun their length")

    key = old_key = None
    if pos < len(data):
        key, pos = read_lenenc_str(data, pos)
    if pos < len(data):
        old_key, pos = read_lenenc_str(data, pos)
    if pos != len(data):
        raise HandshakeError("unexpected bytes after the handshake response")

    return HandshakeResponse42(
        capabilities=caps,
        max_packet_size=max_packet,
        collation=collation,
        username=raw_user.decode(),
        auth_response=auth,
        database=database,
        client_plugin=plugin,
        connect_attrs=attrs,
        cryptdb_key=key or None,
        old_cryptdb_key=old_key or None,
    )


def hr42_trailer(cryptdb_key: bytes | None, old_cryptdb_key: bytes | None) -> bytes:
    """The two fields a client appends to its HandshakeResponse41 to make it an HR42."""
    return lenenc_str(cryptdb_key or b"") + lenenc_str(old_cryptdb_key or b"")
