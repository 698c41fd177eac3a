"""Refusals: what the rewriter sends back instead of forwarding a statement it cannot encrypt.

Messages name tables, columns, operations and policies (plaintext identifiers the client
itself sent) but never values, SQL text or keys, as proxy.protocol.errors requires.
"""

from __future__ import annotations

from proxy.protocol.errors import MysqlError

ER_NOT_SUPPORTED_YET = 1235  # SQLSTATE 42000: "This version of MariaDB doesn't yet support"
# Our own codes. Not 5000-5029: MariaDB Connector/C (the mariadb CLI) reserves them for its
# client-side errors and reports a server ERR carrying one as "malformed packet".
ER_CRYPTDB_POLICY = 7001  # a column's policy forbids the layer a query needs
ER_CRYPTDB_VALUE = 7002  # a constant that cannot be encrypted for its column
ER_CRYPTDB_DECRYPT = 7003  # a stored value did not decrypt
ER_CRYPTDB_SESSION = 7004  # the session cannot run the statement now (settings, locks)


class Refusal(MysqlError):
    """The statement touches an encrypted table in a way the rewriter will not carry out."""


class Unsupported(Refusal):
    def __init__(self, what: str) -> None:
        super().__init__(
            ER_NOT_SUPPORTED_YET, "42000", f"cryptdb: not supported on encrypted tables: {what}"
        )


class PolicyRefusal(Refusal):
    def __init__(self, table: str, column: str, operation: str, policy: str) -> None:
        super().__init__(
            ER_CRYPTDB_POLICY,
            "HY000",
            f"cryptdb: {operation} on {table}.{column} refused by its policy ({policy})",
        )
        self.table = table
        self.column = column


class UnknownColumn(Refusal):
    def __init__(self, name: str, where: str) -> None:
        super().__init__(1054, "42S22", f"Unknown column '{name}' in '{where}'")


class UnknownTable(Refusal):
    def __init__(self, name: str) -> None:
        super().__init__(1146, "42S02", f"Table '{name}' doesn't exist")


class TableExists(Refusal):
    def __init__(self, name: str) -> None:
        super().__init__(1050, "42S01", f"Table '{name}' already exists")


class BadValue(Refusal):
    """A constant the column cannot hold: MariaDB's own codes where one fits (strict mode)."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(code, sqlstate, message)


def out_of_range(column: str) -> BadValue:
    return BadValue(1264, "22003", f"Out of range value for column '{column}'")


def too_long(column: str) -> BadValue:
    return BadValue(1406, "22001", f"Data too long for column '{column}'")


def not_null(column: str) -> BadValue:
    return BadValue(1048, "23000", f"Column '{column}' cannot be null")


def no_default(column: str) -> BadValue:
    return BadValue(1364, "HY000", f"Field '{column}' doesn't have a default value")


def bad_constant(column: str, why: str) -> BadValue:
    return BadValue(ER_CRYPTDB_VALUE, "HY000", f"cryptdb: constant for column '{column}': {why}")
