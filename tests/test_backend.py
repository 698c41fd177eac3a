"""proxy.backend.Backend without a server: pipelined commands and a deferred BEGIN, against
canned replies in an in-memory stream."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from proxy.backend import COM_QUERY, Backend
from proxy.protocol.codec import lenenc_int, make_eof, make_err, make_ok, make_text_row
from proxy.protocol.errors import BackendError
from proxy.protocol.framing import PacketReader, frame

BEGIN = bytes((COM_QUERY,)) + b"BEGIN"
SELECT = bytes((COM_QUERY,)) + b"SELECT 1"
DEFINITION = b"\x03def" + b"\x00" * 5 + b"\x0c" + b"\x00" * 12


class Sink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.transport = SimpleNamespace(abort=lambda: None)

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def reply(*packets: bytes) -> bytes:
    out, seq = bytearray(), 1
    for p in packets:
        seq = frame(p, seq, out)
    return bytes(out)


def one_row(value: bytes) -> bytes:
    return reply(lenenc_int(1), DEFINITION, make_eof(), make_text_row([value]), make_eof())


def backend_with(*replies: bytes) -> tuple[Backend, Sink]:
    reader, sink = asyncio.StreamReader(), Sink()
    for r in replies:
        reader.feed_data(r)
    conn = SimpleNamespace(
        _reader=reader, _writer=sink, get_server_info=lambda: "10.11", server_thread_id=(7,)
    )
    return Backend(conn), sink  # type: ignore[arg-type]


def commands(written: bytes) -> list[bytes]:
    r = PacketReader(max_packet=1 << 20)
    r.expected_seq = PacketReader.ANY_SEQ
    r.feed(written)
    out = []
    while (p := r.next_packet()) is not None:
        out.append(p)
        r.expected_seq = 0  # every command starts at sequence id 0
    return out


def test_pipelined_commands_go_out_in_one_write_each_at_sequence_zero() -> None:
    async def go() -> None:
        b, sink = backend_with(reply(make_ok()), one_row(b"x"))
        b.send(BEGIN, SELECT)
        assert len(sink.writes) == 1 and commands(sink.writes[0]) == [BEGIN, SELECT]
        assert (await b.read())[0] == 0x00
        b.next_reply()  # the second reply starts again at sequence id 1
        assert await b.read_rows() == [[b"x"]]

    asyncio.run(go())


def test_deferred_begin_rides_with_the_next_command_and_its_ok_is_consumed() -> None:
    async def go() -> None:
        b, sink = backend_with(reply(make_ok(status=3)), one_row(b"v"), reply(make_ok()))
        b.defer(BEGIN)
        assert sink.writes == []
        assert b.next_buffered() is None
        assert await b.query_rows(b"SELECT 1") == [[b"v"]]
        assert commands(sink.writes[0]) == [BEGIN, SELECT]
        assert (await b.simple_command(COM_QUERY, b"COMMIT"))[0] == 0x00  # still in step
        assert len(sink.writes) == 2 and commands(sink.writes[1]) == [bytes((3,)) + b"COMMIT"]

    asyncio.run(go())


@pytest.mark.parametrize(
    "after", [reply(make_ok()), reply(make_err(1205, "HY000", "lock")), one_row(b"v")]
)
def test_a_failed_deferred_begin_fails_the_next_command_after_draining_its_reply(
    after: bytes,
) -> None:
    async def go() -> None:
        begin_err = reply(make_err(1399, "XAE07", "XAER_RMFAIL"))
        b, _ = backend_with(begin_err, after, reply(make_ok(affected_rows=5)))
        b.defer(BEGIN)
        with pytest.raises(BackendError) as e:
            await b.query_rows(b"SELECT 1")
        assert e.value.code == 1399
        ok = await b.simple_command(COM_QUERY, b"ROLLBACK")  # the stream is still in step
        assert ok == make_ok(affected_rows=5)

    asyncio.run(go())
