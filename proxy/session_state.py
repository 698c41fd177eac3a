"""What a session must know about its backend connection to plan encrypted statements.

Sans I/O: the session feeds it what happened (a statement passed through, the flags the
backend reported) and asks it questions (which database is current, must this SELECT read
the latest rows, are the connection's settings still known to be safe).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import SqlglotError

from proxy.protocol.errors import MysqlError
from proxy.rewrite.errors import ER_CRYPTDB_SESSION

STATUS_IN_TRANS = 0x0001

# The first keyword, after whitespace and comments (not /*! ... */, which has a keyword of
# its own): enough to pick a statement's class, never to rewrite it.
_FIRST_WORD = re.compile(r"(?:\s+|/\*(?!!).*?\*/|(?:--\s|#)[^\n]*(?:\n|$))*(\w+)", re.S)
SCHEMA_CHANGING = frozenset({"CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME"})
WRITING = frozenset({"INSERT", "UPDATE", "REPLACE"})  # statements that store ciphertexts
# Statements after which the character sets and sql_mode are still what they were. Anything
# else (SET, CALL, ...) could change them: they are read again before the next encrypted one.
SETTINGS_SAFE = frozenset(
    {
        "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "SHOW", "DESCRIBE", "DESC",
        "EXPLAIN", "BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "WITH",
        "CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME", "USE", "LOCK", "UNLOCK", "XA",
    }
)  # fmt: skip
UTF8 = frozenset({"utf8mb4", "utf8mb3", "utf8"})
UNSAFE_MODES = ("ANSI_QUOTES", "NO_BACKSLASH_ESCAPES")


def first_word(sql: str) -> str:
    m = _FIRST_WORD.match(sql)
    return m.group(1).upper() if m else ""


@dataclass
class SessionState:
    database: str | None = None
    tx_token: str | None = None  # the schema token when the open transaction began
    settings_checked: bool = False
    # The session's isolation level is READ COMMITTED / UNCOMMITTED (what Django sets): every
    # consistent read sees the rows committed before it, a peel's included.
    read_committed: bool = False
    # A `SET TRANSACTION ISOLATION LEVEL` for the next transaction only, which @@tx_isolation
    # does not show: that transaction's level is unknown until it ends.
    next_level_set: bool = False

    def reset(self) -> None:
        """COM_RESET_CONNECTION: the backend session starts over (same database)."""
        self.tx_token = None
        self.settings_checked = False
        self.read_committed = self.next_level_set = False

    def current_read(self, status: int, token: str) -> bool:
        """Inside a transaction begun before the schema last changed (a peel), a repeatable
        read's snapshot still has the outer layers: read the latest rows instead (locking
        reads). Under READ COMMITTED, known to be in force, plain reads already see them."""
        if not status & STATUS_IN_TRANS or self.tx_token == token:
            return False
        return not (self.read_committed and self.settings_checked and not self.next_level_set)

    def after_statement(self, status: int, was_in_trans: int, token: str) -> None:
        if status & STATUS_IN_TRANS and not was_in_trans:
            self.tx_token = token
        elif not status & STATUS_IN_TRANS:
            self.tx_token = None
            self.next_level_set = False  # the transaction it was set for has ended

    def after_pass_through(
        self,
        sql: str,
        ok: bool,
        status: int,
        was_in_trans: int,
        token: str,
        word: str | None = None,
    ) -> None:
        word = first_word(sql) if word is None else word
        if word not in SETTINGS_SAFE:
            self.settings_checked = False
        if ok:
            self.after_statement(status, was_in_trans, token)
            if word == "SET" and _sets_next_transaction(sql):
                self.next_level_set = True  # after: its own statement ended no transaction
            if word == "USE":
                self.database = _use_target(sql) or self.database

    def check_settings(self, row: Sequence[bytes | None]) -> None:
        """Validate (character_set_client, character_set_results, sql_mode[, tx_isolation])."""
        values = [None if v is None else v.decode("ascii", "replace") for v in row]
        client, results, mode = values[:3]
        level = values[3] if len(values) > 3 else None
        self.read_committed = level in ("READ-COMMITTED", "READ-UNCOMMITTED")
        # Results: decrypted text is sent as utf8mb4; a utf8mb3 client would need MariaDB's
        # conversion ('?' outside the BMP), which the proxy does not imitate.
        if client not in UTF8 or (results is not None and results != "utf8mb4"):
            raise MysqlError(
                ER_CRYPTDB_SESSION,
                "HY000",
                "cryptdb: statements on encrypted tables need a UTF-8 connection: "
                "SET NAMES utf8mb4",
            )
        bad = [m for m in UNSAFE_MODES if m in (mode or "").upper().split(",")]
        if bad:
            raise MysqlError(
                ER_CRYPTDB_SESSION,
                "HY000",
                f"cryptdb: statements on encrypted tables do not support sql_mode {bad[0]}",
            )
        self.settings_checked = True


def _sets_next_transaction(sql: str) -> bool:
    """`SET TRANSACTION ...` (no SESSION / GLOBAL): the next transaction's characteristics.
    Tokens, not a parse: sqlglot's SET drops the scope keyword."""
    try:
        tokens = MySQL().tokenize(sql)
    except SqlglotError:
        return True  # unreadable: assume it may have
    words = [t.text.upper() for t in tokens[:2]]
    return words == ["SET", "TRANSACTION"]


def _use_target(sql: str) -> str | None:
    try:
        node = sqlglot.parse_one(sql, read="mysql")
    except SqlglotError:
        return None
    return node.this.name if isinstance(node, exp.Use) and node.this is not None else None
