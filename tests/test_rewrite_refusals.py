"""Fail closed: refusals (policy and unsupported syntax) and what passes through."""

from __future__ import annotations

import pymysql
import pytest

from proxy.rewrite import Execute, PassThrough, PolicyRefusal, Refusal, Unsupported
from proxy.rewrite.errors import ER_CRYPTDB_POLICY, ER_CRYPTDB_VALUE, ER_NOT_SUPPORTED_YET
from tests.rewrite_support import DryRunner, EncryptedRunner
from tests.rewrite_workload import DDL

PASS_THROUGH = [
    "SELECT @@version",
    "SELECT 1",
    "SET NAMES utf8mb4",
    "SET autocommit = 1",
    "BEGIN",
    "START TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "SHOW VARIABLES LIKE 'version%'",
    "SHOW TABLES FROM other",
    "SELECT * FROM plain_table WHERE x = 'r'",
    "INSERT INTO plain_table (x) VALUES ('r')",
    "CREATE DATABASE other",
    "USE other",
    "SELECT * FROM (SELECT x FROM plain_table) AS p WHERE p.x > 1",  # derived, plain only
    "SELECT r FROM plain_table",  # r is a column here: every table reference resolves
]

UNSUPPORTED = [
    # select-list expressions the proxy does not evaluate (proxy.rewrite.exprs)
    "SELECT a + 1 FROM r GROUP BY a",
    "SELECT DISTINCT UPPER(s) FROM r",
    "SELECT a + SUM(b) FROM r",
    "SELECT a + '1' FROM r",
    "SELECT a + 1e3 FROM r",
    "SELECT COALESCE(a, s) FROM r",
    "SELECT CONCAT(s, (SELECT MAX(s) FROM r)) FROM r",
    "SELECT ABS(MONTH(t)) FROM r",
    "SELECT (a) FROM r",
    "SELECT a + 1 AS n FROM r HAVING n > 1",
    "SELECT LOCATE('x', s) FROM r",
    "SELECT * FROM r WHERE a + 1 = 2",
    "SELECT * FROM r WHERE a = b",
    "SELECT * FROM r WHERE s < 'm' OR a = 1",  # s is utf8mb4_bin: alone, the proxy evaluates it
    "SELECT MAX(s) FROM r GROUP BY a",
    "UPDATE r SET a = 1 WHERE s < 'm' OR a = 2",
    "SELECT * FROM r WHERE a IN (SELECT a FROM r AS y WHERE y.b = r.b)",  # correlated
    "SELECT * FROM r WHERE EXISTS (SELECT 1 FROM r AS y WHERE y.b < r.b)",  # not by =
    "SELECT * FROM r WHERE EXISTS (SELECT 1 FROM r AS y WHERE y.b = r.b AND y.a = r.a)",
    "SELECT * FROM r WHERE EXISTS (SELECT COUNT(*) FROM r AS y WHERE y.b = r.b)",  # always TRUE
    # over a derived table: what the proxy does not evaluate (proxy.rewrite.derived)
    "SELECT x.a + 1 FROM (SELECT a FROM r) AS x",
    "SELECT * FROM (SELECT a FROM r) AS x JOIN r ON r.a = x.a",
    "SELECT * FROM (SELECT a FROM r) AS x WHERE x.a IN (SELECT a FROM r)",
    "SELECT * FROM (SELECT a FROM r) AS x WHERE UPPER(x.a) = 'A'",
    "SELECT a, (SELECT MAX(a) FROM r) + 1 FROM r",
    "SELECT * FROM r WHERE p IN (SELECT a FROM r)",  # a's values would reach p in plaintext
    "SELECT * FROM r AS x JOIN r AS y ON x.a = y.b",
    "SELECT * FROM r AS x RIGHT JOIN r AS y ON x.id = y.id JOIN r AS z ON z.id = y.id",
    "SELECT a, COUNT(*) FROM r GROUP BY a HAVING COUNT(*) + 1 > 2",
    "SELECT DISTINCT a FROM r GROUP BY a HAVING a > 1",
    "SELECT * FROM r INTERSECT SELECT * FROM r",
    "SELECT a FROM r UNION SELECT a FROM r ORDER BY a + 1",
    "SELECT * FROM r WHERE NOT (w LIKE 'fox%' AND a = 1)",
    "DELETE FROM r WHERE w LIKE 'fox%' LIMIT 1",
    "SELECT * FROM r ORDER BY 1 + 1",
    "INSERT INTO r (p) SELECT a FROM r",  # an encrypted value into a plain column
    "INSERT INTO r (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 2",
    "INSERT INTO r (a) VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(b)",
    "INSERT INTO r (a) VALUES (ABS(-1))",
    "REPLACE INTO r (a) SELECT a FROM r",
    "UPDATE r SET a = b",
    "UPDATE r SET a = a * 2",
    "UPDATE r SET a = a + 1, b = b + 1",
    "DELETE FROM r WHERE UPPER(s) = 'X'",
    "SHOW KEYS FROM r",  # SHOW INDEX is answered from the schema (test_rewrite_infoschema)
    "SHOW INDEX FROM r WHERE Non_unique = 0",
    "SHOW TABLES WHERE 1",
    "SHOW FIELDS FROM r LIKE 'a%'",
    "ALTER TABLE r ADD COLUMN z INT UNIQUE",
    "ALTER TABLE r MODIFY a BIGINT",
    "CREATE INDEX i ON r (a(3))",
    "RENAME TABLE r TO r2",
    "SELECT * FROM r; SELECT 1",
    "SELECT * FROM r WHERE a = 1 /*! OR 1 = 1 */",
    "SELECT * FROM r WHERE a = 1 INTO OUTFILE '/tmp/x'",
    "LOCK TABLES r WRITE",
    "SELEKT * FROM r",
    "SELECT * FROM r WHERE a = x'01'",  # hex / bit literals: for plain columns only
    "INSERT INTO r (a) VALUES (b'1')",
]

