"""Column definitions: a CREATE TABLE column -> schema Column, and its backend declarations.

Backend types (docs/onion-format.md):

    c<id>_iv      BINARY(16) NOT NULL        the column's row IV (Eq/Ord onions only)
    c<id>_eq      BINARY(16) numbers/dates (VARBINARY(46) for DECIMAL(p >= 22));
                  text: VARBINARY(17 + 4 * length), BLOB types past 3072 bytes
    c<id>_ord     BINARY(ope width): 16 bytes, more for DECIMAL(p >= 19)
    c<id>_add     VARBINARY(512) (Paillier n = 2048 bits)
    c<id>_search  BLOB
"""

from __future__ import annotations

from sqlglot import exp

from onion import ColumnType, Kind, ope_domain
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.literals import Lit, column_value
from proxy.rewrite.plan import quote_ident
from proxy.schema import Column, Policy, PolicyError, onions_for, parse_policy

_INTS = {
    exp.DataType.Type.TINYINT: (Kind.INT, 8),
    exp.DataType.Type.UTINYINT: (Kind.UINT, 8),
    exp.DataType.Type.SMALLINT: (Kind.INT, 16),
    exp.DataType.Type.USMALLINT: (Kind.UINT, 16),
    exp.DataType.Type.MEDIUMINT: (Kind.INT, 24),
    exp.DataType.Type.UMEDIUMINT: (Kind.UINT, 24),
    exp.DataType.Type.INT: (Kind.INT, 32),
    exp.DataType.Type.UINT: (Kind.UINT, 32),
    exp.DataType.Type.BIGINT: (Kind.INT, 64),
    exp.DataType.Type.UBIGINT: (Kind.UINT, 64),
    exp.DataType.Type.BOOLEAN: (Kind.INT, 8),
}
_TEXTS = {
    exp.DataType.Type.CHAR: "char",
    exp.DataType.Type.VARCHAR: "varchar",
    exp.DataType.Type.TEXT: "text",
    exp.DataType.Type.TINYTEXT: "tinytext",
    exp.DataType.Type.MEDIUMTEXT: "mediumtext",
    exp.DataType.Type.LONGTEXT: "longtext",
}
_TEXT_MAX = {"tinytext": 255, "text": 65535, "mediumtext": 1 << 24, "longtext": 1 << 32}
INDEXABLE = 3072  # InnoDB's largest index key (bytes) with the DYNAMIC row format
BLOB_PREFIX = 32  # a DET text value starts with a 16-byte SIV: 32 bytes identify it


def _params(dt: exp.DataType, name: str) -> list[int]:
    out = []
    for p in dt.expressions:
        v = p.this if isinstance(p, exp.DataTypeParam) else p
        if not isinstance(v, exp.Literal) or v.is_string:
            raise Unsupported(f"column {name}: type {dt.sql('mysql')}")
        out.append(int(v.this))
    return out


_WITH_PARAMS = (
    exp.DataType.Type.DECIMAL,
    exp.DataType.Type.UDECIMAL,
    exp.DataType.Type.DATETIME,
)


