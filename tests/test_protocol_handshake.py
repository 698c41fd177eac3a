"""HandshakeResponse42 parsing: the paper's two extra fields, attributes, malformed input."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mysql_mimic.types import Capabilities as C

from proxy.connection import SERVER_CAPABILITIES
from proxy.protocol.codec import lenenc_str
from proxy.protocol.handshake import (
    HandshakeError,
    HandshakeResponse42,
    SSLRequest,
    hr42_trailer,
    parse_handshake_response,
)

CAPS = (
    C.CLIENT_PROTOCOL_41
    | C.CLIENT_SECURE_CONNECTION
    | C.CLIENT_PLUGIN_AUTH
    | C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | C.CLIENT_CONNECT_ATTRS
    | C.CLIENT_CONNECT_WITH_DB
)


def hr41(attrs: dict[str, str] | None = None, db: str = "shop") -> bytes:
    attr_bytes = b"".join(
        lenenc_str(k.encode()) + lenenc_str(v.encode()) for k, v in (attrs or {}).items()
    )
    return b"".join(
        (
            int(CAPS).to_bytes(4, "little"),
            (1 << 24).to_bytes(4, "little"),
            bytes((45,)),
            bytes(23),
            b"alice\x00",
            lenenc_str(b"\x01" * 32),
            db.encode() + b"\x00",
            b"caching_sha2_password\x00",
            lenenc_str(attr_bytes),
        )
    )


def test_hr41_from_a_stock_client_has_no_keys() -> None:
    r = parse_handshake_response(SERVER_CAPABILITIES, hr41({"_client_name": "libmariadb"}))
    assert isinstance(r, HandshakeResponse42)
    assert (r.username, r.database, r.client_plugin) == ("alice", "shop", "caching_sha2_password")
    assert r.connect_attrs == {"_client_name": "libmariadb"}
    assert r.cryptdb_key is None and r.old_cryptdb_key is None


def test_hr42_fields_follow_the_attributes() -> None:
    data = hr41({"a": "b"}) + hr42_trailer(b"new key \x00 bytes", b"old key")
    r = parse_handshake_response(SERVER_CAPABILITIES, data)
    assert isinstance(r, HandshakeResponse42)
    assert r.cryptdb_key == b"new key \x00 bytes"
    assert r.old_cryptdb_key == b"old key"
    assert "new key" not in repr(r) and "old key" not in repr(r)


def test_only_the_new_key() -> None:
    data = hr41() + lenenc_str(b"k")
    r = parse_handshake_response(SERVER_CAPABILITIES, data)
    assert isinstance(r, HandshakeResponse42)
    assert (r.cryptdb_key, r.old_cryptdb_key) == (b"k", None)


def test_ssl_request_is_recognised() -> None:
    data = hr41()[:32]
    assert isinstance(
        parse_handshake_response(SERVER_CAPABILITIES | C.CLIENT_SSL, data), SSLRequest
    )


@pytest.mark.parametrize("cut", [33, 40, 60, 70])
def test_truncated_responses_are_refused(cut: int) -> None:
    with pytest.raises(HandshakeError):
        parse_handshake_response(SERVER_CAPABILITIES, hr41({"k": "v"})[:cut] + b"\xfe")


def test_trailing_garbage_is_refused() -> None:
    with pytest.raises(HandshakeError):
        parse_handshake_response(SERVER_CAPABILITIES, hr41() + hr42_trailer(b"a", b"b") + b"x")


@given(st.binary(max_size=300))
def test_fuzz_parses_or_raises_handshake_error(data: bytes) -> None:
    try:
        parse_handshake_response(SERVER_CAPABILITIES, data)
    except HandshakeError:
        pass
