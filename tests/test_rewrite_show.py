"""The plaintext schema shown to clients: SHOW TABLES, DESCRIBE, SHOW CREATE TABLE."""

from __future__ import annotations

from proxy.rewrite import Execute, PassThrough
from tests.rewrite_support import DryRunner, EncryptedRunner
from tests.rewrite_workload import DDL


def answer(runner: DryRunner, sql: str) -> list[tuple[object, ...]]:
    plan = runner.plan(sql)
    assert isinstance(plan, Execute) and plan.sql is None and plan.decoder is not None
    rows = plan.decoder.decode([])
    for row in rows:
        plan.decoder.text_row(row)  # every value encodes
    return rows


def test_show_create_table_round_trips_policies() -> None:
    dry = DryRunner()
    dry.plan(DDL)
    dry.plan(
        "CREATE TABLE j (x INT COMMENT 'cryptdb: join=G; min=DET', "
        "y INT UNSIGNED NOT NULL UNIQUE, z DATE COMMENT 'cryptdb: onions=eq')"
    )
    for name in ("r", "j"):
        [(table, ddl)] = answer(dry, f"SHOW CREATE TABLE {name}")
        before = dry.schema.table("db", name)
        assert table == name and before is not None
        dry.plan(f"DROP TABLE {name}")
        dry.plan(str(ddl))
        after = dry.schema.table("db", name)
        assert after is not None and after.id != before.id
        for a, b in zip(before.columns, after.columns, strict=True):
            assert (
                a.name,
                a.kind,
                a.bits,
                a.nullable,
                a.plain,
                a.min_level,
                a.onions,
                a.join_group,
                a.default,
                a.auto_increment,
                a.collation,
                a.scale,
                a.fsp,
            ) == (
                b.name,
                b.kind,
                b.bits,
                b.nullable,
                b.plain,
                b.min_level,
                b.onions,
                b.join_group,
                b.default,
                b.auto_increment,
                b.collation,
                b.scale,
                b.fsp,
            )
        assert [(i.name, i.unique, i.primary) for i in before.indexes] == [
            (i.name, i.unique, i.primary) for i in after.indexes
        ]


def test_describe() -> None:
    dry = DryRunner()
    dry.plan(DDL)
    rows = answer(dry, "DESCRIBE r")
    assert rows[0] == ("id", "int(11)", "NO", "PRI", None, "auto_increment")
    assert ("u", "smallint(5) unsigned", "YES", "", None, "") in rows
    assert answer(dry, "SHOW COLUMNS FROM r") == rows
    full = answer(dry, "SHOW FULL COLUMNS FROM r")
    assert full[-1][-1] == "cryptdb: plain" and full[4][-1] == "cryptdb: min=OPE; onions=eq,search"
    assert isinstance(dry.plan("DESCRIBE not_ours"), PassThrough)



def test_show_tables(encrypted: EncryptedRunner) -> None:
    encrypted.execute(DDL)
    encrypted.execute("CREATE TABLE rr (k INT)")
    encrypted.execute("INSERT INTO rr (k) VALUES (1)")
    encrypted.execute("SELECT * FROM rr WHERE k = 1")  # a peel: the layers table now exists
    with encrypted.conn.cursor() as cur:
        cur.execute("CREATE TABLE plain_one (x INT)")
    # Listed by name as MariaDB does, whatever the order of the backend names (the DDL's
    # many columns take ids: r is t_1, rr t_<two digits>, a t_<larger>).
    encrypted.execute("CREATE TABLE a (k INT)")
    assert encrypted.execute("SHOW TABLES") == [("a",), ("plain_one",), ("r",), ("rr",)]
    assert encrypted.execute("SHOW TABLES LIKE 'r%'") == [("r",), ("rr",)]
    assert encrypted.execute("SHOW FULL TABLES LIKE 'rr'") == [("rr", "BASE TABLE")]
