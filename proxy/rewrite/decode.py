"""Result decoding: backend rows (ciphertexts) -> plaintext rows, column metadata, text rows.

    decoder = plan.decoder                      # None for statements without a result set
    decoder.definitions()                       # list[ColumnDefinition] for the client
    for values in decoder.decode(backend_rows): # backend_rows: sequences of bytes | None
        packet = decoder.text_row(values)       # Protocol::TextResultsetRow

A decoder may sort, cut (LIMIT / OFFSET) and drop hidden columns after decrypting, when the
backend cannot order the ciphertexts itself (encrypted text, aggregates, grouped queries).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from functools import cmp_to_key
from typing import Any

from onion import InvalidCiphertext
from onion.encoding import Kind
from proxy.protocol.codec import ColumnDefinition, make_text_row
from proxy.rewrite.context import Crypto
from proxy.schema import Column, Table

Reader = Callable[[Sequence[Any]], Any]

# MySQL column types and flags (include/mysql_com.h)
T_TINY, T_SHORT, T_LONG, T_LONGLONG, T_INT24 = 1, 2, 3, 8, 9
T_DATE, T_DATETIME, T_NEWDECIMAL, T_BLOB, T_VAR_STRING, T_STRING = 10, 12, 246, 252, 253, 254
T_NULL = 6
NOT_NULL_FLAG, PRI_KEY_FLAG, UNIQUE_KEY_FLAG, MULTIPLE_KEY_FLAG = 1, 2, 4, 8
BLOB_FLAG, UNSIGNED_FLAG, BINARY_FLAG, AUTO_INCREMENT_FLAG = 16, 32, 128, 512
NO_DEFAULT_VALUE_FLAG, PART_KEY_FLAG, NUM_FLAG = 4096, 16384, 32768
CHARSET_BINARY, CHARSET_UTF8MB4_CI, CHARSET_UTF8MB4_BIN = 63, 45, 46
_INT_TYPES = {  # bits: (type, display width signed, unsigned)
    8: (T_TINY, 4, 3),
    16: (T_SHORT, 6, 5),
    24: (T_INT24, 9, 8),
    32: (T_LONG, 11, 10),
    64: (T_LONGLONG, 20, 20),
}
NOT_FIXED_DEC = 39  # MariaDB's decimals for a string-valued expression


def int_digits(col: Column) -> int:
    """An integer column's decimal precision (MariaDB's decimal_precision())."""
    _, signed, unsigned = _INT_TYPES.get(col.bits, _INT_TYPES[64])
    return unsigned if col.kind == Kind.UINT else signed - 1


def decimal_length(precision: int, scale: int, unsigned: bool = False) -> int:
    """Display width of DECIMAL(precision, scale): digits, point, sign."""
    return precision + (1 if scale else 0) + (0 if unsigned else 1)


@dataclass(frozen=True)
class OutCol:
    """One result column as the client sees it."""

    name: str
    type: int
    length: int
    decimals: int = 0
    flags: int = 0
    charset: int = CHARSET_BINARY
    table: str = ""  # as the statement names it (an alias)
    org_name: str = ""
    fsp: int = 0
    org_table: str | None = None  # None: same as table
    expression: bool = False  # an aggregate: no database, table or column of origin
    # A plain column of a type the onions do not hold (FLOAT, VARBINARY, TIME, ...): its
    # type, length, flags and charset are the backend's own for this result column.
    relay: int | None = None

    def definition(self, schema: str = "") -> ColumnDefinition:
        return ColumnDefinition(
            name=self.name.encode(),
            type=self.type,
            length=self.length,
            flags=self.flags,
            decimals=self.decimals,
            charset=self.charset,
            schema=b"" if self.expression else schema.encode(),
            table=self.table.encode(),
            org_table=(self.table if self.org_table is None else self.org_table).encode(),
            org_name=self.org_name.encode(),
        )

    def relayed(self, backend: bytes, schema: str) -> ColumnDefinition:
        """The backend's definition of this column under the client's names."""
        d = self.definition(schema)
        b = ColumnDefinition.decode(backend)
        return replace(
            b,
            name=d.name,
            schema=d.schema,
            table=d.table,
            org_table=d.org_table,
            org_name=d.org_name,
        )

    def encode(self, value: Any) -> bytes | None:
        """A value in the text protocol's form."""
        if value is None:
            return None
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bool):
            return b"1" if value else b"0"
        if isinstance(value, int):
            return str(value).encode()
        if isinstance(value, Decimal):
            return format(value, "f").encode()
        if isinstance(value, dt.datetime):
            text = value.strftime("%Y-%m-%d %H:%M:%S")
            if self.fsp:
                text += "." + f"{value.microsecond:06d}"[: self.fsp]
            return text.encode()
        if isinstance(value, dt.date):
            return value.isoformat().encode()
        if isinstance(value, bytes):
            return value
        return str(value).encode()


