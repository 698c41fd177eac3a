"""A standard OLTP benchmark's statements (sysbench oltp_read_write), fully encrypted, each
compared with the same statement on a plaintext copy, inside BEGIN ... COMMIT."""

from __future__ import annotations

import random

from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from tests.rewrite_support import EncryptedRunner, connect

DDL = (
    "CREATE TABLE sbtest1 (id INTEGER NOT NULL AUTO_INCREMENT, k INTEGER DEFAULT '0' NOT NULL, "
    "c CHAR(120) DEFAULT '' NOT NULL, pad CHAR(60) DEFAULT '' NOT NULL, PRIMARY KEY (id), "
    "KEY k_1 (k)) ENGINE=InnoDB"
)
ROWS = 200
TRANSACTIONS = 40
RANGE = 10


def _chars(rng: random.Random, groups: int) -> str:
    """sysbench's c / pad values: groups of 11 digits joined by dashes."""
    return "-".join(f"{rng.randrange(10**11):011d}" for _ in range(groups))


def transaction(rng: random.Random, size: int) -> list[tuple[str, bool]]:
    """(statement, result is ordered) for one oltp_read_write transaction."""

    def rid() -> int:
        return rng.randint(1, size)

    out = [("BEGIN", False)]
    out += [(f"SELECT c FROM sbtest1 WHERE id={rid()}", False) for _ in range(10)]
    lo = rid()
    out.append((f"SELECT c FROM sbtest1 WHERE id BETWEEN {lo} AND {lo + RANGE - 1}", False))
    lo = rid()
    out.append((f"SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN {lo} AND {lo + RANGE - 1}", False))
    lo = rid()
    out.append(
        (f"SELECT c FROM sbtest1 WHERE id BETWEEN {lo} AND {lo + RANGE - 1} ORDER BY c", True)
    )
    lo = rid()
    out.append(
        (
            f"SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN {lo} AND {lo + RANGE - 1} ORDER BY c",
            True,
        )
    )
    out.append((f"UPDATE sbtest1 SET k=k+1 WHERE id={rid()}", False))
    out.append((f"UPDATE sbtest1 SET c='{_chars(rng, 10)}' WHERE id={rid()}", False))
    victim = rid()
    out.append((f"DELETE FROM sbtest1 WHERE id={victim}", False))
    out.append(
        (
            f"INSERT INTO sbtest1 (id, k, c, pad) VALUES ({victim}, {rng.randint(1, size)}, "
            f"'{_chars(rng, 10)}', '{_chars(rng, 5)}')",
            False,
        )
    )
    out.append(("COMMIT", False))
    return out



def test_oltp_read_write(backend: DevBackend, database: str, encrypted: EncryptedRunner) -> None:
    rng = random.Random(7)
    plain = connect(backend, database, client_flag=CLIENT.FOUND_ROWS)
    values: set[str] = set()
    try:
        with plain.cursor() as cur:
            statements = [(DDL, False)]
            for _ in range(ROWS // 50):
                rows = []
                for _row in range(50):
                    c, pad = _chars(rng, 10), _chars(rng, 5)
                    values |= {c, pad}
                    rows.append(f"({rng.randint(1, ROWS)}, '{c}', '{pad}')")
                statements.append(
                    (f"INSERT INTO sbtest1 (k, c, pad) VALUES {', '.join(rows)}", False)
                )
            for _ in range(TRANSACTIONS):
                statements += transaction(rng, ROWS)
            for sql, ordered in statements:
                cur.execute(sql)
                expected = list(cur.fetchall()) if cur.description else cur.rowcount
                got = encrypted.execute(sql)
                if isinstance(expected, list) and not ordered:
                    expected, got = sorted(expected), sorted(got)  # type: ignore[arg-type]
                assert expected == got, sql
            cur.execute("SELECT * FROM sbtest1 ORDER BY id")
            assert list(cur.fetchall()) == encrypted.execute("SELECT * FROM sbtest1 ORDER BY id")
    finally:
        plain.close()
    assert sorted(encrypted.peels) == [
        f"{encrypted.database}.sbtest1.c eq: RND -> DET",
    ]
    table = encrypted.schema.table(encrypted.database, "sbtest1")
    assert table is not None
    with encrypted.conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{table.backend_name}`")
        cells = [cell for row in cur.fetchall() for cell in row[1:]]
    assert not [v for v in values for cell in cells if v.encode() in cell]
