"""Expressions of the select list over encrypted columns, evaluated by the proxy.

The backend reads the columns an expression names (column_reader: whatever layer serves a
plain SELECT, no peel); the decoder computes the expression per row on the decrypted
values with MariaDB's semantics, and describes it as MariaDB does (sql/item_func.cc,
item_strfunc.cc, item_cmpfunc.cc: Item::decimal_precision, result_precision, the hybrid
type aggregation of COALESCE / IF / CASE). What could differ is refused when planned (1235)
or, for a value only known per row (UPPER of non-ASCII text), when decoded.

    + - * / DIV MOD %, unary -   INT (signed / unsigned) and DECIMAL; integer overflow: 1690
    CONCAT CONCAT_WS UPPER LOWER LENGTH CHAR_LENGTH SUBSTRING LEFT RIGHT TRIM LTRIM RTRIM
    COALESCE IFNULL NULLIF IF CASE WHEN (= <> < <= > >= <=> IS NULL AND OR NOT)
    ABS ROUND FLOOR CEIL YEAR MONTH DAY DATE

Constants are read from the statement's tree, so a plan with one is not cached (its
metadata follows the literal, as for constants in proxy.rewrite.select).

Example:
    >>> # SELECT a + 1 FROM t   (a INT, encrypted) becomes SELECT `c2_eq`, `c2_iv` FROM `t_1`
    >>> # and the decoder adds 1 to each decrypted a: BIGINT(12), as MariaDB describes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from proxy.protocol.errors import MysqlError
from proxy.rewrite.decode import (
    _INT_TYPES,
    BINARY_FLAG,
    CHARSET_BINARY,
    CHARSET_UTF8MB4_CI,
    NOT_FIXED_DEC,
    NOT_NULL_FLAG,
    T_DATE,
    T_DATETIME,
    T_INT24,
    T_LONG,
    T_LONGLONG,
    T_NEWDECIMAL,
    T_SHORT,
    T_STRING,
    T_TINY,
    T_VAR_STRING,
    UNSIGNED_FLAG,
    OutCol,
    ReaderSpec,
    bin_key,
    decimal_length,
)
from proxy.rewrite.errors import ER_NOT_SUPPORTED_YET, Unsupported
from proxy.rewrite.having import _and, _or
from proxy.rewrite.resolve import Scope, Source
from proxy.schema import Column

_EXACT = Context(prec=200)  # every DECIMAL(65, 38) operation is exact at this precision
_I64, _U64 = 2**63, 2**64
_INT_RANK = {T_TINY: 0, T_SHORT: 1, T_INT24: 2, T_LONG: 3, T_LONGLONG: 4}
_COLLATIONS = (None, "utf8mb4_general_ci", "utf8mb4_bin")  # the ones matched exactly
MAX_VARCHAR = 65532  # longer results are BLOB types in MariaDB: not matched, refused

Row = Sequence[Any]  # the values of the expression's column readers
Fn = Callable[[Row], Any]


@dataclass(frozen=True)
class Typ:
    """What MariaDB knows of an item: its type, max_length (bytes for text, 4 per
    character), decimal_precision(), scale, signedness, nullability, collation."""

    kind: str  # int dec str date datetime null
    length: int
    prec: int = 0
    scale: int = 0
    unsigned: bool = False
    nullable: bool = True
    code: int = T_LONGLONG
    binary: bool = False  # text under a _bin collation (derivation IMPLICIT)
    fsp: int = 0
    literal: bool = False  # a constant: COERCIBLE, no collation of its own
    text_decimals: int = NOT_FIXED_DEC  # text: what MariaDB sends as decimals
    date_part: bool = False  # YEAR / MONTH / DAY: digits only

    @property
    def number(self) -> bool:
        return self.kind in ("int", "dec")


@dataclass(frozen=True)
class Node:
    typ: Typ
    fn: Fn


def _int_typ(prec: int, unsigned: bool, nullable: bool, code: int | None = None) -> Typ:
    """An integer result of `prec` digits: max_length with a sign's place unless unsigned;
    INT while it fits 9 characters, else BIGINT (type_handler_long_or_longlong)."""
    length = prec + (0 if unsigned else 1)
    return _int_len(length, unsigned, nullable, code)


def _int_len(length: int, unsigned: bool, nullable: bool, code: int | None = None) -> Typ:
    prec = max(1, length - (0 if unsigned else 1))  # FLOOR(7) * a: 1 digit, not 0
    if code is None:
        code = T_LONG if length <= 9 else T_LONGLONG
    return Typ("int", length, prec, 0, unsigned, nullable, code)


def _dec_typ(prec: int, scale: int, unsigned: bool, nullable: bool) -> Typ:
    if prec > 65 or scale > 38:
        raise Unsupported("an expression needing more than DECIMAL(65, 38)")
    prec = max(prec, 1)
    return Typ("dec", decimal_length(prec, scale, unsigned), prec, scale, unsigned, nullable,
               T_NEWDECIMAL)  # fmt: skip


def _str_typ(length: int, binary: bool, nullable: bool, code: int = T_VAR_STRING) -> Typ:
    if length > MAX_VARCHAR:
        raise Unsupported("a text expression longer than 16383 characters")
    return Typ("str", length, 0, 0, False, nullable, code, binary)


def column_typ(col: Column) -> Typ:
    k = col.kind
    if k in (Kind.INT, Kind.UINT):
        code, signed, unsigned = _INT_TYPES.get(col.bits, _INT_TYPES[64])
        u = k == Kind.UINT
        return _int_len(unsigned if u else signed, u, col.nullable, code)
    if k == Kind.DECIMAL:
        return _dec_typ(col.precision, col.scale, col.unsigned, col.nullable)
    if k == Kind.DATE:
        return Typ("date", 10, nullable=col.nullable, code=T_DATE)
    if k == Kind.DATETIME:
        return Typ("datetime", 19 + (col.fsp + 1 if col.fsp else 0), nullable=col.nullable,
                   code=T_DATETIME, fsp=col.fsp)  # fmt: skip
    if k == Kind.STRING:
        if col.collation is not None and col.collation.lower() not in _COLLATIONS:
            raise Unsupported(f"expressions over text column {col.name} in {col.collation}")
        if col.text not in ("char", "varchar"):
            return Typ("text", 4 * 65535, nullable=col.nullable, code=0)  # LENGTH only
        code = T_STRING if col.text == "char" else T_VAR_STRING
        return _str_typ(4 * col.length, col.binary_collation(), col.nullable, code)
    raise Unsupported(f"expressions over column {col.name} of type {col.sql_type}")


def out_col(typ: Typ, name: str) -> OutCol:
    """The column definition MariaDB sends for an expression of this type."""
    flags = 0 if typ.nullable else NOT_NULL_FLAG
    if typ.kind == "str":
        flags |= BINARY_FLAG if typ.binary else 0
        return OutCol(name, typ.code, typ.length, typ.text_decimals, flags, CHARSET_UTF8MB4_CI,
                      expression=True)  # fmt: skip
    flags |= BINARY_FLAG | (UNSIGNED_FLAG if typ.unsigned else 0)
    return OutCol(name, typ.code, typ.length, typ.scale if typ.kind == "dec" else typ.fsp,
                  flags, CHARSET_BINARY, fsp=typ.fsp, expression=True)  # fmt: skip


@dataclass(frozen=True)
class ExprReader:
    """ReaderSpec("expr").value: the column readers and the function of their values."""

    columns: tuple[ReaderSpec, ...]
    fn: Fn
    sort_text: str | None  # how the proxy's ORDER BY compares it (decode.SortKey.text)

    def make(self, crypto: Any) -> Callable[[Sequence[Any]], Any]:
        readers = [r.make(crypto) for r in self.columns]
        fn = self.fn
        return lambda row: fn([r(row) for r in readers])


def out_of_range(unsigned: bool, text: str) -> MysqlError:
    kind = "BIGINT UNSIGNED" if unsigned else "BIGINT"
    return MysqlError(1690, "22003", f"{kind} value is out of range in '{text}'")


# ---- planning --------------------------------------------------------------------------------


class Planner:
    """Compiles one select-list expression: `read` adds a column's reader (hidden backend
    items) and returns its position among the expression's inputs."""

    def __init__(self, scope: Scope, read: Callable[[Source, Column], ReaderSpec], text: str,
                 sql: str) -> None:  # fmt: skip
        self.scope = scope
        self.read = read
        self.text = text  # the item as written: MariaDB's error messages quote it
        self.sql = sql
        self.columns: list[ReaderSpec] = []
        self._seen: dict[tuple[int, int], int] = {}

    def plan(self, e: exp.Expression, name: str) -> tuple[ReaderSpec, OutCol]:
        node = self.node(e)
        if node.typ.kind not in ("int", "dec", "str", "date", "datetime"):
            raise Unsupported("this expression's type in the select list")
        sort = None
        if node.typ.kind == "str":
            sort = "bin" if node.typ.binary else "ci"
        spec = ExprReader(tuple(self.columns), final(node.typ, node.fn), sort)
        return ReaderSpec("expr", (), value=spec), out_col(node.typ, name)

    # ---- leaves ----

    def column(self, e: exp.Column) -> Node:
        src, col = self.scope.column(e, "field list")
        key = (id(src), col.id)
        if key not in self._seen:
            self.columns.append(self.read(src, col))
            self._seen[key] = len(self.columns) - 1
        i = self._seen[key]
        return Node(column_typ(col), lambda r: r[i])

    def literal(self, e: exp.Expression) -> Node | None:
        """A number or string constant (a minus sign folded in, as MariaDB's parser does
        for Item_int / Item_decimal), NULL, or None."""
        neg, x = False, e
        while isinstance(x, exp.Paren | exp.Neg):
            neg ^= isinstance(x, exp.Neg)
            x = x.this
        if isinstance(x, exp.Null) and not neg:
            return Node(Typ("null", 0, literal=True), lambda r: None)
        if not isinstance(x, exp.Literal):
            return None
        if x.is_string:
            if neg or x is not e:
                return None
            s = x.this
            typ = replace(_str_typ(4 * len(s), False, False), literal=True)
            return Node(typ, lambda r: s)
        text = x.this
        if not text.replace(".", "", 1).isdigit() or text.startswith("."):
            return None  # 1e3, 0x1F, .5: other types
        if "." in text:
            v: Any = Decimal(text)
            _, digits, exponent = v.as_tuple()
            scale = -int(exponent)
            prec = max(len(digits), scale + 1)  # 0.25 is 3 digits to MariaDB (max_length 5)
            v = -v if neg else v
            typ = replace(_dec_typ(prec, scale, False, False), literal=True)
            return Node(typ, lambda r: v)
        n = -int(text) if neg else int(text)
        if not -_I64 <= n < _I64:
            raise Unsupported("an integer constant beyond BIGINT in an expression")
        length = len(str(n))
        typ = Typ("int", length, len(text.lstrip("0") or "0"), 0, False, False,
                  T_LONG if length < 10 else T_LONGLONG, literal=True)  # fmt: skip
        return Node(typ, lambda r: n)

    def int_constant(self, e: exp.Expression | None, what: str) -> int:
        lit = self.literal(e) if e is not None else None
        if lit is None or lit.typ.kind != "int":
            raise Unsupported(f"{what} other than an integer constant")
        return int(lit.fn(()))

    # ---- the tree ----

    def node(self, e: exp.Expression) -> Node:
        lit = self.literal(e)
        if lit is not None:
            return lit
        if isinstance(e, exp.Paren):
            return self.node(e.this)
        if isinstance(e, exp.Column):
            return self.column(e)
        handler = _HANDLERS.get(type(e))
        if handler is None:
            raise Unsupported(f"{type(e).__name__.upper()} in a select-list expression")
        node = handler(self, e)
        if isinstance(e, exp.Mod) and node.typ.kind == "dec":
            node = _no_negative_zero(node)
        return node

    def fname(self, e: exp.Expression) -> str:
        """The function's name as written (IFNULL and COALESCE are one node in sqlglot)."""
        start, end = (e.meta or {}).get("start"), (e.meta or {}).get("end")
        return self.sql[start : end + 1].upper() if start is not None and end is not None else ""