def column_out(col: Column, name: str, table: str, source: Table | None = None) -> OutCol:
    """Result metadata of a plaintext column, from the schema, with the flags MariaDB sends
    for a column of `source` (a table; NUM is the client library's, not on the wire). Text is
    reported in utf8mb4 (the session's results charset), a binary collation by BINARY_FLAG,
    as MariaDB does. `table` is the name the statement uses (an alias)."""
    flags = 0 if col.nullable else NOT_NULL_FLAG
    org_table = None
    if source is not None:
        flags |= _key_flags(col, source)
        org_table = source.name
    k = col.kind
    if k in (Kind.INT, Kind.UINT):
        code, signed, unsigned = _INT_TYPES.get(col.bits, _INT_TYPES[64])
        length = unsigned if k == Kind.UINT else signed
        flags |= UNSIGNED_FLAG if k == Kind.UINT else 0
        return OutCol(name, code, length, 0, flags, CHARSET_BINARY, table, col.name, 0, org_table)
    if k == Kind.DECIMAL:
        return OutCol(
            name,
            T_NEWDECIMAL,
            decimal_length(col.precision, col.scale, col.unsigned),
            col.scale,
            flags | (UNSIGNED_FLAG if col.unsigned else 0),
            CHARSET_BINARY,
            table,
            col.name,
            0,
            org_table,
        )
    if k == Kind.DATE:
        return OutCol(
            name, T_DATE, 10, 0, flags | BINARY_FLAG, CHARSET_BINARY, table, col.name, 0, org_table
        )
    if k == Kind.DATETIME:
        return OutCol(
            name,
            T_DATETIME,
            19 + (col.fsp + 1 if col.fsp else 0),
            col.fsp,
            flags | BINARY_FLAG,
            CHARSET_BINARY,
            table,
            col.name,
            col.fsp,
            org_table,
        )
    flags |= BINARY_FLAG if col.binary_collation() else 0
    charset = CHARSET_UTF8MB4_CI
    if col.text == "char":
        code, length = T_STRING, 4 * col.length
    elif col.text == "varchar":
        code, length = T_VAR_STRING, 4 * col.length
    else:
        code, length, flags = T_BLOB, 4 * 65535, flags | BLOB_FLAG
    return OutCol(name, code, length, 0, flags, charset, table, col.name, 0, org_table)


def _key_flags(col: Column, table: Table) -> int:
    """The flags MariaDB derives from keys and defaults (sql/table.cc)."""
    flags = 0
    for ix in table.indexes:
        if col.id not in ix.columns:
            continue
        flags |= PART_KEY_FLAG
        if ix.primary:
            flags |= PRI_KEY_FLAG
        elif ix.columns[0] == col.id:
            unique = ix.unique and len(ix.columns) == 1
            flags |= UNIQUE_KEY_FLAG if unique else MULTIPLE_KEY_FLAG
    if col.auto_increment:
        flags |= AUTO_INCREMENT_FLAG
    elif not col.nullable and not col.has_default:
        flags |= NO_DEFAULT_VALUE_FLAG
    return flags