POLICY = [
    ("SELECT * FROM r WHERE m < 3", "min=DET"),
    ("SELECT * FROM r WHERE m BETWEEN 1 AND 2", "min=DET"),
    ("SELECT MIN(m) FROM r", "min=DET"),
    ("SELECT * FROM r WHERE u > 3", "onions=eq,add"),
    ("SELECT SUM(s) FROM r", None),
    ("SELECT * FROM r WHERE h = 3", "onions=add"),
    ("SELECT * FROM r WHERE a LIKE '%word%'", "onions=eq,ord,add"),
]


@pytest.fixture
def dry() -> DryRunner:
    runner = DryRunner()
    runner.plan(DDL)
    runner.plan("CREATE TABLE k (x INT COMMENT 'cryptdb: min=RND', y VARCHAR(5))")
    return runner


@pytest.mark.parametrize("sql", PASS_THROUGH[:-1])
def test_pass_through(dry: DryRunner, sql: str) -> None:
    assert isinstance(dry.plan(sql), PassThrough)


@pytest.mark.parametrize("sql", ["HANDLER r OPEN", "LOCK TABLES r WRITE", "CHECKSUM TABLE r"])
def test_mention_in_an_opaque_statement_fails_closed(dry: DryRunner, sql: str) -> None:
    """Statements sqlglot cannot take apart (or naming no table node) are refused when an
    encrypted table's name appears outside literals."""
    with pytest.raises(Unsupported):
        dry.plan(sql)


@pytest.mark.parametrize("sql", UNSUPPORTED)
def test_unsupported_is_refused(dry: DryRunner, sql: str) -> None:
    with pytest.raises(Refusal) as info:
        dry.plan(sql)
    assert info.value.code in (ER_NOT_SUPPORTED_YET, ER_CRYPTDB_POLICY, ER_CRYPTDB_VALUE)
    assert info.value.sqlstate in ("42000", "HY000")
    assert sql not in info.value.message


@pytest.mark.parametrize(("sql", "policy"), POLICY)
def test_policy_refusal_names_column_and_policy(dry: DryRunner, sql: str, policy: str) -> None:
    before = dry.schema.to_json()
    with pytest.raises(Refusal) as info:
        dry.plan(sql)
    if policy is not None:
        assert isinstance(info.value, PolicyRefusal)
        assert info.value.code == ER_CRYPTDB_POLICY and info.value.sqlstate == "HY000"
        assert "r." in info.value.message and policy in info.value.message
    assert dry.schema.to_json() == before  # nothing peeled


