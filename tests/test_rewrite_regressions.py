"""Rewriter bugs the live-proxy tests found, each against plaintext MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pymysql
import pytest
import sqlglot
from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from proxy.protocol.errors import MysqlError
from proxy.rewrite.resolve import Ctx
from proxy.rewrite.select import select
from tests.rewrite_support import DryRunner, EncryptedRunner, connect, extra_database
from tests.udf_support import ensure_udfs

DDL = (
    "CREATE TABLE n (id INT AUTO_INCREMENT PRIMARY KEY, u SMALLINT UNSIGNED, a INT, d DECIMAL(8,2))"
)


@pytest.fixture
def both(backend: DevBackend, database: str) -> Iterator[tuple[pymysql.Connection, Any]]:
    ensure_udfs(backend)
    plain = connect(backend, database, client_flag=CLIENT.FOUND_ROWS)
    with extra_database(backend) as name:
        runner = EncryptedRunner(backend, name)
        try:
            yield plain, runner
        finally:
            runner.close()
            plain.close()


def _same(plain: pymysql.Connection, runner: EncryptedRunner, sql: str) -> object:
    with plain.cursor() as cur:
        try:
            cur.execute(sql)
            expected: object = list(cur.fetchall()) if cur.description else cur.rowcount
        except pymysql.MySQLError as e:
            expected = ("error", e.args[0])
    try:
        got: object = runner.execute(sql)
    except pymysql.MySQLError as e:
        got = ("error", e.args[0])
    except MysqlError as e:
        got = ("error", e.code)
    assert (sql, got) == (sql, expected)
    return got


def test_increment_delta_is_exact_and_not_range_checked(both) -> None:
    """`u = u - 1` on an UNSIGNED column was refused (the delta -1 was range-checked as a
    stored value); `d = d + 1.255` was rounded to 1.26 before adding, not after."""
    plain, runner = both
    for sql in [
        DDL,
        "INSERT INTO n (u, a, d) VALUES (5, -3, -5.00), (NULL, 1, 1.00)",
        "UPDATE n SET u = u - 1 WHERE id = 1",
        "UPDATE n SET u = u + 65530 WHERE id = 1",
        "UPDATE n SET d = d + 1.255",
        "UPDATE n SET a = a + 1.5",
        "UPDATE n SET a = a - 3000000000 WHERE id = 2",  # the sum is out of range: 1264
        "UPDATE n SET a = a + 2147483640 WHERE id = 1",  # the delta is not
    ]:
        _same(plain, runner, sql)
    assert _same(plain, runner, "SELECT u, a, d FROM n ORDER BY id") == [
        (65534, 2147483638, Decimal("-3.75")),
        (None, 3, Decimal("2.26")),
    ]


def test_result_names_as_written() -> None:
    """MariaDB names a result column as the select list writes it: `A` for a column declared
    `a`, `count( d )` for that call (given the statement's text)."""
    dry = DryRunner()
    dry.plan("CREATE TABLE r (a INT, d DECIMAL(8,2), `p(q` INT)")

    def names(sql: str, text: str) -> list[str]:
        ctx = Ctx(dry.schema, dry.database, dry.crypto, {}, sql=text)
        template = select(sqlglot.parse_one(sql, read="mysql"), ctx=ctx)
        assert template.decoder is not None
        return [c.name for c in template.decoder.columns]

    sql = "SELECT A, x.`a`, x.A AS `Q`, d FROM r AS x"
    assert names(sql, "") == ["A", "a", "Q", "d"]
    sql = "SELECT count( `d` ) , Sum(d), MIN(x.A), COUNT(*), COUNT(DISTINCT a) FROM r x"
    want = ["count( `d` )", "Sum(d)", "MIN(x.A)", "COUNT(*)", "COUNT(DISTINCT a)"]
    assert names(sql, sql) == want
    sql = "SELECT COUNT(`p(q`), MAX( `p(q` ) FROM r"  # a parenthesis in a quoted name
    assert names(sql, sql) == ["COUNT(`p(q`)", "MAX( `p(q` )"]
    # Without the text (a caller that does not pass it): sqlglot's spelling.
    assert names("SELECT count( `d` ) , Sum(d) FROM r", "") == ["COUNT(`d`)", "SUM(d)"]
