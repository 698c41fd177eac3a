"""The sans-I/O framing: round trips, byte-at-a-time feeding, limits and order."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.protocol.framing import MAX_CHUNK, FramingError, PacketReader, frame


def framed(payloads: list[bytes]) -> bytes:
    out = bytearray()
    seq = 0
    for p in payloads:
        seq = frame(p, seq, out)
    return bytes(out)


def drain(reader: PacketReader) -> list[bytes]:
    got = []
    while (pkt := reader.next_packet()) is not None:
        got.append(pkt)
    return got


@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(1, 50))
def test_round_trip_in_any_chunking(payloads: list[bytes], step: int) -> None:
    data = framed(payloads)
    reader = PacketReader()
    got = []
    for i in range(0, len(data), step):
        reader.feed(data[i : i + step])
        got += drain(reader)
    assert got == payloads


def test_payload_of_exactly_max_chunk_gets_an_empty_terminator() -> None:
    payload = b"x" * MAX_CHUNK
    data = framed([payload])
    assert len(data) == 4 + MAX_CHUNK + 4  # the 0xFFFFFF chunk, then an empty one
    reader = PacketReader(max_packet=MAX_CHUNK + 10)
    reader.feed(data)
    assert reader.next_packet() == payload


def test_multi_chunk_payload_reassembles() -> None:
    payload = bytes(range(256)) * (MAX_CHUNK // 256 + 10)
    reader = PacketReader(max_packet=len(payload))
    reader.feed(framed([payload]))
    assert reader.next_packet() == payload


def test_absurd_length_is_refused_before_buffering() -> None:
    reader = PacketReader(max_packet=1024)
    reader.feed(b"\xff\xff\xfe\x00")  # announces ~16 MiB
    with pytest.raises(FramingError, match="exceeds"):
        reader.next_packet()


def test_out_of_order_sequence_is_refused() -> None:
    reader = PacketReader()
    reader.feed(b"\x01\x00\x00\x05x")
    with pytest.raises(FramingError, match="out of order"):
        reader.next_packet()


@given(st.binary(max_size=200))
def test_any_input_parses_or_raises_framing_error(data: bytes) -> None:
    reader = PacketReader(max_packet=4096)
    reader.feed(data)
    try:
        drain(reader)
    except FramingError:
        pass