def test_unique_key_needs_det(dry: DryRunner) -> None:
    with pytest.raises(PolicyRefusal):
        dry.plan("CREATE TABLE u (x INT UNIQUE COMMENT 'cryptdb: min=RND')")
    with pytest.raises(Unsupported):
        dry.plan("CREATE TABLE u (x INT COMMENT 'cryptdb: mni=DET')")
    with pytest.raises(Unsupported):
        dry.plan("CREATE TABLE u (x FLOAT)")
    assert isinstance(dry.plan("CREATE TABLE u (x FLOAT COMMENT 'cryptdb: plain')"), Execute)


def test_no_pad_collation_on_encrypted_text_is_refused(dry: DryRunner) -> None:
    """The proxy compares decrypted text with PAD SPACE: a NO PAD collation would differ."""
    with pytest.raises(Unsupported, match="NO PAD"):
        dry.plan("CREATE TABLE np (s VARCHAR(9) COLLATE utf8mb4_nopad_bin)")
    plain = "CREATE TABLE np (s VARCHAR(9) COLLATE utf8mb4_nopad_bin COMMENT 'cryptdb: plain')"
    assert isinstance(dry.plan(plain), Execute)


def test_min_rnd_refuses_equality(dry: DryRunner) -> None:
    with pytest.raises(PolicyRefusal, match=r"k\.x.*min=RND"):
        dry.plan("SELECT y FROM k WHERE x = 1")
    plan = dry.plan("SELECT x FROM k WHERE y = 'a'")
    assert isinstance(plan, Execute) and dry.peels == ["db.k.y eq: RND -> DET"]


def test_errors_carry_no_values(dry: DryRunner) -> None:
    for sql in (
        "INSERT INTO r (s) VALUES ('secret-value-that-is-too-long-for-it')",
        "INSERT INTO r (a) VALUES ('secret')",
        "INSERT INTO r (b) VALUES (NULL)",
    ):
        with pytest.raises(Refusal) as info:
            dry.plan(sql)
        assert "secret" not in info.value.message


def test_unknown_column(dry: DryRunner) -> None:
    with pytest.raises(Refusal) as info:
        dry.plan("SELECT nope FROM r")
    assert info.value.code == 1054



def test_order_refused_on_min_det_column_stays_at_det(encrypted: EncryptedRunner) -> None:
    encrypted.execute(DDL)
    encrypted.execute("INSERT INTO r (m, a) VALUES (1, 1), (2, 2), (3, 3)")
    assert encrypted.execute("SELECT a FROM r WHERE m = 2") == [(2,)]
    column = encrypted.schema.table(encrypted.database, "r").column("m")  # type: ignore[union-attr]
    assert column.onions == {"eq": "det", "ord": "rnd", "add": "hom"}
    with pytest.raises(PolicyRefusal):
        encrypted.execute("SELECT a FROM r WHERE m > 1")
    assert column.onions == {"eq": "det", "ord": "rnd", "add": "hom"}
    # ORDER BY sorts in the proxy instead of peeling: the column stays at DET too.
    assert encrypted.execute("SELECT m FROM r ORDER BY m DESC") == [(3,), (2,), (1,)]
    assert column.onions == {"eq": "det", "ord": "rnd", "add": "hom"}
    with encrypted.conn.cursor() as cur:
        cur.execute(
            f"SELECT {column.onion_name('ord')}, {column.iv_name} FROM "
            f"{encrypted.schema.table(encrypted.database, 'r').backend_name}"
        )  # type: ignore[union-attr]
        cc = encrypted.crypto.column(
            encrypted.schema.databases[encrypted.database].id,
            encrypted.schema.table(encrypted.database, "r").id,  # type: ignore[union-attr]
            column,
        )
        assert sorted(cc.ord_decrypt(ct, iv) for ct, iv in cur.fetchall()) == [1, 2, 3]
    with pytest.raises(pymysql.MySQLError):
        pass_through_missing = "SELECT * FROM r_does_not_exist"
        encrypted.execute(pass_through_missing)
