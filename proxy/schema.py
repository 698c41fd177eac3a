"""The encrypted-schema model the proxy keeps in the keystore metadata (JSON-able, no SQL).

    schema = Schema.from_json(meta.get("schema"))     # {} or missing: an empty deployment
    table  = schema.table("shop", "orders")           # None for tables the proxy never created
    schema.apply(op)                                   # every change is an op (plans carry them)
    meta["schema"] = schema.to_json()                  # then Keystore.save_metadata(...)

Backend names carry no plaintext: a table is `t_<id>`, a plain column `c<id>`, an encrypted
column the onion columns `c<id>_eq`, `c<id>_ord`, `c<id>_add`, `c<id>_search` it has, plus
`c<id>_iv` (BINARY(16), the column's own row IV) when it has an Eq or Ord onion. One IV per
column and row, not one per row: an UPDATE of one column draws a fresh IV for that column
only, without re-encrypting the row's other columns (docs/onion-format.md: never reuse an IV
for a different value). Ids come from one counter and are never reused; they also name the
layer keys (onion.keys), so a RENAME keeps every key.

Policy, from a column COMMENT (anything else in a comment starting with `cryptdb:` is an
error, so a typo never weakens a column):

    'cryptdb: plain'                      stored as is (the leakage report lists it)
    'cryptdb: min=RND' | min=DET | min=OPE   lowest layer any onion may be peeled to
    'cryptdb: onions=eq,ord,add,search'   which onions exist (default: chosen by type)
    'cryptdb: join=<group>'               Eq onion's DET key shared with the group's columns
    directives combine: 'cryptdb: min=DET; onions=eq,add'

Deployment default: every column encrypted, min=OPE (peel lazily, only when a query needs
it), onions by type: eq+ord+add for INT/DECIMAL, eq+ord for DATE/DATETIME, eq+ord+search
for text. AUTO_INCREMENT columns are kept plain (the server allocates them, so it knows the
values anyway); the leakage report flags them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from onion.encoding import ColumnType, Kind

FORMAT = 1
ONIONS = ("eq", "ord", "add", "search")
# Layers of each onion, outermost first; an onion only ever moves right in its tuple.
LAYERS = {"eq": ("rnd", "det"), "ord": ("rnd", "ope"), "add": ("hom",), "search": ("search",)}
MIN_LEVELS = ("RND", "DET", "OPE")
# The lowest layer of each peelable onion that a policy minimum allows.
ALLOWED = {
    "RND": {"eq": "rnd", "ord": "rnd"},
    "DET": {"eq": "det", "ord": "rnd"},
    "OPE": {"eq": "det", "ord": "ope"},
}
DEFAULT_ONIONS = {
    Kind.INT: ("eq", "ord", "add"),
    Kind.UINT: ("eq", "ord", "add"),
    Kind.DECIMAL: ("eq", "ord", "add"),
    Kind.DATE: ("eq", "ord"),
    Kind.DATETIME: ("eq", "ord"),
    Kind.STRING: ("eq", "ord", "search"),
}
_ONIONS_FOR = {
    "add": (Kind.INT, Kind.UINT, Kind.DECIMAL),
    "search": (Kind.STRING,),
}


class PolicyError(ValueError):
    """A column policy that cannot be honoured (bad comment, onion unfit for the type)."""


@dataclass(frozen=True)
class Policy:
    plain: bool = False
    min_level: str = "OPE"
    onions: tuple[str, ...] | None = None  # None: the type's default
    join: str | None = None


_DIRECTIVE = re.compile(r"^\s*(\w+)\s*=\s*(.+?)\s*$")


def parse_policy(comment: str | None) -> Policy | None:
    """The policy in a column comment, or None when the comment is not a `cryptdb:` one."""
    if comment is None or not comment.strip().lower().startswith("cryptdb:"):
        return None
    body = comment.strip()[len("cryptdb:") :].strip()
    if body.lower() == "plain":
        return Policy(plain=True)
    kw: dict[str, Any] = {}
    seen: set[str] = set()
    for part in filter(None, (p.strip() for p in re.split(r"[;\s]+(?=\w+\s*=)", body))):
        m = _DIRECTIVE.match(part)
        if m is None:
            raise PolicyError(f"unreadable cryptdb policy directive {part!r}")
        key, value = m.group(1).lower(), m.group(2).strip().rstrip(";").strip()
        if key in seen:
            raise PolicyError(f"cryptdb policy sets {key} twice")
        seen.add(key)
        if key == "min":
            if value.upper() not in MIN_LEVELS:
                raise PolicyError("cryptdb policy min must be RND, DET or OPE")
            kw["min_level"] = value.upper()
        elif key == "onions":
            names = tuple(o.strip().lower() for o in value.split(",") if o.strip())
            if not names or any(o not in ONIONS for o in names) or len(set(names)) != len(names):
                raise PolicyError("cryptdb policy onions must be a list of eq, ord, add, search")
            kw["onions"] = tuple(o for o in ONIONS if o in names)
        elif key == "join":
            if not re.fullmatch(r"\w{1,64}", value):
                raise PolicyError("cryptdb join group must be a word")
            kw["join"] = value.lower()
        else:
            raise PolicyError(f"unknown cryptdb policy directive {key!r}")
    if not kw:
        raise PolicyError("empty cryptdb policy")
    return Policy(**kw)


@dataclass
class Column:
    id: int
    name: str
    sql_type: str  # as declared (normalised by the parser), for DESCRIBE / SHOW CREATE TABLE
    kind: str  # onion.Kind value; "other" for plain columns of types the onions do not hold
    nullable: bool = True
    bits: int = 64
    precision: int = 0
    scale: int = 0
    unsigned: bool = False  # DECIMAL UNSIGNED (integers: kind uint)
    length: int = 0  # CHAR/VARCHAR length in characters; 0 for TEXT types
    text: str = ""  # "char", "varchar", "text", "tinytext", "mediumtext", "longtext"
    fsp: int = 0  # DATETIME fractional digits
    collation: str | None = None
    default: Any = None  # JSON value of a constant DEFAULT (None: no default or NULL)
    has_default: bool = False
    auto_increment: bool = False
    plain: bool = False
    min_level: str = "OPE"
    onions: dict[str, str] = field(default_factory=dict)  # onion -> current layer
    join_group: int | None = None

    @property
    def ctype(self) -> ColumnType:
        k = Kind(self.kind)
        if k in (Kind.INT, Kind.UINT):
            return ColumnType(kind=k, bits=self.bits)
        if k is Kind.DECIMAL:
            return ColumnType(kind=k, precision=self.precision, scale=self.scale)
        return ColumnType(kind=k)

    @property
    def encrypted(self) -> bool:
        return not self.plain

    @property
    def plain_name(self) -> str:
        return f"c{self.id}"

    @property
    def iv_name(self) -> str:
        return f"c{self.id}_iv"

    @property
    def has_iv(self) -> bool:
        return "eq" in self.onions or "ord" in self.onions

    def onion_name(self, onion: str) -> str:
        return f"c{self.id}_{onion}"

    def backend_columns(self) -> list[str]:
        if self.plain:
            return [self.plain_name]
        names = [self.onion_name(o) for o in ONIONS if o in self.onions]
        return names + ([self.iv_name] if self.has_iv else [])

    def allows(self, onion: str, layer: str) -> bool:
        """Whether the policy minimum lets `onion` be peeled down to `layer`."""
        lowest = ALLOWED[self.min_level].get(onion)
        if lowest is None:
            return True  # add / search have a single layer
        return LAYERS[onion].index(layer) <= LAYERS[onion].index(lowest)

    def binary_collation(self) -> bool:
        return self.collation is not None and self.collation.lower().endswith("_bin")


@dataclass
class Index:
    name: str
    columns: list[int]  # column ids, in order
    unique: bool = False
    primary: bool = False
    backend: list[str] = field(default_factory=list)  # backend index names serving it
    # Made for a foreign key (InnoDB's implicit index): dropped when a later index serves it.
    auto: bool = False


@dataclass
class ForeignKey:
    """A FOREIGN KEY between plain columns, enforced by the server (proxy.rewrite.ddl)."""

    name: str  # as MariaDB names it: the CONSTRAINT symbol, else the index name, else <t>_ibfk_<n>
    columns: list[int]  # the referencing columns' ids, in order
    ref_database: str
    ref_table: str  # the plaintext name
    ref_columns: list[str]
    on_delete: str = "RESTRICT"
    on_update: str = "RESTRICT"
    backend: str = ""  # the backend constraint's name (constraint names are per database)


@dataclass
class Table:
    id: int
    name: str
    columns: list[Column] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    engine: str | None = None
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    @property
    def backend_name(self) -> str:
        return f"t_{self.id}"

    def column(self, name: str) -> Column | None:
        low = name.lower()  # MariaDB column names are case-insensitive
        for c in self.columns:
            if c.name.lower() == low:
                return c
        return None

    def column_by_id(self, cid: int) -> Column:
        for c in self.columns:
            if c.id == cid:
                return c
        raise KeyError(cid)


@dataclass
class Database:
    id: int
    name: str
    tables: dict[str, Table] = field(default_factory=dict)  # table names are case-sensitive


@dataclass
class Schema:
    databases: dict[str, Database] = field(default_factory=dict)
    join_groups: dict[str, int] = field(default_factory=dict)
    next_id: int = 1
    revision: int = 0  # bumped by every op
    # Random, renewed by every op and saved with the schema: equal tokens mean equal
    # content (w.h.p.), even for objects loaded separately, so plans cached under one token
    # serve every session; an op applied but not saved yields a token nobody else has.
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    paillier: str | None = None  # hex of PaillierPrivateKey.to_bytes(); metadata is encrypted

    # ---- lookups ---------------------------------------------------------------------------

    def database(self, name: str) -> Database | None:
        return self.databases.get(name)

    def table(self, database: str | None, name: str) -> Table | None:
        db = self.databases.get(database) if database is not None else None
        return db.tables.get(name) if db is not None else None

    def table_names(self) -> set[str]:
        return {t for db in self.databases.values() for t in db.tables}

    def allocate(self, count: int = 1) -> int:
        """The first of `count` fresh ids (the caller records them through an op)."""
        first = self.next_id
        self.next_id += count
        return first

    # ---- changes ---------------------------------------------------------------------------

    def apply(self, op: dict[str, Any]) -> None:
        """Apply one JSON-able change (see `ops_*` helpers in proxy.rewrite.ddl)."""
        kind = op["op"]
        if kind == "add_table":
            db = self.databases.get(op["database"])
            if db is None:
                db = self.databases[op["database"]] = Database(op["database_id"], op["database"])
            table = _table_from_json(op["table"])
            if table.name in db.tables:
                raise ValueError("table exists")
            db.tables[table.name] = table
            for name, gid in op.get("join_groups", {}).items():
                self.join_groups.setdefault(name, gid)
            if op.get("paillier") and not self.paillier:
                self.paillier = op["paillier"]
            self.next_id = max(self.next_id, op["next_id"])
        elif kind == "replace_table":  # ALTER TABLE, CREATE / DROP INDEX: the new state
            db = self.databases[op["database"]]
            table = _table_from_json(op["table"])
            if op["old"] not in db.tables or (table.name != op["old"] and table.name in db.tables):
                raise ValueError("table missing or name taken")
            del db.tables[op["old"]]
            db.tables[table.name] = table
            for name, gid in op.get("join_groups", {}).items():
                self.join_groups.setdefault(name, gid)
            if op.get("paillier") and not self.paillier:
                self.paillier = op["paillier"]
            self.next_id = max(self.next_id, op.get("next_id", 0))
        elif kind == "drop_table":
            db = self.databases.get(op["database"])
            if db is not None:
                db.tables.pop(op["table"], None)
        elif kind == "drop_database":
            self.databases.pop(op["database"], None)
        elif kind == "set_layer":
            col = self._column(op["database"], op["table"], op["column"])
            if col.onions.get(op["onion"]) != op["from"]:
                raise ValueError("onion is not at the expected layer")
            col.onions[op["onion"]] = op["to"]
        else:
            raise ValueError(f"unknown schema op {kind!r}")
        self.revision += 1
        self.token = secrets.token_hex(8)

    def _column(self, database: str, table: str, column: str) -> Column:
        t = self.table(database, table)
        c = t.column(column) if t is not None else None
        if c is None:
            raise KeyError(f"{database}.{table}.{column}")
        return c

    # ---- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "next_id": self.next_id,
            "revision": self.revision,
            "token": self.token,
            "paillier": self.paillier,
            "join_groups": dict(self.join_groups),
            "databases": [
                {"id": db.id, "name": db.name, "tables": [asdict(t) for t in db.tables.values()]}
                for db in self.databases.values()
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Schema:
        if not data:
            return cls()
        if data.get("format") != FORMAT:
            raise ValueError("unknown schema metadata format")
        schema = cls(
            next_id=data["next_id"],
            revision=data.get("revision", 0),
            token=data.get("token") or secrets.token_hex(8),
            paillier=data.get("paillier"),
            join_groups=dict(data.get("join_groups", {})),
        )
        for d in data["databases"]:
            db = Database(d["id"], d["name"])
            for t in d["tables"]:
                table = _table_from_json(t)
                db.tables[table.name] = table
            schema.databases[db.name] = db
        return schema


def _table_from_json(t: dict[str, Any]) -> Table:
    return Table(
        id=t["id"],
        name=t["name"],
        columns=[Column(**c) for c in t["columns"]],
        indexes=[Index(**i) for i in t["indexes"]],
        engine=t.get("engine"),
        foreign_keys=[ForeignKey(**f) for f in t.get("foreign_keys", [])],
    )


def table_to_json(table: Table) -> dict[str, Any]:
    return asdict(table)


def onions_for(kind: Kind, policy: Policy) -> tuple[str, ...]:
    """The onions a column gets under `policy` (PolicyError when one cannot hold the type)."""
    onions = policy.onions if policy.onions is not None else DEFAULT_ONIONS[kind]
    for o in onions:
        if o in _ONIONS_FOR and kind not in _ONIONS_FOR[o]:
            raise PolicyError(f"onion {o} cannot hold a {kind.value} column")
    if "eq" not in onions and (kind is Kind.STRING or "ord" not in onions) and "add" not in onions:
        raise PolicyError("a column needs an onion the proxy can decrypt (eq, ord or add)")
    if policy.join is not None and "eq" not in onions:
        raise PolicyError("a join group needs the eq onion")
    return onions
