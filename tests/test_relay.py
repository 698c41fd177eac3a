"""proxy.relay without sockets: a backend response relayed to a client stream must give the
same bytes whether packets move verbatim (PacketStream.relay -> Backend.forward) or one by
one, for either EOF style, multi-results, split (16 MiB) rows, rows that look like EOF, errors
mid-result and responses arriving in pieces."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest
from mysql_mimic.types import Capabilities

from proxy.backend import Backend
from proxy.protocol.codec import lenenc_int, make_eof, make_err, make_ok, make_text_row
from proxy.protocol.framing import MAX_CHUNK, PacketReader, frame
from proxy.relay import SERVER_MORE_RESULTS_EXISTS, relay_response
from proxy.stream import PacketStream
from tests.test_backend import DEFINITION, Sink

DEPRECATE_EOF = int(Capabilities.CLIENT_DEPRECATE_EOF)


def result_set(rows: list[list[bytes | None]], status: int = 2, columns: int = 1) -> list[bytes]:
    return [
        lenenc_int(columns),
        *[DEFINITION] * columns,
        make_eof(),
        *[make_text_row(r) for r in rows],
        make_eof(status=status),
    ]


RESPONSES = {
    "ok": [make_ok(affected_rows=3, status=2)],
    "err": [make_err(1146, "42S02", "no such table")],
    "rows": result_set([[b"a"], [None], [b"x" * 300]]),
    "eof-like row": result_set([[b"\xfe" * 4, b"y"]], columns=2),  # a row starting 0xFE
    "many columns": result_set([[b"v%d" % i for i in range(40)]] * 50, columns=40),
    "split row": result_set([[b"s" * (MAX_CHUNK + 10)], [b"after"]]),
    "exact chunk": result_set([[b"e" * (MAX_CHUNK - 4)]]),  # payload of exactly 0xFFFFFF
    "error mid-rows": result_set([[b"1"], [b"2"]])[:-1] + [make_err(1317, "70100", "killed")],
    "multi": result_set([[b"1"]], status=2 | SERVER_MORE_RESULTS_EXISTS)
    + [make_ok(affected_rows=1, status=2 | SERVER_MORE_RESULTS_EXISTS)]
    + result_set([[b"2"], [b"3"]]),
}


def wire(packets: list[bytes]) -> bytes:
    """As the backend sends it: one reply, sequence ids from 1."""
    out, seq = bytearray(), 1
    for p in packets:
        seq = frame(p, seq, out)
    return bytes(out)


class OneByOne:
    """A client without `relay`: the packet-by-packet path, the reference."""

    def __init__(self, stream: PacketStream) -> None:
        self.stream = stream
        self.write = stream.write
        self.flush = stream.flush
        self.maybe_flush = stream.maybe_flush

    @property
    def out(self) -> bytearray:
        return self.stream.out


async def relayed(data: bytes, caps: int, fast: bool, chunk: int | None, start: int) -> bytes:
    reader, sink = asyncio.StreamReader(), Sink()
    conn = SimpleNamespace(
        _reader=reader, _writer=None, get_server_info=lambda: "x", server_thread_id=(1,)
    )
    backend = Backend(conn)  # type: ignore[arg-type]
    backend._packets.expected_seq = PacketReader.ANY_SEQ
    writer = SimpleNamespace(
        write=sink.write,
        transport=SimpleNamespace(is_closing=lambda: False, get_write_buffer_size=lambda: 0),
    )
    stream = PacketStream(reader, writer)  # type: ignore[arg-type]
    stream._seq = start  # the client's command took sequence ids up to start - 1
    stream.set_max_packet(1 << 30)

    async def feed() -> None:
        if chunk is None:
            reader.feed_data(data)
            return
        for i in range(0, len(data), chunk):
            reader.feed_data(data[i : i + chunk])
            await asyncio.sleep(0)

    feeder = asyncio.ensure_future(feed())
    client = stream if fast else OneByOne(stream)
    await relay_response(backend, client, caps)  # type: ignore[arg-type]
    await feeder
    await stream.flush()
    return b"".join(sink.writes)


@pytest.mark.parametrize("name", list(RESPONSES))
@pytest.mark.parametrize("caps", [0, DEPRECATE_EOF])
@pytest.mark.parametrize("start", [1, 2])  # 2: a command split over two packets
def test_verbatim_relay_gives_the_packet_by_packet_bytes(name: str, caps: int, start: int) -> None:
    data = wire(RESPONSES[name])
    r = random.Random(f"{name}{caps}{start}")
    small = 1 + r.randrange(7) if len(data) < 1 << 16 else 1 << 16  # big: 64 KiB reads
    for chunk in (None, small, 4096):
        fast = asyncio.run(relayed(data, caps, True, chunk, start))
        slow = asyncio.run(relayed(data, caps, False, chunk, start))
        assert fast == slow, (name, caps, chunk)
        # and it is well-formed for the client: consecutive sequence ids from `start`
        reader = PacketReader(max_packet=1 << 30)
        reader.expected_seq = start
        reader.feed(fast)
        while reader.next_packet() is not None:
            pass
        assert reader.buffered == 0


def test_forward_stops_before_eof_err_and_split_packets_and_checks_sequence() -> None:
    reader = PacketReader(max_packet=1 << 30)
    reader.expected_seq = 3
    rows = [make_text_row([b"r%d" % i]) for i in range(3)]
    data = bytearray()
    seq = 3
    for p in [*rows, make_eof(), rows[0]]:
        seq = frame(p, seq, data)
    reader.feed(bytes(data))
    out = bytearray()
    assert reader.forward(out, 10, 2) == (12, 2)  # renumbered, limit honoured
    assert reader.forward(out, 12, 99) == (13, 1)  # stops at the EOF
    assert reader.forward(out, 13, 99) == (13, 0)
    assert reader.next_packet() == make_eof()
    check = PacketReader()
    check.expected_seq = 10
    check.feed(bytes(out))
    assert [check.next_packet() for _ in range(3)] == rows
    bad = PacketReader()
    bad.expected_seq = 5
    bad.feed(wire([rows[0]]))  # sequence id 1, not 5
    with pytest.raises(ValueError, match="out of order"):
        bad.forward(bytearray(), 0, 9)
