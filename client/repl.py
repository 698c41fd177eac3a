"""The shell's loop: read lines, split statements, run them, print like the mysql CLI."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

import pymysql
from pymysql.constants import CR

from client import output
from client.connection import HR42Connection
from client.splitter import Splitter, Statement

QUIT = re.compile(r"\s*(quit|exit|\\q)\s*;?\s*$", re.IGNORECASE)
USE = re.compile(r"\s*use\s+(`(?:[^`]|``)+`|[^\s;`]+)\s*;?\s*$", re.IGNORECASE)
HELP = re.compile(r"\s*(help|\\h|\?)\s*;?\s*$", re.IGNORECASE)
# Lines that may hold a password stay out of the history file (as MySQL 8's client does).
SENSITIVE = re.compile(r"IDENTIFIED|PASSWORD", re.IGNORECASE)
LOST = frozenset({CR.CR_SERVER_GONE_ERROR, CR.CR_SERVER_LOST, 2055})
HELP_TEXT = """\
End a statement with ; (or the current delimiter), \\g, or \\G for vertical output.
Client commands: quit / exit / \\q (or Ctrl-D), use DB, delimiter STR, \\c (clear the input),
help. Ctrl-C clears the line being typed, or aborts a running statement."""


def error_line(e: BaseException, line: int | None = None) -> str:
    """mysql's format: ERROR 1064 (42000): message; "at line N" in batch mode."""
    if isinstance(e, pymysql.MySQLError) and len(e.args) >= 2:
        code, message = e.args[0], e.args[1]
        state = getattr(e, "sqlstate", None) or "HY000"
        where = f" at line {line}" if line is not None else ""
        return f"ERROR {code} ({state}){where}: {message}"
    return f"ERROR: {e}"


class Runner:
    """Runs statements on a connection it (re)opens on demand."""

    def __init__(
        self,
        connect: Callable[[], HR42Connection],
        *,
        interactive: bool,
        table: bool,
        headers: bool,
        force: bool,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
    ) -> None:
        self._connect = connect
        self.interactive = interactive
        self.table = table  # boxed tables (else tab-separated)
        self.headers = headers
        self.force = force
        self.out, self.err = out, err
        self.conn: HR42Connection | None = None
        self.database: str | None = None
        self.failed = False

    def open(self) -> HR42Connection:
        if self.conn is None or not self.conn.open:
            self.conn = conn = self._connect()
            if self.database:  # a reconnect: back to where the user was
                try:
                    conn.select_db(self.database)
                except pymysql.MySQLError:
                    self.database = None  # dropped meanwhile
            if not self.database:
                self.database = _current_database(conn)
        return self.conn

    def close(self) -> None:
        if self.conn is not None and self.conn.open:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    # -- input ------------------------------------------------------------------------

    def feed_lines(self, lines: Iterable[str], splitter: Splitter) -> bool:
        """Batch input (-e text, piped stdin). False once an error should stop the run."""
        for n, line in enumerate(lines, 1):
            if not self.line(line, splitter, n):
                return False
        return all(self.run(s) for s in splitter.flush())

    def line(self, line: str, splitter: Splitter, n: int | None = None) -> bool:
        """One input line; False to stop (quit, or an error in batch mode)."""
        if not splitter.pending:
            if QUIT.match(line):
                return False
            if m := USE.match(line):
                splitter.feed("")  # keep line numbers right
                return self.use(m.group(1), n)
            if HELP.match(line):
                splitter.feed("")
                print(HELP_TEXT, file=self.out)
                return True
        return all(self.run(s) for s in splitter.feed(line.rstrip("\r\n")))

    # -- statements -------------------------------------------------------------------

    def use(self, name: str, n: int | None) -> bool:
        if name.startswith("`"):
            name = name[1:-1].replace("``", "`")
        try:
            self.open().select_db(name)
        except pymysql.MySQLError as e:
            return self._failed(e, n)
        self.database = name
        if self.interactive:
            print("Database changed", file=self.out)
        return True

    def run(self, stmt: Statement) -> bool:
        start = time.monotonic()
        try:
            results = self._execute(stmt.sql)
        except pymysql.MySQLError as e:
            return self._failed(e, stmt.line)
        except KeyboardInterrupt:
            # The driver's state is unknown mid-read: drop the connection, reopen on demand.
            self._drop()
            print("Query aborted by Ctrl+C", file=self.err)
            return self.interactive
        elapsed = time.monotonic() - start
        for result in results:
            self._print(result, stmt.vertical, elapsed)
        if re.match(r"\s*(use|drop\s+(database|schema))\b", stmt.sql, re.IGNORECASE):
            with contextlib.suppress(pymysql.MySQLError):  # only the prompt depends on it
                self.database = _current_database(self.open())
        return True

    def _execute(self, sql: str) -> list[output.ResultSet | output.Ok]:
        conn = self.open()
        results: list[output.ResultSet | output.Ok] = []
        with conn.cursor() as cur:
            cur.execute(sql)
            while True:
                result = conn._result
                warnings = result.warning_count if result is not None else 0
                if cur.description:
                    results.append(
                        output.ResultSet(
                            columns=[d[0] for d in cur.description],
                            numeric=[d[1] in output.NUMERIC_TYPES for d in cur.description],
                            rows=list(cur.fetchall()),
                            warnings=warnings,
                        )
                    )
                else:
                    info = result.message if result is not None and result.message else b""
                    if info and info[0] == len(info) - 1:
                        info = info[1:]  # MariaDB sends it length-prefixed; PyMySQL keeps that
                    results.append(
                        output.Ok(
                            affected=max(cur.rowcount, 0),
                            warnings=warnings,
                            info=info.decode("utf-8", "replace").strip(),
                        )
                    )
                if not cur.nextset():
                    return results

    def _print(self, result: output.ResultSet | output.Ok, vertical: bool, elapsed: float) -> None:
        if isinstance(result, output.ResultSet):
            if vertical:
                text = output.vertical(result)
            elif self.table:
                text = output.table(result) if result.rows else ""
            else:
                text = output.batch(result, headers=self.headers)
            if text:
                print(text, file=self.out)
        if self.interactive:
            print(output.summary(result, elapsed) + "\n", file=self.out)

    def _failed(self, e: pymysql.MySQLError, line: int | None) -> bool:
        print(error_line(e, None if self.interactive else line), file=self.err)
        if e.args and e.args[0] in LOST or isinstance(e, pymysql.err.InterfaceError):
            self._drop()
        self.failed = True
        return self.interactive or self.force

    def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn._force_close()
        self.conn = None


