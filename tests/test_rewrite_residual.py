"""Residual conditions (proxy.rewrite.residual) through the rewriter's plans against a
plaintext copy on MariaDB: tests/residual_workload.py's seeded SELECTs (text ranges,
BETWEEN, LIKE patterns with wildcards and escapes, ESCAPE, NOT, mixed with conditions the
server evaluates, ORDER BY + LIMIT / OFFSET, ungrouped aggregates, a join), NULLs, trailing
spaces and non-ASCII text; the LIKE matcher and the PAD SPACE comparison against MariaDB's
own answers; refusals; the shape cache; a scan of the encrypted tables for plaintext.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pymysql
import pytest

from proxy.protocol.errors import MysqlError
from proxy.rewrite.decode import pad_space_cmp
from proxy.rewrite.residual import like_matcher
from tests.residual_workload import BOUNDS, DDL, LIKES, REFUSED, TEXTS, ResidualWorkload, quote
from tests.rewrite_support import (
    BOTH_FAILED,
    EncryptedRunner,
    compare_outcomes,
    encrypted_outcome,
    plain_outcome,
)
from tests.rewrite_workload import needles, same
from tests.test_rewrite_subquery import scan_encrypted

STATEMENTS = 400


def unpadded(rows: Any) -> Any:
    """MIN / MAX among values equal under PAD SPACE ('apple', 'apple '): MariaDB returns
    the first its scan meets, and the two backends scan in different orders."""
    if not isinstance(rows, list):
        return rows
    return [tuple(v.rstrip(" ") if isinstance(v, str) else v for v in row) for row in rows]


def _setup(cur: Any, encrypted: EncryptedRunner) -> None:
    for ddl in DDL:
        cur.execute(ddl)
        encrypted.execute(ddl)


@pytest.mark.parametrize("seed", [61, 62])
def test_residual_differential(
    plain: pymysql.Connection, encrypted: EncryptedRunner, seed: int
) -> None:
    work = ResidualWorkload(seed)
    kinds: Counter[str] = Counter()
    with plain.cursor() as cur:
        _setup(cur, encrypted)
        for n in range(STATEMENTS):
            st = work.statement(n)
            if st.kind == "agg":
                p, e = plain_outcome(cur, st.sql), encrypted_outcome(encrypted, st.sql)
                assert unpadded(p) == unpadded(e), ((seed, n), st.sql, p, e)
                kinds["agg"] += 1
                continue
            p = compare_outcomes(cur, encrypted, st.sql, st.ordered, (seed, n))
            if p is BOTH_FAILED:
                print("both failed:", st.sql[:100], plain_outcome(cur, st.sql))
                kinds["both failed"] += 1
                continue
            kinds[st.kind] += 1
            if st.kind != "insert" and p:
                kinds["non-empty"] += 1
    print(f"\nseed {seed}: {dict(kinds)}")
    assert kinds["non-empty"] > 120 and kinds["ordered"] > 80 and kinds["agg"] > 40
    assert kinds["both failed"] < 5
    wanted = needles({t for t in work.texts | work.constants if len(t.encode()) >= 5})
    scan_encrypted(encrypted, wanted, tables=("q", "q2"))
    # the residuals' constants never reached the server, in any statement
    sent = "\n".join(encrypted.backend_sql)
    leaked = [c for c in work.constants if len(c) >= 4 and quote(c)[1:-1] in sent]
    assert leaked == []


def test_like_and_pad_space_match_mariadb(plain: pymysql.Connection) -> None:
    """The matcher and the comparison against MariaDB's own, value by value."""
    values = sorted(set(TEXTS + BOUNDS + ["melon\\", "z!", "a%b", "A"]))
    patterns = [*LIKES, "melon\\", "z!", "%\\", "\\", "a\\%b", "a\\b"]
    with plain.cursor() as cur:
        for v in values:
            for pat in patterns:
                cur.execute(f"SELECT {quote(v)} COLLATE utf8mb4_bin LIKE {quote(pat)}")
                want = cur.fetchone()[0] == 1
                assert (
                    like_matcher(pat) is not None and like_matcher(pat)(v) is not None
                ) == want, (v, pat)
            for pat in ["z!", "melon!_x", "!%", "a!"]:
                cur.execute(f"SELECT {quote(v)} COLLATE utf8mb4_bin LIKE {quote(pat)} ESCAPE '!'")
                assert (like_matcher(pat, "!")(v) is not None) == (cur.fetchone()[0] == 1), (v, pat)
            for w in values:
                cur.execute(f"SELECT STRCMP({quote(v)} COLLATE utf8mb4_bin, {quote(w)})")
                assert pad_space_cmp(v, w) == cur.fetchone()[0], (v, w)


