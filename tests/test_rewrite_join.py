"""Equi-joins on join groups, differential against plaintext (seeded)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest
from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from proxy.rewrite import Refusal
from tests.rewrite_support import DryRunner, EncryptedRunner, connect

DDL = [
    "CREATE TABLE cust (id INT AUTO_INCREMENT PRIMARY KEY, cid INT COMMENT 'cryptdb: join=cust',"
    " name VARCHAR(20) COLLATE utf8mb4_bin, city VARCHAR(10) COLLATE utf8mb4_bin)",
    "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY,"
    " cust BIGINT COMMENT 'cryptdb: join=cust', total DECIMAL(8,2), day DATE)",
]
NAMES = ["Ada", "Grace", "Linus", "Barbara", "Ken"]
CITIES = ["Paris", "Oslo", "Lima"]


def statements(rng: random.Random, n: int) -> Iterator[tuple[str, bool]]:
    for _ in range(30):
        yield (
            f"INSERT INTO cust (cid, name, city) VALUES ({rng.randint(1, 15)}, "
            f"'{rng.choice(NAMES)}', '{rng.choice(CITIES)}')",
            False,
        )
    for _ in range(60):
        cust = rng.choice([*range(1, 20), "NULL"])
        yield (
            f"INSERT INTO orders (cust, total, day) VALUES ({cust}, "
            f"{rng.randint(-500, 5000) / 100:.2f}, '2020-01-{rng.randint(1, 28):02d}')",
            False,
        )
    for _ in range(n):
        join = rng.choice(["JOIN", "LEFT JOIN", "RIGHT JOIN"])
        on = "c.cid = o.cust" if rng.random() < 0.8 else "o.cust = c.cid"
        conds = [
            f"c.city = '{rng.choice(CITIES)}'",
            f"o.day >= '2020-01-{rng.randint(1, 28):02d}'",
            f"o.total < {rng.randint(0, 50)}",
            "o.total IS NULL",
            f"c.name IN ('{rng.choice(NAMES)}', '{rng.choice(NAMES)}')",
        ]
        where = f" WHERE {rng.choice(conds)}" if rng.random() < 0.7 else ""
        roll = rng.random()
        if roll < 0.1:  # every column, in the statement's table order (RIGHT JOIN too)
            yield f"SELECT * FROM cust c {join} orders o ON {on}{where}", False
        elif roll < 0.4:
            yield f"SELECT c.name, o.total, o.day FROM cust c {join} orders o ON {on}{where}", False
        elif roll < 0.6:
            yield (
                f"SELECT c.name, o.total FROM cust AS c {join} orders AS o ON {on}{where} "
                "ORDER BY o.total DESC, c.id, o.id",
                True,
            )
        elif roll < 0.8:
            g = rng.choice(["c.name", "c.city", "o.cust"])
            yield (
                f"SELECT {g}, COUNT(*), SUM(o.total), COUNT(o.id) FROM cust c {join} orders o "
                f"ON {on}{where} GROUP BY {g}",
                False,
            )
        else:
            yield f"SELECT COUNT(*), MAX(o.day) FROM cust c {join} orders o ON {on}{where}", False



def test_equi_joins(backend: DevBackend, database: str, encrypted: EncryptedRunner) -> None:
    plain = connect(backend, database, client_flag=CLIENT.FOUND_ROWS)
    try:
        with plain.cursor() as cur:
            for sql in DDL:
                cur.execute(sql)
                encrypted.execute(sql)
            for sql, ordered in statements(random.Random(3), 300):
                cur.execute(sql)
                expected = list(cur.fetchall()) if cur.description else cur.rowcount
                got = encrypted.execute(sql)
                if ordered or not isinstance(expected, list):
                    assert expected == got, sql
                else:
                    assert Counter(expected) == Counter(got), sql  # type: ignore[arg-type]
    finally:
        plain.close()
    assert f"{encrypted.database}.cust.cid eq: RND -> DET" in encrypted.peels


def test_join_needs_a_shared_key() -> None:
    dry = DryRunner()
    for sql in DDL:
        dry.plan(sql)
    dry.plan("CREATE TABLE other (n INT)")
    with pytest.raises(Refusal, match="join group"):
        dry.plan("SELECT 1 FROM cust c JOIN other x ON c.cid = x.n")
    with pytest.raises(Refusal):
        dry.plan(  # one RIGHT JOIN is a LEFT JOIN the other way round; two are refused
            "SELECT c.name FROM cust c RIGHT JOIN orders o ON c.cid = o.cust "
            "RIGHT JOIN cust d ON d.cid = o.cust"
        )
    with pytest.raises(Refusal, match="USING"):
        dry.plan("SELECT c.name FROM cust c JOIN orders o USING (id)")