def column_from_def(cd: exp.ColumnDef, cid: int) -> tuple[Column, Policy, list[str]]:
    """The schema column, its policy, and its inline key kinds ("primary" / "unique")."""
    dt = cd.args.get("kind")
    if not isinstance(dt, exp.DataType):
        raise Unsupported("a column without a type")
    col = Column(id=cid, name=cd.name, sql_type=dt.sql("mysql"), kind="other")
    t = dt.this
    # Only the types the onions hold have their parameters read (ENUM's are strings).
    held = t in _INTS or t in _TEXTS or t in _WITH_PARAMS
    params = _params(dt, cd.name) if held else []
    if t in _INTS:
        kind, col.bits = _INTS[t]
        col.kind = kind.value
    elif t in (exp.DataType.Type.DECIMAL, exp.DataType.Type.UDECIMAL):
        col.kind = Kind.DECIMAL.value
        col.precision = params[0] if params else 10
        col.scale = params[1] if len(params) > 1 else 0
        col.unsigned = t is exp.DataType.Type.UDECIMAL
        ColumnType(kind=Kind.DECIMAL, precision=col.precision, scale=col.scale)
    elif t in _TEXTS:
        col.kind, col.text = Kind.STRING.value, _TEXTS[t]
        if col.text in ("char", "varchar"):
            if col.text == "varchar" and not params:
                raise Unsupported("VARCHAR without a length")
            col.length = params[0] if params else 1
    elif t is exp.DataType.Type.DATE:
        col.kind = Kind.DATE.value
    elif t is exp.DataType.Type.DATETIME:
        col.kind = Kind.DATETIME.value
        col.fsp = params[0] if params else 0
    policy: Policy | None = None
    keys: list[str] = []
    default: exp.Expression | None = None
    for c in cd.constraints:
        k = c.kind
        if isinstance(k, exp.NotNullColumnConstraint):
            col.nullable = bool(k.args.get("allow_null"))
        elif isinstance(k, exp.DefaultColumnConstraint):
            default = k.this
        elif isinstance(k, exp.AutoIncrementColumnConstraint):
            col.auto_increment = True
        elif isinstance(k, exp.PrimaryKeyColumnConstraint):
            keys.append("primary")
            col.nullable = False
        elif isinstance(k, exp.UniqueColumnConstraint):
            keys.append("unique")
        elif isinstance(k, exp.CommentColumnConstraint):
            try:
                policy = parse_policy(k.this.name)
            except PolicyError as e:
                raise Unsupported(f"column {cd.name}: {e}") from None
        elif isinstance(k, exp.CollateColumnConstraint):
            col.collation = k.this.name
        elif isinstance(k, exp.CharacterSetColumnConstraint):
            if k.this.name.lower() not in ("utf8mb4", "utf8", "utf8mb3"):
                raise Unsupported(f"column {cd.name}: character sets other than utf8mb4")
        else:
            raise Unsupported(f"column {cd.name}: this column attribute")
    if policy is None:
        policy = Policy()
    if col.auto_increment:
        if policy.onions is not None or policy.join is not None or policy.min_level != "OPE":
            raise Unsupported(f"column {cd.name}: AUTO_INCREMENT columns are kept plain")
        policy = Policy(plain=True)
    if col.collation and "nopad" in col.collation.lower() and not policy.plain:
        # The proxy sorts and compares decrypted text with PAD SPACE, as every other
        # collation MariaDB has does: a NO PAD one would get wrong answers.
        raise Unsupported(
            f"column {cd.name}: NO PAD collations on encrypted text (declare utf8mb4_bin, "
            "or COMMENT 'cryptdb: plain')"
        )
    if col.kind == "other" and not policy.plain:
        raise Unsupported(
            f"column {cd.name}: type {col.sql_type} cannot be encrypted "
            "(declare it COMMENT 'cryptdb: plain')"
        )
    col.plain = policy.plain
    col.min_level = policy.min_level
    if not col.plain:
        try:
            onions = onions_for(Kind(col.kind), policy)
        except PolicyError as e:
            raise Unsupported(f"column {cd.name}: {e}") from None
        col.onions = {
            o: {"eq": "rnd", "ord": "rnd", "add": "hom", "search": "search"}[o] for o in onions
        }
    if default is not None:
        _set_default(col, default)
    return col, policy, keys


def _set_default(col: Column, node: exp.Expression) -> None:
    if isinstance(node, exp.Null):
        col.has_default, col.default = True, None
        return
    neg = False
    if isinstance(node, exp.Neg):
        neg, node = True, node.this
    if not isinstance(node, exp.Literal):
        if col.plain:
            col.has_default, col.default = True, {"sql": node.sql("mysql")}
            return
        raise Unsupported(f"column {col.name}: a DEFAULT that is not a constant")
    lit = [node.this, node.is_string, neg]
    if not col.plain:
        column_value(col, Lit(node.this, node.is_string, "", 0), neg, store=True)  # validate
    col.has_default, col.default = True, lit


def default_sql(col: Column) -> str:
    d = col.default
    if d is None:
        return "NULL"
    if isinstance(d, dict):
        return d["sql"]
    text, is_string, neg = d
    if is_string:
        return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return ("-" if neg else "") + text


def backend_decls(col: Column, paillier_width: int) -> list[str]:
    """The backend column declarations of one column."""
    nn = "" if col.nullable else " NOT NULL"
    if col.plain:
        decl = f"{quote_ident(col.plain_name)} {col.sql_type}"
        if col.collation:
            decl += f" COLLATE {col.collation}"
        decl += nn
        if col.has_default:
            decl += f" DEFAULT {default_sql(col)}"
        if col.auto_increment:
            decl += " AUTO_INCREMENT"
        return [decl]
    out = []
    for onion in col.onions:
        out.append(
            f"{quote_ident(col.onion_name(onion))} {onion_type(col, onion, paillier_width)}{nn}"
        )
    if col.has_iv:
        out.append(f"{quote_ident(col.iv_name)} BINARY(16) NOT NULL")
    return out


def onion_type(col: Column, onion: str, paillier_width: int) -> str:
    k = Kind(col.kind)
    if onion == "eq":
        if k is Kind.STRING:
            n = 17 + 4 * col.length if col.length else 17 + _TEXT_MAX[col.text]
            if n <= INDEXABLE:
                return f"VARBINARY({n})"
            return "BLOB" if n <= 65535 else "MEDIUMBLOB" if n < 1 << 24 else "LONGBLOB"
        if k is Kind.DECIMAL and col.precision >= 22:
            return "VARBINARY(46)"
        return "BINARY(16)"
    if onion == "ord":
        return f"BINARY({(ope_domain(col.ctype)[1] + 7) // 8})"
    if onion == "add":
        return f"VARBINARY({paillier_width})"
    return "BLOB" if not col.length or 1 + 24 * col.length <= 65535 else "MEDIUMBLOB"


def index_part(col: Column, onion: str | None, paillier_width: int) -> str:
    if col.plain or onion is None:
        return quote_ident(col.plain_name)
    name = quote_ident(col.onion_name(onion))
    if "BLOB" in onion_type(col, onion, paillier_width):
        return f"{name}({BLOB_PREFIX})"
    return name