def constant_out(name: str, value: Any, text: str = "") -> OutCol:
    """A constant of the select list as MariaDB describes it (Item_int, Item_decimal,
    Item_string in a utf8mb4 connection, Item_null): never NULL but for NULL itself."""
    if value is None:
        return OutCol(name, T_NULL, 0, flags=BINARY_FLAG, expression=True)
    if isinstance(value, int):
        length = len(str(value))
        kind = T_LONG if length < 10 else T_LONGLONG  # MY_INT32_NUM_DECIMAL_DIGITS - 1
        return OutCol(name, kind, length, flags=NOT_NULL_FLAG | BINARY_FLAG, expression=True)
    if isinstance(value, Decimal):
        _, digits, exponent = value.as_tuple()
        scale = max(0, -int(exponent))
        precision = max(len(digits), scale)
        length = decimal_length(precision, scale)  # a sign's place even when positive
        return OutCol(
            name, T_NEWDECIMAL, length, scale, NOT_NULL_FLAG | BINARY_FLAG, expression=True
        )
    return OutCol(
        name,
        T_VAR_STRING,
        4 * len(value),
        NOT_FIXED_DEC,
        NOT_NULL_FLAG,
        CHARSET_UTF8MB4_CI,
        expression=True,
    )


def sum_out(col: Column, name: str, avg: bool) -> OutCol:
    """MariaDB's SUM is DECIMAL(p + 22, s), AVG DECIMAL(p + 4, s + 4) (div_precision_increment),
    p the argument's precision (digits for integers)."""
    digits = col.precision if col.kind == Kind.DECIMAL else int_digits(col)
    scale = min(col.scale + 4, 38) if avg else col.scale
    return decimal_out(name, min(65, digits + (4 if avg else 22)), scale)


def min_max_out(col: Column, name: str) -> OutCol:
    """MIN(c) / MAX(c): c's type, nullable (no rows: NULL), no table, BINARY for numbers and
    dates, as MariaDB describes them."""
    oc = column_out(col, name, "")
    text = col.kind == Kind.STRING
    flags = (0 if text else BINARY_FLAG) | (oc.flags & (UNSIGNED_FLAG | BINARY_FLAG))
    decimals = NOT_FIXED_DEC if text else oc.decimals
    return replace(
        oc, flags=flags, decimals=decimals, table="", org_name="", org_table="", expression=True
    )


def count_out(name: str) -> OutCol:
    return OutCol(name, T_LONGLONG, 21, 0, NOT_NULL_FLAG | BINARY_FLAG, expression=True)


def decimal_out(name: str, precision: int, scale: int) -> OutCol:
    """SUM / AVG: DECIMAL(precision, scale), nullable."""
    length = decimal_length(precision, scale)
    return OutCol(name, T_NEWDECIMAL, length, scale, BINARY_FLAG, expression=True)


# ---- readers: how one plaintext value is made from backend columns ------------------------


@dataclass(frozen=True)
class ReaderSpec:
    """A reader to build at bind time, once the column's cipher objects are at hand."""

    kind: str  # eq_rnd det ord_rnd ope hom avg plain int decimal raw fixed present
    pos: tuple[int, ...]
    ref: tuple[int, int, Column] | None = None  # (database id, table id, column)
    scale: int = 0
    value: Any = None  # fixed: a constant of the select list, made here

    def make(self, crypto: Crypto) -> Reader:
        kind, pos = self.kind, self.pos
        if kind == "fixed":
            value = self.value
            return lambda row: value
        if kind == "plain":
            assert self.ref is not None
            return _plain_reader(pos[0], self.ref[2])
        if kind == "present":  # COUNT(c) in the proxy: only whether the onion is NULL
            i = pos[0]
            return lambda row: None if row[i] is None else 1
        if kind in ("int", "decimal", "raw"):
            i = pos[0]
            conv = {"int": _to_int, "decimal": _to_decimal, "raw": _to_text}[kind]
            return lambda row: None if row[i] is None else conv(row[i])
        assert self.ref is not None
        cc = crypto.column(*self.ref)
        i = pos[0]
        if kind == "eq_rnd":
            j = pos[1]
            return lambda row: _two_layer(cc.eq_decrypt, cc.det_decrypt, row[i], row[j])
        if kind == "ord_rnd":
            j = pos[1]
            return lambda row: _two_layer(cc.ord_decrypt, cc.ope_decrypt, row[i], row[j])
        if kind == "det":
            return lambda row: cc.det_decrypt(row[i])
        if kind == "ope":
            return lambda row: cc.ope_decrypt(row[i])
        if kind == "hom":
            return lambda row: cc.hom_decrypt(row[i])
        if kind == "avg":
            j, scale = pos[1], self.scale
            return lambda row: _avg(cc.hom_decrypt(row[i]), row[j], scale)
        raise ValueError(kind)