@pytest.mark.parametrize(("sql", "word"), REFUSED)
def test_residual_refusals(encrypted: EncryptedRunner, sql: str, word: str) -> None:
    for ddl in DDL:
        encrypted.execute(ddl)
    with pytest.raises(MysqlError) as e:
        encrypted.execute(sql)
    assert e.value.code == 1235 and word in e.value.message, e.value.message


def test_shape_cache_keeps_like_decisions(
    plain: pymysql.Connection, encrypted: EncryptedRunner
) -> None:
    """'%word%' goes to the Search onion, 'word%' stays in the proxy: one shape, two plans;
    a cached residual plan binds its constants anew."""
    with plain.cursor() as cur:
        _setup(cur, encrypted)
        for v in ["apple pie", "applesauce", "an apple", "banana"]:
            sql = f"INSERT INTO q (s, c, r, g, a) VALUES ('{v}', 'x', 'y', 'z', 1)"
            cur.execute(sql)
            encrypted.execute(sql)
        assert encrypted.execute("SELECT id FROM q WHERE s LIKE '%apple%'") == [(1,), (3,)]
        assert encrypted.execute("SELECT id FROM q WHERE s LIKE 'apple%'") == [(1,), (2,)]
        assert encrypted.execute("SELECT id FROM q WHERE s LIKE '%apple%'") == [(1,), (3,)]
        assert encrypted.execute("SELECT id FROM q WHERE s LIKE 'ban%'") == [(4,)]
        hits = encrypted.rewriter.hits
        assert encrypted.execute("SELECT id FROM q WHERE s < 'b' ORDER BY id") == [(1,), (2,), (3,)]
        assert encrypted.execute("SELECT id FROM q WHERE s < 'ap' ORDER BY id") == [(3,)]
        assert encrypted.rewriter.hits == hits + 1
        for sql in [
            "SELECT id FROM q WHERE s < 'b' ORDER BY id",
            "SELECT id FROM q WHERE s < 'ap' ORDER BY id",
        ]:
            cur.execute(sql)
            assert same(list(cur.fetchall()), encrypted.execute(sql), True)


def test_not_like_reaches_the_server_negated(
    plain: pymysql.Connection, encrypted: EncryptedRunner
) -> None:
    """sqlglot parses `x NOT LIKE p` as LIKE with `negate` set: on plain columns and the
    Search onion the NOT must reach the server (it was once dropped)."""
    with plain.cursor() as cur:
        _setup(cur, encrypted)
        for sql in [
            "INSERT INTO q (s, p) VALUES ('apple', 1), ('pear', 12), (NULL, 3), ('fig', NULL)",
            "SELECT id FROM q WHERE p NOT LIKE '1%'",
            "SELECT id FROM q WHERE p LIKE '1%'",
            "SELECT id FROM q WHERE s NOT LIKE '%apple%'",
            "SELECT id FROM q WHERE NOT s LIKE '%pear%' AND p NOT LIKE '3'",
        ]:
            assert compare_outcomes(cur, encrypted, sql, False, sql) is not BOTH_FAILED


