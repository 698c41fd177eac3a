"""proxy.schema: policy comments, onion choice, JSON round trip, ops."""

from __future__ import annotations

import json

import pytest

from onion import Kind
from proxy.leakage import leakage
from proxy.schema import Policy, PolicyError, Schema, onions_for, parse_policy
from tests.rewrite_support import DryRunner

POLICIES = [
    ("cryptdb: plain", Policy(plain=True)),
    ("CRYPTDB: Plain", Policy(plain=True)),
    ("cryptdb: min=RND", Policy(min_level="RND")),
    ("cryptdb: min=det", Policy(min_level="DET")),
    ("cryptdb: onions=ord, eq", Policy(onions=("eq", "ord"))),
    ("cryptdb: min=DET; onions=eq,add", Policy(min_level="DET", onions=("eq", "add"))),
    ("cryptdb: join=Customers min=OPE", Policy(min_level="OPE", join="customers")),
    ("a comment for people", None),
    (None, None),
]
BAD = [
    "cryptdb:",
    "cryptdb: min=LOW",
    "cryptdb: onions=eq,hom",
    "cryptdb: mni=DET",
    "cryptdb: min=DET; min=OPE",
    "cryptdb: onions=eq,eq",
    "cryptdb: join=a b",
    "cryptdb: x",
]


@pytest.mark.parametrize(("comment", "policy"), POLICIES)
def test_parse_policy(comment: str | None, policy: Policy | None) -> None:
    assert parse_policy(comment) == policy


@pytest.mark.parametrize("comment", BAD)
def test_parse_policy_refuses_typos(comment: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(comment)


def test_onions_by_type() -> None:
    assert onions_for(Kind.INT, Policy()) == ("eq", "ord", "add")
    assert onions_for(Kind.STRING, Policy()) == ("eq", "ord", "search")
    assert onions_for(Kind.DATE, Policy()) == ("eq", "ord")
    for kind, onions in [
        (Kind.DATE, ("add",)),
        (Kind.INT, ("search",)),
        (Kind.STRING, ("ord", "search")),
        (Kind.INT, ("ord",)),
    ]:
        if kind is Kind.INT and onions == ("ord",):
            assert onions_for(kind, Policy(onions=onions)) == onions  # OPE decrypts numbers
            continue
        with pytest.raises(PolicyError):
            onions_for(kind, Policy(onions=onions))
    with pytest.raises(PolicyError):
        onions_for(Kind.INT, Policy(onions=("add",), join="g"))


def test_schema_json_round_trip_and_ops() -> None:
    dry = DryRunner()
    dry.plan(
        "CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, x INT COMMENT 'cryptdb: join=g',"
        " s VARCHAR(9) COLLATE utf8mb4_bin NOT NULL DEFAULT 'z', UNIQUE KEY (s))"
    )
    dry.plan("CREATE TABLE b (y BIGINT UNSIGNED COMMENT 'cryptdb: join=g; min=DET')")
    dry.plan("SELECT id FROM a WHERE x = 1")
    schema = dry.schema
    text = json.dumps(schema.to_json())
    again = Schema.from_json(json.loads(text))
    assert again.to_json() == schema.to_json()
    a, b = again.table("db", "a"), again.table("db", "b")
    assert a is not None and b is not None
    assert a.column("ID").plain and a.column("id").auto_increment  # type: ignore[union-attr]
    x, y, s = a.column("x"), b.column("y"), a.column("s")
    assert x is not None and y is not None and s is not None
    assert x.join_group == y.join_group is not None  # one group, one DET key
    assert x.onions == {"eq": "det", "ord": "rnd", "add": "hom"}
    assert s.onions["eq"] == "det"  # UNIQUE: starts at DET
    assert s.default == ["z", True, False] and not s.nullable
    assert a.backend_name != "a" and len({t.id for t in (a, b)}) == 2
    ids = [c.id for t in (a, b) for c in t.columns]
    assert len(set(ids)) == len(ids) and again.next_id > max(ids)
    with pytest.raises(ValueError):  # an op against a stale layer is rejected
        again.apply(
            {
                "op": "set_layer",
                "database": "db",
                "table": "a",
                "column": "x",
                "onion": "eq",
                "from": "rnd",
                "to": "det",
            }
        )
    rev = again.revision
    again.apply({"op": "drop_table", "database": "db", "table": "b"})
    assert again.table("db", "b") is None and again.revision == rev + 1
    assert Schema.from_json({}).databases == {}
    with pytest.raises(ValueError):
        Schema.from_json({"format": 99})


def test_leakage_report() -> None:
    dry = DryRunner()
    dry.plan(
        "CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, x INT COMMENT 'cryptdb: join=g',"
        " s VARCHAR(9) COMMENT 'cryptdb: onions=eq,search', p INT COMMENT 'cryptdb: plain')"
    )
    dry.plan("SELECT id FROM a WHERE x = 1 AND s LIKE '%w%'")
    rows = {r["column"]: r for r in leakage(dry.schema)}
    assert rows["id"]["learns"] == "everything (AUTO_INCREMENT)"
    assert rows["p"]["learns"] == "everything (policy plain)"
    assert rows["x"]["onions"] == "eq=DET, ord=RND, add=HOM"
    assert rows["x"]["learns"] == "equality, sums only (equality across join group g)"
    assert rows["s"]["learns"] == "word equality" and rows["s"]["minimum"] == "OPE"