def _two_layer(
    outer: Callable[[Any, Any], Any], inner: Callable[[Any], Any], ct: Any, iv: Any
) -> Any:
    """RND-level onions: if another session peeled the column after this plan was made, the
    value is already the inner layer's, which the inner decryption recognises."""
    if ct is None:
        return None
    try:
        return outer(ct, iv)
    except InvalidCiphertext:
        return inner(ct)


def _text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes | bytearray) else str(v)


def _to_int(v: Any) -> int:
    return v if isinstance(v, int) else int(_text(v))


def _to_decimal(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(_text(v))


def _to_text(v: Any) -> Any:
    return _text(v) if isinstance(v, bytes | bytearray) else v


def _other_plain(r: ReaderSpec) -> bool:
    return r.kind == "plain" and r.ref is not None and r.ref[2].kind == "other"


def _plain_reader(i: int, col: Column) -> Reader:
    k = col.kind
    if k == "other":
        return lambda row: row[i]  # the backend's text as it is (VARBINARY need not be UTF-8)
    if k in (Kind.INT, Kind.UINT):
        conv: Callable[[Any], Any] = _to_int
    elif k == Kind.DECIMAL:
        conv = _to_decimal
    elif k == Kind.DATE:
        conv = lambda v: v if isinstance(v, dt.date) else dt.date.fromisoformat(_text(v))  # noqa: E731
    elif k == Kind.DATETIME:
        conv = lambda v: v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(_text(v))  # noqa: E731
    else:
        conv = _to_text
    return lambda row: None if row[i] is None else conv(row[i])


def _avg(total: Any, count: Any, scale: int) -> Decimal | None:
    """MariaDB's AVG: the exact quotient rounded half up to the argument's scale + 4."""
    if total is None:
        return None
    n = _to_int(count)
    q = Decimal(1).scaleb(-scale)
    return (Decimal(total) / Decimal(n)).quantize(q, rounding=ROUND_HALF_UP)


# ---- the decoder ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    reader: int  # index into the decoder's readers
    desc: bool = False
    text: str | None = None  # "bin" or "ci" for text values, None otherwise


@dataclass
class DecoderSpec:
    columns: list[OutCol]
    readers: list[ReaderSpec]  # visible columns first, then hidden sort keys
    sort: list[SortKey] = field(default_factory=list)
    limit: int | None = None  # literal index of a LIMIT applied here, not by the backend
    offset: int | None = None
    database: str = ""
    # Aggregates computed here over the decoded rows: (count* | count | sum | avg | min | max
    # | min_bin | max_bin, reader index, AVG's scale) per result column
    # (proxy.rewrite.select.small_aggregates, proxy.rewrite.residual.aggregate_select).
    aggregate: list[tuple[str, int | None, int]] | None = None
    having: Any = None  # proxy.rewrite.having's condition tree, evaluated here
    residual: Any = None  # proxy.rewrite.residual's WHERE conditions, evaluated here

    def __post_init__(self) -> None:
        if self.aggregate is not None:
            return  # readers feed the aggregates, not one visible column each
        columns = list(self.columns)  # (a list other specs may share)
        for i, r in enumerate(self.readers[: len(columns)]):
            if _other_plain(r):
                columns[i] = replace(columns[i], relay=r.pos[0])
        self.columns = columns

    def bind(self, crypto: Crypto, lits: Sequence[Any]) -> Decoder:
        limit = int(lits[self.limit].value) if self.limit is not None else None
        offset = int(lits[self.offset].value) if self.offset is not None else 0
        keep = None
        if self.having is not None:
            from proxy.rewrite.having import bind_having

            keep = bind_having(self.having, lits)
        if self.residual is not None:
            from proxy.rewrite.residual import bind_residual

            keep = bind_residual(self.residual, lits, keep)
        decoder = Decoder(
            self.columns,
            [r.make(crypto) for r in self.readers],
            self.sort,
            limit,
            offset,
            self.database,
            keep,
        )
        decoder.aggregate = self.aggregate
        return decoder


@dataclass
class Decoder:
    columns: list[OutCol]
    readers: list[Reader]
    sort: list[SortKey]
    limit: int | None
    offset: int
    database: str = ""
    keep: Callable[[tuple[Any, ...]], bool] | None = None  # HAVING: the groups kept
    aggregate: list[tuple[str, int | None, int]] | None = None  # DecoderSpec.aggregate

    def definitions(self, backend: Sequence[bytes] = ()) -> list[ColumnDefinition]:
        """`backend`: the raw definitions of the result set the rows were read from."""
        db = self.database
        return [
            c.relayed(backend[c.relay], db)
            if c.relay is not None and c.relay < len(backend)
            else c.definition(db)
            for c in self.columns
        ]

    def decode(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        readers = self.readers
        out = [tuple(r(row) for r in readers) for row in rows]
        if self.keep is not None:
            out = [row for row in out if self.keep(row)]
        if self.aggregate is not None:
            out = [_aggregate(self.aggregate, out)]  # (a LIMIT / OFFSET still applies)
        if self.sort:
            for key in reversed(self.sort):
                out.sort(key=_sort_key(key), reverse=key.desc)
        if self.offset or self.limit is not None:
            end = None if self.limit is None else self.offset + self.limit
            out = out[self.offset : end]
        visible = len(self.columns)
        if visible != len(readers):
            out = [row[:visible] for row in out]
        return out

    def text_row(self, values: Sequence[Any]) -> bytes:
        return make_text_row([c.encode(v) for c, v in zip(self.columns, values, strict=True)])


def _aggregate(aggs: list[tuple[str, int | None, int]], rows: list[tuple[Any, ...]]) -> tuple:
    """One ungrouped result row, as MariaDB computes it: NULLs skipped, SUM / AVG of no
    value NULL, AVG rounded half up to the argument's scale + 4."""
    out: list[Any] = []
    for fn, i, scale in aggs:
        if i is None:
            out.append(len(rows))
            continue
        values = [r[i] for r in rows if r[i] is not None]
        if fn == "count":
            out.append(len(values))
        elif not values:
            out.append(None)
        elif fn in ("min", "max", "min_bin", "max_bin"):  # proxy.rewrite.residual
            # min() / max() keep the first of equal values, as MariaDB's scan does
            pick = min if fn.startswith("min") else max
            out.append(pick(values, key=bin_key if fn.endswith("_bin") else None))
        elif fn == "sum":
            out.append(sum(values))
        else:
            out.append(_avg(sum(values), len(values), scale))
    return tuple(out)


def _sort_key(key: SortKey) -> Callable[[tuple[Any, ...]], Any]:
    i = key.reader
    if key.text == "ci":
        return lambda row: (
            row[i] is not None,
            row[i].rstrip(" ").upper() if row[i] is not None else "",
        )
    if key.text == "bin":
        return lambda row: (row[i] is not None, bin_key(row[i]) if row[i] is not None else "")
    return lambda row: (row[i] is not None, row[i] if row[i] is not None else 0)


def pad_space_cmp(a: str, b: str) -> int:
    """utf8mb4_bin's comparison: code points, the shorter string padded with spaces (PAD
    SPACE), so 'a ' = 'a' and 'a\\t' < 'a'. -1, 0 or 1."""
    n = max(len(a), len(b))
    x, y = a.ljust(n), b.ljust(n)
    return (x > y) - (x < y)


bin_key = cmp_to_key(pad_space_cmp)  # a sort key for text under a _bin collation