# ---- arithmetic ------------------------------------------------------------------------------


def _number(n: Node, what: str) -> Typ:
    if not n.typ.number:
        raise Unsupported(f"{what} of anything but INT / DECIMAL values in an expression")
    return n.typ


def _dec(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(v)


def _quantizer(scale: int) -> Decimal:
    return Decimal(1).scaleb(-scale)


def _frac(v: Decimal) -> int:
    return max(0, -int(v.as_tuple().exponent))


def _words(digits: int) -> int:
    return -(-digits // 9) * 9  # MariaDB stores decimals in words of 9 digits


def mariadb_div(u: Decimal, v: Decimal) -> Decimal:
    """MariaDB's decimal division (strings/decimal.c do_div_mod): the quotient truncated to
    whole 9-digit words of fractional digits, as many as the operands' words plus what is
    left of div_precision_increment (4) after their padding. An enclosing expression works
    on this value; only the result sent is rounded to the item's scale."""
    f1, f2 = _frac(u), _frac(v)
    w1, w2 = _words(f1), _words(f2)
    incr = max(0, 4 - (w1 - f1) - (w2 - f2))
    frac = _words(w1 + w2 + incr)
    q = _EXACT.divide(u, v)
    return _plus_zero(q.quantize(_quantizer(frac), ROUND_DOWN, _EXACT))


def _plus_zero(v: Decimal) -> Decimal:
    """MariaDB's products, quotients, sums and negations have no negative zero."""
    return v.copy_abs() if v.is_zero() else v


def final(typ: Typ, fn: Fn) -> Fn:
    """The value as MariaDB sends it (Item::val_str): a DECIMAL rounded half up to the
    item's scale, without a negative zero."""
    if typ.kind != "dec":
        return fn
    q = _quantizer(typ.scale)

    def rounded(r: Row) -> Any:
        v = fn(r)
        if v is None:
            return None
        d = _dec(v)
        w = d.quantize(q, ROUND_HALF_UP, _EXACT)
        return w.copy_abs() if w.is_zero() else w  # (MOD's -0 is refused before)

    return rounded


def _int_checked(p: Planner, unsigned: bool) -> Callable[[int], int]:
    text = p.text

    def check(v: int) -> int:
        if (0 <= v < _U64) if unsigned else (-_I64 <= v < _I64):
            return v
        raise out_of_range(unsigned, text)

    return check


def _arith(p: Planner, e: exp.Expression) -> Node:
    a, b = p.node(e.this), p.node(e.expression)
    if a.typ.kind == "null" or b.typ.kind == "null":
        raise Unsupported("NULL as an operand in an expression")
    x, y = _number(a, e.key.upper()), _number(b, e.key.upper())
    nullable = x.nullable or y.nullable
    fa, fb = a.fn, b.fn
    op = type(e)
    if op is exp.Div:
        prec = min(x.prec + y.scale + 4, 65)  # div_precision_increment = 4
        typ = _dec_typ(prec, min(x.scale + 4, 38), x.unsigned and y.unsigned, True)

        def div(r: Row) -> Any:
            u = fa(r)
            v = None if u is None else fb(r)
            if u is None or v is None or v == 0:
                return None
            return mariadb_div(_dec(u), _dec(v))

        return Node(typ, div)
    if op is exp.IntDiv:
        unsigned = x.unsigned or y.unsigned
        typ = _int_len(min(x.prec - x.scale, 21), unsigned, True)  # no sign's place
        check = _int_checked(p, unsigned)

        def intdiv(r: Row) -> Any:
            u = fa(r)
            v = fb(r) if u is not None or x.kind == y.kind == "int" else None
            if u is None or v is None or v == 0:
                return None
            if isinstance(u, int) and isinstance(v, int):
                q = abs(u) // abs(v)
                return check(q if (u < 0) == (v < 0) else -q)
            q = _EXACT.divide(_dec(u), _dec(v)).to_integral_value(ROUND_DOWN)
            return check(int(q))

        return Node(typ, intdiv)
    if op is exp.Mod:
        scale = max(x.scale, y.scale)
        prec = max(x.prec, y.prec)
        if x.kind == "int" and y.kind == "int":
            typ = _int_typ(prec, x.unsigned, True)
        else:
            typ = _dec_typ(prec, scale, x.unsigned, True)

        def mod(r: Row) -> Any:
            u = fa(r)
            v = fb(r) if u is not None or typ.kind == "int" else None
            if u is None or v is None or v == 0:
                return None
            if isinstance(u, int) and isinstance(v, int):
                m = abs(u) % abs(v)
                return -m if u < 0 else m  # the dividend's sign
            m = _EXACT.remainder(_dec(u), _dec(v))  # a -0 is refused: _no_negative_zero
            return _plus_zero(m) if u == 0 else m

        return Node(typ, mod)
    ints = x.kind == "int" and y.kind == "int"
    if op is exp.Mul:
        prec = x.prec + y.prec
        scale = x.scale + y.scale
    else:
        scale = max(x.scale, y.scale)
        prec = max(x.prec - x.scale, y.prec - y.scale) + 1 + scale
    if ints:
        unsigned = x.unsigned or y.unsigned  # an unsigned operand makes it BIGINT UNSIGNED
        typ = _int_typ(prec, unsigned, nullable)
        check = _int_checked(p, unsigned)
        f: Callable[[Any, Any], Any] = {
            exp.Add: lambda u, v: check(u + v),
            exp.Sub: lambda u, v: check(u - v),
            exp.Mul: lambda u, v: check(u * v),
        }[op]
    else:
        unsigned = x.unsigned and y.unsigned  # still UNSIGNED when it comes out negative
        typ = _dec_typ(min(prec, 65), scale, unsigned, nullable)
        if prec > 65:
            raise Unsupported("an expression needing more than 65 digits")
        g = {exp.Add: _EXACT.add, exp.Sub: _EXACT.subtract, exp.Mul: _EXACT.multiply}[op]

        def f(u: Any, v: Any) -> Any:
            return _plus_zero(g(_dec(u), _dec(v)))  # exact; rounded to the scale when sent

    if ints:  # Item_func_*::int_op reads both operands (an overflow in the second counts)

        def arith(r: Row) -> Any:
            u, v = fa(r), fb(r)
            return None if u is None or v is None else f(u, v)

    else:  # decimal_op stops at a NULL first operand

        def arith(r: Row) -> Any:
            u = fa(r)
            if u is None:
                return None
            v = fb(r)
            return None if v is None else f(u, v)

    return Node(typ, arith)


def _no_negative_zero(node: Node) -> Node:
    """A DECIMAL MOD keeps the dividend's sign on a zero (-5.00 MOD 5 is -0.00), which
    MariaDB then prints as -0.00, or 0 / -0 by how the dividend was stored, compares below 0,
    and subtracts from keeping the sign: not emulated, such a row is refused."""
    fn = node.fn

    def checked(r: Row) -> Any:
        v = fn(r)
        if v is not None and v.is_zero() and v.is_signed():
            raise MysqlError(ER_NOT_SUPPORTED_YET, "42000", "cryptdb: not supported on"
                             " encrypted tables: MOD giving a negative zero")  # fmt: skip
        return v

    return Node(node.typ, checked)


def _neg(p: Planner, e: exp.Neg) -> Node:
    a = p.node(e.this)
    x = _number(a, "unary minus")
    fa = a.fn
    if x.kind == "int":
        # one character more, the argument's decimal_precision() (Item_func_neg)
        typ = replace(_int_len(x.length + 1, False, x.nullable), prec=x.prec)
        check = _int_checked(p, False)
        return Node(typ, lambda r: None if (v := fa(r)) is None else check(-v))
    typ = replace(x, length=x.length + 1, unsigned=False, literal=False)
    return Node(typ, lambda r: None if (v := fa(r)) is None else _plus_zero(-v))


def _abs(p: Planner, e: exp.Abs) -> Node:
    a = p.node(e.this)
    x = _number(a, "ABS")
    fa = a.fn
    if x.kind == "int":
        if x.date_part:
            # MONTH(t): MariaDB says ABS(MONTH(t)) is 3 characters; not derived here
            raise Unsupported("ABS of a date part")
        typ = replace(_int_len(x.length, x.unsigned, x.nullable), prec=x.prec)
        check = _int_checked(p, x.unsigned)
        return Node(typ, lambda r: None if (v := fa(r)) is None else check(abs(v)))
    typ = replace(x, literal=False)
    return Node(typ, lambda r: None if (v := fa(r)) is None else abs(v))


def _round(p: Planner, e: exp.Round) -> Node:
    a = p.node(e.this)
    x = _number(a, "ROUND")
    fa = a.fn
    places = (
        p.int_constant(e.args.get("decimals"), "ROUND's places") if e.args.get("decimals") else 0
    )
    if e.args.get("truncate") is not None:
        raise Unsupported("ROUND with a truncate argument")
    if x.kind == "int":
        if places >= 0:  # the argument's own type: ROUND(tinyint) is TINYINT
            typ = replace(x, literal=False)
            return Node(typ, fa)
        if x.code == T_LONGLONG:
            raise Unsupported("ROUND of a BIGINT to tens (its overflow)")
        typ = _int_len(x.length + 1, x.unsigned, x.nullable)
        m = 10**-places

        def round_int(r: Row) -> Any:
            v = fa(r)
            if v is None:
                return None
            q, rest = divmod(abs(v), m)
            q += 1 if 2 * rest >= m else 0
            return q * m if v >= 0 else -q * m

        return Node(typ, round_int)
    if places > 38:
        raise Unsupported("ROUND to more than 38 places")
    to = max(places, 0)
    delta = x.scale - to
    prec = x.prec + (1 if delta > 0 else 0) - delta
    typ = _dec_typ(prec, to, x.unsigned, x.nullable)
    q = _quantizer(places)
    unit = _quantizer(0)

    def round_dec(r: Row) -> Any:
        v = fa(r)
        if v is None:
            return None
        w = _plus_zero(v.quantize(q, ROUND_HALF_UP, _EXACT))
        return w.quantize(unit, context=_EXACT) if places < 0 else w

    return Node(typ, round_dec)


def _floor_ceil(p: Planner, e: exp.Expression) -> Node:
    a = p.node(e.this)
    x = _number(a, e.key.upper())
    if e.args.get("decimals") is not None or e.args.get("to") is not None:
        raise Unsupported(f"{e.key.upper()} with two arguments")
    fa = a.fn
    if x.kind == "int":
        return Node(_int_len(x.length, x.unsigned, x.nullable, x.code), fa)
    # The argument's length without its fraction; INT / BIGINT by integer digits, beyond
    # 18 a DECIMAL (Item_func_int_val)
    digits = x.prec - x.scale
    mode = ROUND_FLOOR if isinstance(e, exp.Floor) else ROUND_CEILING
    if digits == 18:
        raise Unsupported(f"{e.key.upper()} of a DECIMAL with 18 integer digits")
    # one more digit when it can grow: FLOOR(-9.9) is -10, CEIL(9.9) 10, FLOOR(9.9) 9
    grows = x.scale and not (isinstance(e, exp.Floor) and x.unsigned)
    length = digits + (0 if x.unsigned else 1) + (1 if grows else 0)
    if digits > 18:
        typ = replace(_dec_typ(digits, 0, x.unsigned, x.nullable), length=length)
        return Node(typ, lambda r: None if (v := fa(r)) is None else v.to_integral_value(mode))
    typ = _int_len(length, x.unsigned, x.nullable, T_LONG if digits <= 9 else T_LONGLONG)
    return Node(typ, lambda r: None if (v := fa(r)) is None else int(v.to_integral_value(mode)))


# ---- text ----------------------------------------------------------------------------------


def _as_text(n: Node, what: str) -> tuple[Typ, Fn]:
    """A value CONCAT-style functions take: text as is, numbers and dates as MariaDB prints
    them (4 bytes a character of their max_length)."""
    t = n.typ
    f = n.fn
    if t.kind == "str":
        return t, f
    if t.kind == "null":
        return Typ("str", 0, nullable=True, literal=True), f
    if t.kind in ("int", "dec", "date"):
        rounded = final(t, f)
        f = rounded
        conv: Callable[[Any], str] = str if t.kind != "dec" else (lambda v: format(v, "f"))
    elif t.kind == "datetime":
        fsp = t.fsp

        def conv(v: Any) -> str:
            s = v.strftime("%Y-%m-%d %H:%M:%S")
            return s + "." + f"{v.microsecond:06d}"[:fsp] if fsp else s
    else:
        raise Unsupported(f"{what} of TEXT / BLOB columns")
    typ = Typ("str", 4 * t.length, nullable=t.nullable, literal=True)
    return typ, lambda r: None if (v := f(r)) is None else conv(v)


def _binary(*typs: Typ) -> bool:
    """The result's collation: a _bin column's wins over general_ci ones; constants and
    numbers are COERCIBLE and do not count."""
    return any(t.binary for t in typs if not t.literal)


# Text functions and date parts are nullable whatever their arguments (MariaDB: a result
# beyond max_allowed_packet, an invalid date); COALESCE / IF / CASE follow their values.


def _concat(p: Planner, e: exp.Concat) -> Node:
    parts = [_as_text(p.node(x), "CONCAT") for x in e.expressions]
    typs = [t for t, _ in parts]
    fns = [f for _, f in parts]
    typ = _str_typ(sum(t.length for t in typs), _binary(*typs), True)

    def concat(r: Row) -> Any:
        vals = []
        for f in fns:  # stops at the first NULL, as MariaDB's val_str does
            v = f(r)
            if v is None:
                return None
            vals.append(v)
        return "".join(vals)

    return Node(typ, concat)


def _concat_ws(p: Planner, e: exp.ConcatWs) -> Node:
    parts = [_as_text(p.node(x), "CONCAT_WS") for x in e.expressions]
    if len(parts) < 2:
        raise Unsupported("CONCAT_WS with fewer than two arguments")
    typs = [t for t, _ in parts]
    fns = [f for _, f in parts]
    length = typs[0].length * (len(parts) - 2) + sum(t.length for t in typs[1:])
    typ = _str_typ(length, _binary(*typs), True)

    def concat_ws(r: Row) -> Any:
        sep = fns[0](r)
        if sep is None:
            return None
        return sep.join(v for f in fns[1:] if (v := f(r)) is not None)

    return Node(typ, concat_ws)


def _text_arg(p: Planner, e: exp.Expression, what: str) -> tuple[Typ, Fn]:
    n = p.node(e)
    if n.typ.kind != "str":
        raise Unsupported(f"{what} of anything but CHAR / VARCHAR values")
    return n.typ, n.fn


def _case(p: Planner, e: exp.Expression) -> Node:
    t, f = _as_text(p.node(e.this), e.key.upper())
    upper = isinstance(e, exp.Upper)
    typ = _str_typ(t.length, t.binary and not t.literal, True)

    def conv(r: Row) -> Any:
        v = f(r)
        if v is None:
            return None
        if not v.isascii():  # MariaDB's case tables differ from Python's beyond ASCII
            raise MysqlError(ER_NOT_SUPPORTED_YET, "42000", "cryptdb: not supported on"
                             " encrypted tables: UPPER / LOWER of non-ASCII text")  # fmt: skip
        return v.upper() if upper else v.lower()

    return Node(typ, conv)


def _length(p: Planner, e: exp.Length) -> Node:
    n = p.node(e.this)
    octets = bool(e.args.get("binary"))
    if n.typ.kind == "text":
        f = n.fn
        typ = _int_len(10, False, n.typ.nullable, T_LONG)
    else:
        t, f = _as_text(n, "LENGTH")
        typ = _int_len(10, False, t.nullable, T_LONG)
    if octets:
        return Node(typ, lambda r: None if (v := f(r)) is None else len(v.encode("utf-8")))
    return Node(typ, lambda r: None if (v := f(r)) is None else len(v))


def _substring(p: Planner, e: exp.Substring) -> Node:
    t, f = _text_arg(p, e.this, "SUBSTRING")
    start = p.int_constant(e.args.get("start"), "SUBSTRING's position")
    count = e.args.get("length")
    n = p.int_constant(count, "SUBSTRING's length") if count is not None else None
    # Item_func_substr::fix_length_and_dec works on the argument's max_length in bytes and
    # then takes the result for characters (so SUBSTRING(v, 2) of a VARCHAR(24) says 95).
    ml = t.length
    if start < 0:
        ml = 0 if -start > ml else -start
    else:
        ml -= ml if start == 0 else min(start - 1, ml)
    if n is not None:
        ml = 0 if n <= 0 else min(ml, n)
    typ = _str_typ(4 * ml, t.binary and not t.literal, True)

    def substring(r: Row) -> Any:
        v = f(r)
        if v is None:
            return None
        if start == 0 or -start > len(v) or (n is not None and n <= 0):
            return ""
        i = start - 1 if start > 0 else len(v) + start
        return v[i:] if n is None else v[i : i + n]

    return Node(typ, substring)


def _left_right(p: Planner, e: exp.Expression) -> Node:
    t, f = _text_arg(p, e.this, e.key.upper())
    n = p.int_constant(e.expression, f"{e.key.upper()}'s length")
    chars = 0 if n <= 0 else min(t.length // 4, n)
    typ = _str_typ(4 * chars, t.binary and not t.literal, True)
    left = isinstance(e, exp.Left)

    def cut(r: Row) -> Any:
        v = f(r)
        if v is None:
            return None
        if n <= 0:
            return ""
        return v[:n] if left else v[-n:]

    return Node(typ, cut)


def _trim(p: Planner, e: exp.Trim) -> Node:
    if e.args.get("expression") is not None or e.args.get("collation") is not None:
        raise Unsupported("TRIM of anything but spaces")
    t, f = _text_arg(p, e.this, "TRIM")
    typ = _str_typ(t.length, t.binary and not t.literal, True)
    where = (e.args.get("position") or "BOTH").upper()
    strip = {"BOTH": str.strip, "LEADING": str.lstrip, "TRAILING": str.rstrip}[where]
    return Node(typ, lambda r: None if (v := f(r)) is None else strip(v, " "))


# ---- dates -----------------------------------------------------------------------------------


def _date_arg(p: Planner, e: exp.Expression, what: str) -> tuple[Typ, Fn]:
    while isinstance(e, exp.TsOrDsToDate) and not e.args.get("format"):
        inner = e.this
        if not isinstance(inner, exp.TsOrDsToDate):
            e = inner
            break
        e = inner
    n = p.node(e)
    if n.typ.kind not in ("date", "datetime"):
        raise Unsupported(f"{what} of anything but DATE / DATETIME values")
    return n.typ, n.fn


def _date_part(p: Planner, e: exp.Expression) -> Node:
    t, f = _date_arg(p, e.this, e.key.upper())
    attr = {exp.Year: "year", exp.Month: "month"}.get(type(e), "day")
    length = 4 if attr == "year" else 2  # digits only: decimal_precision() is the length
    typ = Typ("int", length, length, 0, False, True, T_LONG, date_part=True)
    return Node(typ, lambda r: None if (v := f(r)) is None else getattr(v, attr))


def _date(p: Planner, e: exp.TsOrDsToDate) -> Node:
    if e.args.get("format"):
        raise Unsupported("DATE with a format")
    t, f = _date_arg(p, e.this, "DATE")
    typ = Typ("date", 10, nullable=True, code=T_DATE)
    if t.kind == "date":
        return Node(typ, f)
    return Node(typ, lambda r: None if (v := f(r)) is None else v.date())


# ---- control flow ----------------------------------------------------------------------------


def hybrid(typs: Sequence[Typ], nullable: bool) -> tuple[Typ, Callable[[Any], Any]]:
    """The type COALESCE / IFNULL / IF / CASE give their arguments (MariaDB's aggregation
    for hybrid functions: NULL constants do not count) and how each value converts."""
    ts = [t for t in typs if t.kind != "null"]
    if not ts:
        raise Unsupported("an expression whose values are all NULL")
    kinds = {t.kind for t in ts}
    same: Callable[[Any], Any] = lambda v: v  # noqa: E731
    if kinds == {"int"} and len({t.unsigned for t in ts}) == 1:
        code = max((t.code for t in ts), key=_INT_RANK.__getitem__)
        prec = max(t.prec for t in ts)
        return _int_typ(prec, ts[0].unsigned, nullable, code), same
    if kinds <= {"int", "dec"}:  # any DECIMAL, or signed with unsigned integers
        scale = max(t.scale for t in ts)
        prec = max(t.prec - t.scale for t in ts) + scale
        typ = _dec_typ(prec, scale, all(t.unsigned for t in ts), nullable)
        return typ, lambda v: None if v is None else _dec(v)  # rounded when sent
    if kinds == {"str"}:
        code = T_STRING if all(t.code == T_STRING and not t.literal for t in ts) else T_VAR_STRING
        typ = _str_typ(max(t.length for t in ts), _binary(*ts), nullable, code)
        # an always-empty result: MariaDB's aggregation leaves decimals at 0
        return replace(typ, text_decimals=NOT_FIXED_DEC if typ.length else 0), same
    if len(kinds) == 1 and kinds <= {"date", "datetime"} and len({t.fsp for t in ts}) == 1:
        return replace(ts[0], nullable=nullable, literal=False), same
    raise Unsupported("an expression mixing values of different types")


def _coalesce(p: Planner, e: exp.Coalesce) -> Node:
    args = [p.node(x) for x in [e.this, *e.expressions]]
    nullable = all(a.typ.nullable for a in args)  # IFNULL too (MariaDB 10.11)
    typ, conv = hybrid([a.typ for a in args], nullable)
    fns = [a.fn for a in args]

    def coalesce(r: Row) -> Any:
        for f in fns:
            v = f(r)
            if v is not None:
                return conv(v)
        return None

    return Node(typ, coalesce)


def _nullif(p: Planner, e: exp.Nullif) -> Node:
    a, b = p.node(e.this), p.node(e.expression)
    if a.typ.kind == "null":
        raise Unsupported("NULLIF of NULL")
    typ = replace(a.typ, nullable=True, literal=False)  # its first argument's type: CHAR stays
    if typ.kind == "int":  # not a constant any more: its precision follows its length
        typ = _int_len(typ.length, typ.unsigned, True, typ.code)
    equal = _comparison(p, "=", a, b)  # (NULLIF is nullable anyway)
    fa = a.fn
    return Node(typ, lambda r: None if equal(r) is True else fa(r))


def _if(p: Planner, e: exp.If) -> Node:
    cond, maybe = _condition(p, e.this)
    x = p.node(e.args["true"])
    y = p.node(e.args["false"]) if e.args.get("false") is not None else None
    branches = [x] if y is None else [x, y]
    nullable = maybe or y is None or any(b.typ.nullable for b in branches)
    typ, conv = hybrid([b.typ for b in branches], nullable)
    fx, fy = x.fn, (y.fn if y is not None else (lambda r: None))
    return Node(typ, lambda r: conv(fx(r) if cond(r) is True else fy(r)))


def _case_when(p: Planner, e: exp.Case) -> Node:
    if e.this is not None:
        raise Unsupported("CASE value WHEN ... (write CASE WHEN value = ...)")
    arms = [(_condition(p, w.this), p.node(w.args["true"])) for w in e.args.get("ifs") or []]
    default = p.node(e.args["default"]) if e.args.get("default") is not None else None
    values = [n for _, n in arms] + ([default] if default is not None else [])
    nullable = default is None or any(n.typ.nullable for n in values)
    nullable = nullable or any(maybe for (_, maybe), _ in arms)
    typ, conv = hybrid([n.typ for n in values], nullable)
    fs = [(c, n.fn) for (c, _), n in arms]
    fd = default.fn if default is not None else (lambda r: None)

    def case(r: Row) -> Any:
        for c, f in fs:
            if c(r) is True:
                return conv(f(r))
        return conv(fd(r))

    return Node(typ, case)


Cond = Callable[[Row], bool | None]
_COMPARISONS: dict[type[exp.Expression], str] = {
    exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=",
    exp.NullSafeEQ: "<=>",
}  # fmt: skip


def _condition(p: Planner, e: exp.Expression) -> tuple[Cond, bool]:
    """A condition of IF / CASE WHEN in SQL's three-valued logic (None: NULL), and whether
    it can be NULL (MariaDB then marks the IF / CASE nullable, whatever its values)."""
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And | exp.Or):
        (a, na), (b, nb) = _condition(p, e.this), _condition(p, e.expression)
        if isinstance(e, exp.And):  # the second operand only when needed, as MariaDB
            return (lambda r: False if (v := a(r)) is False else _and(v, b(r))), na or nb
        return (lambda r: True if (v := a(r)) is True else _or(v, b(r))), na or nb
    if isinstance(e, exp.Not):
        c, n = _condition(p, e.this)
        return (lambda r: None if (v := c(r)) is None else not v), n
    if isinstance(e, exp.Is) and isinstance(e.expression, exp.Null):
        f = p.node(e.this).fn
        return (lambda r: f(r) is None), False
    op = _COMPARISONS.get(type(e))
    if op is not None:
        a, b = p.node(e.this), p.node(e.expression)
        nullable = op != "<=>" and (a.typ.nullable or b.typ.nullable)
        return _comparison(p, op, a, b), nullable
    n = p.node(e)
    if not n.typ.number:
        raise Unsupported("a condition that is not a comparison of numbers, text or dates")
    f = n.fn
    return (lambda r: None if (v := f(r)) is None else v != 0), n.typ.nullable


def _comparison(p: Planner, op: str, a: Node, b: Node) -> Cond:
    ka, kb = a.typ.kind, b.typ.kind
    if "null" in (ka, kb):
        fx = a.fn if kb == "null" else b.fn
        if op == "<=>":
            return lambda r: fx(r) is None
        return lambda r: None
    key: Callable[[Any], Any] = lambda v: v  # noqa: E731
    if a.typ.number and b.typ.number:
        pass  # int and Decimal compare exactly
    elif ka == kb == "str":
        if _binary(a.typ, b.typ):
            key = bin_key  # PAD SPACE, code points
        else:
            key = _ci_key
    elif ka == kb and ka in ("date", "datetime"):
        pass
    else:
        raise Unsupported("comparing values of different types in an expression")
    fa, fb = a.fn, b.fn
    cmp: Callable[[Any, Any], bool] = {
        "=": lambda x, y: bool(x == y), "<>": lambda x, y: bool(x != y),
        "<": lambda x, y: bool(x < y), "<=": lambda x, y: bool(x <= y),
        ">": lambda x, y: bool(x > y), ">=": lambda x, y: bool(x >= y),
        "<=>": lambda x, y: bool(x == y),
    }[op]  # fmt: skip

    def compare(r: Row) -> bool | None:
        x = fa(r)
        if x is None and op != "<=>":
            return None  # Arg_comparator does not read the second operand then
        y = fb(r)
        if x is None or y is None:
            return (x is None and y is None) if op == "<=>" else None
        return cmp(key(x), key(y))

    return compare


def _ci_key(v: str) -> str:
    """utf8mb4_general_ci for ASCII: case-insensitive, PAD SPACE. Other text: refused."""
    if not v.isascii():
        raise MysqlError(ER_NOT_SUPPORTED_YET, "42000", "cryptdb: not supported on encrypted"
                         " tables: comparing non-ASCII text under a _ci collation")  # fmt: skip
    return v.rstrip(" ").upper()


_HANDLERS: dict[type[exp.Expression], Callable[[Planner, Any], Node]] = {
    exp.Add: _arith, exp.Sub: _arith, exp.Mul: _arith, exp.Div: _arith, exp.IntDiv: _arith,
    exp.Mod: _arith, exp.Neg: _neg, exp.Abs: _abs, exp.Round: _round, exp.Floor: _floor_ceil,
    exp.Ceil: _floor_ceil, exp.Concat: _concat, exp.ConcatWs: _concat_ws, exp.Upper: _case,
    exp.Lower: _case, exp.Length: _length, exp.Substring: _substring, exp.Left: _left_right,
    exp.Right: _left_right, exp.Trim: _trim, exp.Year: _date_part, exp.Month: _date_part,
    exp.Day: _date_part, exp.DayOfMonth: _date_part, exp.TsOrDsToDate: _date,
    exp.Coalesce: _coalesce, exp.Nullif: _nullif, exp.If: _if, exp.Case: _case_when,
}  # fmt: skip


# ---- the select list's hook --------------------------------------------------------------------


def select_item(
    e: exp.Expression,
    name: str,
    scope: Scope,
    read: Callable[[Source, Column], ReaderSpec],
    sql: str,
    *,
    grouped: bool,
) -> tuple[ReaderSpec, OutCol]:
    """A select-list expression for the decoder: its reader (the columns it names read by
    `read`, as hidden backend items) and MariaDB's column definition for it."""
    if grouped:
        raise Unsupported("expressions in the select list with GROUP BY, DISTINCT or aggregates")
    inner = e
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Column):  # MariaDB keeps the column's own metadata
        raise Unsupported("a parenthesized column in the select list")
    if any(isinstance(x, exp.Subquery | exp.Select | exp.AggFunc) for x in e.walk()):
        raise Unsupported(f"{type(e).__name__.upper()} in the select list")
    return Planner(scope, read, name, sql).plan(e, name)


def item_names(sql: str, items: Sequence[exp.Expression]) -> list[str | None]:
    """Each select-list item's text as written in the statement's first SELECT, without its
    alias (MariaDB names an unaliased expression so: `a+1`, not `a + 1`); None where the
    text does not parse back to the item."""
    from sqlglot import parse_one
    from sqlglot.dialects.mysql import MySQL
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import TokenType

    try:
        tokens = MySQL().tokenize(sql)
    except SqlglotError:
        return [None] * len(items)
    first = next((i for i, t in enumerate(tokens) if t.token_type == TokenType.SELECT), None)
    if first is None:
        return [None] * len(items)
    i = first + 1
    while i < len(tokens) and tokens[i].token_type in (TokenType.DISTINCT, TokenType.ALL):
        i += 1
    pieces: list[list[Any]] = [[]]
    depth = 0
    stop = {TokenType.FROM, TokenType.WHERE, TokenType.LIMIT, TokenType.ORDER_BY,
            TokenType.GROUP_BY, TokenType.HAVING, TokenType.SEMICOLON, TokenType.INTO,
            TokenType.UNION}  # fmt: skip
    for tok in tokens[i:]:
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and tok.token_type == TokenType.COMMA:
            pieces.append([])
            continue
        elif depth == 0 and tok.token_type in stop:
            break
        pieces[-1].append(tok)
    if len(pieces) != len(items):
        return [None] * len(items)
    names: list[str | None] = []
    for toks, item in zip(pieces, items, strict=True):
        bare = item.this if isinstance(item, exp.Alias) else item
        found = None
        for drop in (0, 1, 2):  # the alias: none, `x`, `AS x`
            if len(toks) - drop < 1:
                break
            text = sql[toks[0].start : toks[len(toks) - drop - 1].end + 1]
            try:
                parsed = parse_one(f"SELECT {text}", read="mysql")
            except SqlglotError:
                continue
            if isinstance(parsed, exp.Select) and parsed.expressions == [bare]:
                found = text
                break
        names.append(found)
    return names
