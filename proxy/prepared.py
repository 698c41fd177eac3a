"""Server-side prepared statements, emulated by the proxy.

PREPARE keeps the text and the positions of its `?` placeholders (from sqlglot's tokenizer,
so a `?` inside a string or comment is not one). EXECUTE splices the parameters in as SQL
literals and runs the text like a COM_QUERY, through the rewriter when it touches an
encrypted table: the backend never sees a prepared statement, so encrypted columns get the
same treatment either way. The text result set is converted to binary rows on its way out
(`BinaryResults`). Cursors (COM_STMT_FETCH) are not offered: results come back whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from proxy.protocol.binary import binary_row
from proxy.protocol.codec import ColumnDefinition, is_eof, parse_text_row, read_lenenc_int
from proxy.protocol.errors import MysqlError

ER_UNKNOWN_STMT_HANDLER = (1243, "HY000")
ER_PS_MANY_PARAM = (1390, "HY000")
MAX_PARAMS = 65535
MAX_STATEMENTS = 16382  # MariaDB's max_prepared_stmt_count default
SERVER_MORE_RESULTS_EXISTS = 0x0008


def placeholders(sql: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of every `?` placeholder, in order. Tokenized as latin-1,
    so offsets are byte offsets in any ASCII-compatible charset (quotes and `?` are ASCII)."""
    try:
        tokens = MySQL().tokenize(sql.decode("latin-1"))
    except SqlglotError:
        raise MysqlError(1064, "42000", "cannot parse the statement to prepare") from None
    return [(t.start, t.end + 1) for t in tokens if t.token_type == TokenType.PLACEHOLDER]


@dataclass
class Prepared:
    sql: bytes
    slots: list[tuple[int, int]]
    types: list[tuple[int, bool]] = field(default_factory=list)
    long_data: dict[int, bytes] = field(default_factory=dict)

    def bind(self, literals: list[str]) -> bytes:
        out, last = [], 0
        for (start, end), lit in zip(self.slots, literals, strict=True):
            out += [self.sql[last:start], lit.encode("utf-8")]
            last = end
        out.append(self.sql[last:])
        return b"".join(out)


class Statements:
    """One session's prepared statements."""

    def __init__(self) -> None:
        self._by_id: dict[int, Prepared] = {}
        self._next = 1

    def prepare(self, sql: bytes) -> tuple[int, Prepared]:
        slots = placeholders(sql)
        if len(slots) > MAX_PARAMS:
            raise MysqlError(*ER_PS_MANY_PARAM, "Prepared statement contains too many placeholders")
        if len(self._by_id) >= MAX_STATEMENTS:
            raise MysqlError(1461, "42000", "Too many prepared statements in this session")
        stmt_id, self._next = self._next, (self._next % 0xFFFFFFFF) + 1
        self._by_id[stmt_id] = p = Prepared(sql, slots)
        return stmt_id, p

    def get(self, stmt_id: int, command: str) -> Prepared:
        p = self._by_id.get(stmt_id)
        if p is None:
            raise MysqlError(
                *ER_UNKNOWN_STMT_HANDLER,
                f"Unknown prepared statement handler ({stmt_id}) given to {command}",
            )
        return p

    def find(self, stmt_id: int) -> Prepared | None:
        return self._by_id.get(stmt_id)

    def close(self, stmt_id: int) -> None:
        self._by_id.pop(stmt_id, None)

    def clear(self) -> None:
        self._by_id.clear()


class BinaryResults:
    """Wraps the client stream during an EXECUTE: text rows become binary rows, every other
    packet (OK, ERR, column count and definitions, EOF) goes through unchanged."""

    def __init__(self, client: object, deprecate_eof: bool) -> None:
        self._client = client
        self._deprecate_eof = deprecate_eof
        self._columns: list[ColumnDefinition] = []
        self._expect = "first"  # first | defs | eof | rows
        self._count = 0

    @property
    def out(self) -> bytearray:
        return self._client.out  # type: ignore[attr-defined,no-any-return]

    async def flush(self) -> None:
        await self._client.flush()  # type: ignore[attr-defined]

    async def maybe_flush(self) -> None:
        await self._client.maybe_flush()  # type: ignore[attr-defined]

    def write(self, pkt: bytes) -> None:
        state = self._expect
        if state == "first":
            if pkt[0] not in (0x00, 0xFF, 0xFB):
                count, _ = read_lenenc_int(pkt, 0)
                self._count, self._columns = count or 0, []
                self._expect = "defs"
        elif state == "defs":
            self._columns.append(ColumnDefinition.decode(pkt))
            if len(self._columns) == self._count:
                self._expect = "rows" if self._deprecate_eof else "eof"
        elif state == "eof":
            self._expect = "rows"
        elif pkt[0] == 0xFF or (pkt[0] == 0xFE and len(pkt) < 9) or is_eof(pkt):
            self._expect = "first"  # the end of this result (more may follow)
        else:
            pkt = binary_row(self._columns, parse_text_row(pkt, self._count))
        self._client.write(pkt)  # type: ignore[attr-defined]