def _current_database(conn: HR42Connection) -> str | None:
    with conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        row = cur.fetchone()
    return row[0] if row and row[0] else None


# -- interactive ----------------------------------------------------------------------


def interactive(runner: Runner, banner: str) -> int:
    history = _load_history()
    print(banner, file=runner.out)
    splitter = Splitter()
    try:
        while True:
            if splitter.pending:
                prompt = f"    {splitter.state} "
            else:
                prompt = f"cryptdb [{runner.database or '(none)'}]> "
            try:
                line = input(prompt)
            except EOFError:
                print(file=runner.out)
                break
            except KeyboardInterrupt:
                print("^C", file=runner.out)
                splitter.reset()
                continue
            _forget_if_sensitive(line)
            if not runner.line(line, splitter):
                break
    finally:
        print("Bye", file=runner.out)
        _save_history(history)
    return 0


def _history_path() -> Path | None:
    name = os.environ.get("CRYPTDB_HISTFILE")
    path = Path(name) if name else Path.home() / ".cryptdb_history"
    return None if str(path) == os.devnull else path


def _load_history() -> Path | None:
    try:
        import readline
    except ImportError:
        return None
    path = _history_path()
    if path is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(path)
    readline.set_history_length(1000)
    return path


def _save_history(path: Path | None) -> None:
    if path is None:
        return
    import readline

    from keystore.files import strict_umask

    with strict_umask(), contextlib.suppress(OSError):  # history can hold data: keep it 0600
        readline.write_history_file(path)


def _forget_if_sensitive(line: str) -> None:
    if not SENSITIVE.search(line):
        return
    try:
        import readline
    except ImportError:
        return
    n = readline.get_current_history_length()
    if n and readline.get_history_item(n) == line:
        readline.remove_history_item(n - 1)