def test_edge_cases_against_mariadb(plain: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    """MariaDB's own error for a bad ESCAPE, NULL bounds and patterns left to the server,
    an empty table, the constant first, and the write path's empty match."""
    with plain.cursor() as cur:
        _setup(cur, encrypted)
        for sql in [
            "SELECT id FROM q WHERE s LIKE 'a%'",
            "SELECT COUNT(*), MIN(s), MAX(c) FROM q WHERE s > 'a'",
            "INSERT INTO q (s, c, p) VALUES ('a ', 'a', 1), ('a', 'b', 2), ('a\\t', NULL, 3)",
            "SELECT id FROM q WHERE s LIKE 'a' ESCAPE 'ab'",
            "SELECT id FROM q WHERE s < NULL",
            "SELECT id FROM q WHERE s LIKE 'a' ESCAPE ''",
            "SELECT id FROM q WHERE 'a' >= s",
            "SELECT id FROM q WHERE s BETWEEN 'a' AND 'a'",
            "SELECT id FROM q WHERE s LIKE 'a '",
            "SELECT id FROM q WHERE c LIKE 'a'",
            "SELECT MIN(s), MAX(s), COUNT(c) FROM q",
            "SELECT COUNT(*) FROM q WHERE s > 'a' LIMIT 0",
            "UPDATE q SET p = 9 WHERE s > 'zzz'",
            "DELETE FROM q WHERE s < 'a' AND p = 3",
            "SELECT id, s, p FROM q",
            # subqueries first, their values then compared here (never sent)
            "INSERT INTO q2 (k, t) VALUES (1, 'a '), (2, 'apple'), (3, NULL)",
            "SELECT id FROM q WHERE s < (SELECT MAX(t) FROM q2)",
            "SELECT id FROM q WHERE s >= ALL (SELECT t FROM q2 WHERE t IS NOT NULL)",
            "SELECT t FROM q2 WHERE t < 'b' UNION SELECT s FROM q WHERE s LIKE 'a_'",
        ]:
            compare_outcomes(cur, encrypted, sql, False, sql)
        # Rows the proxy selected, their plain values written into a statement the server
        # runs, would tell it which rows match a pattern it cannot evaluate: refused.
        leak = "SELECT id FROM q WHERE p IN (SELECT k FROM q2 WHERE t LIKE 'a%')"
        assert encrypted_outcome(encrypted, leak) == ("error", 1235)


def test_backend_order_kept_with_a_residual(
    plain: pymysql.Connection, encrypted: EncryptedRunner
) -> None:
    """An ORDER BY the backend does exactly stays there (the proxy's filter keeps the rows'
    order; only LIMIT / OFFSET move): a plain utf8mb4_general_ci column sorts 'é' with 'e',
    which the proxy's own text sort would put after 'z'. And SUM of an Add-only column is
    refused rather than decrypted row by row (a Paillier decryption each)."""
    ddl = (
        "CREATE TABLE o (id INT AUTO_INCREMENT PRIMARY KEY, s VARCHAR(9) COLLATE utf8mb4_bin, "
        "n VARCHAR(9) COMMENT 'cryptdb: plain', h INT COMMENT 'cryptdb: onions=add')"
    )
    with plain.cursor() as cur:
        cur.execute(ddl.replace(" COMMENT 'cryptdb: plain'", "").replace(
            " COMMENT 'cryptdb: onions=add'", ""))  # fmt: skip
        encrypted.execute(ddl)
        rows = "('a', 'f', 1), ('b', 'é', 2), ('c', 'e', 3), ('zz', 'd', 4), ('d', 'z', 5)"
        for sql in [
            f"INSERT INTO o (s, n, h) VALUES {rows}",
            "SELECT s, n FROM o WHERE s < 'x' ORDER BY n, id",
            "SELECT s, n FROM o WHERE s BETWEEN 'a' AND 'c' ORDER BY n DESC, id LIMIT 2",
            "SELECT id FROM o WHERE s LIKE '_' ORDER BY n, id LIMIT 1 OFFSET 2",
        ]:
            compare_outcomes(cur, encrypted, sql, True, sql)
    assert encrypted_outcome(encrypted, "SELECT SUM(h) FROM o WHERE s < 'x'") == ("error", 1235)
