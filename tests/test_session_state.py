"""SessionState, sans I/O: statement classes, transaction tokens, settings checks."""

from __future__ import annotations

import pytest

from proxy.protocol.errors import MysqlError
from proxy.session_state import SCHEMA_CHANGING, WRITING, SessionState, first_word

IN_TRANS, AUTOCOMMIT = 0x0001, 0x0002


@pytest.mark.parametrize(
    ("sql", "word"),
    [
        ("select 1", "SELECT"),
        ("  /* hi */ SET NAMES latin1", "SET"),
        ("-- note\nCREATE TABLE t (a INT)", "CREATE"),
        ("# note\n\tdrop table t", "DROP"),
        ("/*!40101 SET NAMES latin1 */", ""),  # an executable comment is not skipped
        ("", ""),
    ],
)
def test_first_word(sql: str, word: str) -> None:
    assert first_word(sql) == word


def test_schema_changing_and_writing_statements() -> None:
    assert first_word("CREATE TABLE t (a INT)") in SCHEMA_CHANGING
    assert first_word("/* x */ alter table t add column b int") in SCHEMA_CHANGING
    assert first_word("SELECT * FROM t") not in SCHEMA_CHANGING | WRITING
    assert first_word(" replace INTO t VALUES (1)") in WRITING


def test_transaction_token_and_current_read() -> None:
    s = SessionState()
    s.after_pass_through("BEGIN", True, AUTOCOMMIT | IN_TRANS, 0, "tok1")
    assert s.tx_token == "tok1"
    assert not s.current_read(AUTOCOMMIT | IN_TRANS, "tok1")
    assert s.current_read(AUTOCOMMIT | IN_TRANS, "tok2")  # a peel happened since BEGIN
    s.after_statement(AUTOCOMMIT | IN_TRANS, IN_TRANS, "tok2")
    assert s.tx_token == "tok1"  # still the transaction's start
    s.after_pass_through("COMMIT", True, AUTOCOMMIT, IN_TRANS, "tok2")
    assert s.tx_token is None and not s.current_read(AUTOCOMMIT, "tok3")


def test_read_committed_needs_no_current_reads() -> None:
    s = SessionState()
    s.check_settings([b"utf8mb4", b"utf8mb4", b"", b"READ-COMMITTED"])
    s.after_pass_through("BEGIN", True, IN_TRANS, 0, "tok1")
    assert not s.current_read(IN_TRANS, "tok2")  # plain reads see the peel
    s.after_pass_through("COMMIT", True, 0, IN_TRANS, "tok2")
    # For the next transaction only: @@tx_isolation would not show it.
    s.after_pass_through("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", True, 0, 0, "tok2")
    s.check_settings([b"utf8mb4", b"utf8mb4", b"", b"READ-COMMITTED"])
    s.after_pass_through("BEGIN", True, IN_TRANS, 0, "tok2")
    assert s.current_read(IN_TRANS, "tok3")
    s.after_pass_through("COMMIT", True, 0, IN_TRANS, "tok3")
    s.after_pass_through("BEGIN", True, IN_TRANS, 0, "tok3")
    assert not s.current_read(IN_TRANS, "tok4")  # that transaction is over
    s.after_pass_through("COMMIT", True, 0, IN_TRANS, "tok4")
    s.after_pass_through("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", True, 0, 0, "tok4")
    assert s.next_level_set
    s.after_pass_through("SELECT 1", True, 0, 0, "tok4")  # an autocommit statement used it
    assert not s.next_level_set
    s.after_pass_through("BEGIN", True, IN_TRANS, 0, "tok3")  # begun before a peel (tok4)
    # Settings not read since a SET: not known to be READ COMMITTED any more.
    s.after_pass_through("SET SESSION tx_isolation = 'REPEATABLE-READ'", True, IN_TRANS, 1, "t")
    assert s.current_read(IN_TRANS, "tok4")
    s.check_settings([b"utf8mb4", b"utf8mb4", b"", b"REPEATABLE-READ"])
    assert s.current_read(IN_TRANS, "tok4")


def test_use_tracks_the_database_only_when_it_succeeds() -> None:
    s = SessionState(database="a")
    s.after_pass_through("USE `b`", True, AUTOCOMMIT, 0, "t")
    assert s.database == "b"
    s.after_pass_through("USE nowhere", False, AUTOCOMMIT, 0, "t")
    assert s.database == "b"


def test_settings_are_rechecked_after_set_and_call() -> None:
    s = SessionState()
    s.check_settings([b"utf8mb4", b"utf8mb4", b"STRICT_TRANS_TABLES"])
    assert s.settings_checked
    s.after_pass_through("SELECT 1", True, AUTOCOMMIT, 0, "t")
    assert s.settings_checked
    s.after_pass_through("SET @x = 1", True, AUTOCOMMIT, 0, "t")
    assert not s.settings_checked
    s.check_settings([b"utf8mb4", None, b""])
    s.after_pass_through("CALL p()", True, AUTOCOMMIT, 0, "t")
    assert not s.settings_checked


@pytest.mark.parametrize(
    "row",
    [
        [b"latin1", b"utf8mb4", b""],
        [b"utf8mb4", b"latin1", b""],
        [b"utf8mb4", b"utf8mb4", b"STRICT_ALL_TABLES,ANSI_QUOTES"],
        [b"utf8mb4", b"utf8mb4", b"NO_BACKSLASH_ESCAPES"],
    ],
)
def test_unsafe_settings_are_refused(row: list[bytes]) -> None:
    s = SessionState()
    with pytest.raises(MysqlError) as e:
        s.check_settings(row)
    assert e.value.code == 7004
    assert not s.settings_checked
