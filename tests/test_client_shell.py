"""`cryptdb shell` against the real proxy: batch (-e, stdin), interactive through a pty, keys."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, REPO
from proxy.protocol.handshake import HandshakeResponse42
from tests.test_client_helper import Relay, packets, parse_first

SECRET_KEY = "correct horse battery staple ✓"


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "CRYPTDB_HISTFILE": str(tmp_path / "history"),
    }
    env.update(extra)
    return env


def shell(
    proxy_port: int, *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    # A new session without a controlling terminal: a prompt fails fast instead of hanging.
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", "shell", "-P", str(proxy_port), "-u", DEMO_USER,
         *args],
        input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=30,
        env=env, cwd=REPO, start_new_session=True,
    )


@pytest.fixture
def wire(proxy) -> Iterator[Relay]:
    """A relay in front of the proxy recording the client's bytes (use --skip-ssl)."""
    r = Relay(proxy.port)
    yield r
    r.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return base_env(tmp_path, MYSQL_PWD=DEMO_PASSWORD)


# -- batch ------------------------------------------------------------------------------


def test_execute_prints_tab_separated(proxy, database: str, env: dict[str, str]) -> None:
    r = shell(
        proxy.port, "-D", database, "-e",
        "CREATE TABLE t (id INT, s VARCHAR(20), b VARBINARY(4));"
        "INSERT INTO t VALUES (1, 'tab\\there', x'00ff'), (2, NULL, 'ok'), (3, '日本', NULL);"
        "SELECT * FROM t ORDER BY id",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "id\ts\tb", "1\ttab\\there\t0x00FF", "2\tNULL\tok", "3\t日本\tNULL",
    ]
    r = shell(proxy.port, "-D", database, "-N", "-e", "SELECT id FROM t WHERE id > 1", env=env)
    assert r.stdout == "2\n3\n"
    r = shell(proxy.port, "-D", database, "-t", "-e", "SELECT id, s FROM t WHERE id = 3", env=env)
    assert r.stdout.splitlines() == [
        "+----+------+", "| id | s    |", "+----+------+", "|  3 | 日本 |", "+----+------+",
    ]


def test_stdin_batch(proxy, database: str, env: dict[str, str]) -> None:
    script = f"""
use {database}
CREATE TABLE t (n INT);   -- a comment; not a statement end
INSERT INTO t
  VALUES (1), (2);
delimiter //
SELECT SUM(n) AS total
FROM t//
delimiter ;
SELECT 'a;b' AS "x;y"\\G
SELECT COUNT(*) FROM t
"""
    r = shell(proxy.port, env=env, stdin=script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "total", "3",
        "*************************** 1. row ***************************", "x;y: a;b",
        "COUNT(*)", "2",
    ]


def test_batch_error_stops_unless_forced(proxy, database: str, env: dict[str, str]) -> None:
    script = "SELECT 1 AS a;\n\nSELEC 2;\nSELECT 3 AS c;\n"
    r = shell(proxy.port, "-D", database, env=env, stdin=script)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["a", "1"]
    assert re.fullmatch(r"ERROR 1064 \(42000\) at line 3: You have an error in your SQL.*\n",
                        r.stderr)
    r = shell(proxy.port, "-D", database, "-f", env=env, stdin=script)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["a", "1", "c", "3"]


def test_wrong_password(proxy, tmp_path: Path) -> None:
    r = shell(proxy.port, "-e", "SELECT 1", env=base_env(tmp_path, MYSQL_PWD="nope"))
    assert r.returncode == 1
    assert r.stderr.startswith("ERROR 1045 (28000): Access denied")


def test_no_terminal_no_password_does_not_hang(proxy, tmp_path: Path) -> None:
    r = shell(proxy.port, "-e", "SELECT 1", env=base_env(tmp_path))
    assert r.returncode == 2
    assert "no password" in r.stderr


# -- TLS ----------------------------------------------------------------------------------


def test_ssl_ca_verifies_the_proxy(proxy, env: dict[str, str], tmp_path: Path) -> None:
    r = shell(proxy.port, "--ssl-ca", str(proxy.cert), "-e", "SELECT 7", env=env)
    assert (r.returncode, r.stdout) == (0, "7\n7\n"), r.stderr
    from proxy.tls import ensure_self_signed

    other_ca, _ = ensure_self_signed(tmp_path / "other")
    r = shell(proxy.port, "--ssl-ca", str(other_ca), "-e", "SELECT 7", env=env)
    assert r.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in r.stderr or "certificate verify failed" in r.stderr
    r = shell(proxy.port, "--ssl", "-e", "SELECT 8", env=env)  # TLS, unverified
    assert r.stdout == "8\n8\n", r.stderr


# -- defaults file ------------------------------------------------------------------------


def test_defaults_file(proxy, database: str, tmp_path: Path) -> None:
    cnf = tmp_path / "my.cnf"
    cnf.write_text(
        f"[client]\nuser = {DEMO_USER}\npassword = \"{DEMO_PASSWORD}\"\nhost = 127.0.0.1\n"
        f"port = {proxy.port}\n[cryptdb-shell]\ndatabase = {database}\n"
    )
    cnf.chmod(0o600)
    args = [sys.executable, "-m", "proxy.cli", "shell", "--defaults-file", str(cnf),
            "-e", "SELECT DATABASE()"]
    run = dict(capture_output=True, text=True, timeout=30, env=base_env(tmp_path), cwd=REPO,
               start_new_session=True, stdin=subprocess.DEVNULL)
    r = subprocess.run(args, **run)
    assert (r.returncode, r.stdout.splitlines()) == (0, ["DATABASE()", database]), r.stderr
    cnf.chmod(0o644)
    r = subprocess.run(args, **run)
    assert r.returncode == 2
    assert "chmod 0600" in r.stderr and DEMO_PASSWORD not in r.stderr.replace(DEMO_USER, "")


# -- secrets never on argv ----------------------------------------------------------------


@pytest.mark.parametrize("argv", [["-pSECRET"], ["-p", "SECRET"], ["--password=SECRET"]])
def test_password_on_argv_refused(proxy, env: dict[str, str], argv: list[str]) -> None:
    r = shell(proxy.port, *argv, "-e", "SELECT 1", env=env)
    assert r.returncode == 2
    assert "takes no value" in r.stderr
    assert "SECRET" not in r.stderr + r.stdout


@pytest.mark.parametrize("opt", ["--cryptdb-key", "--old-cryptdb-key", "--cryptdb_key"])
def test_literal_key_refused(proxy, env: dict[str, str], opt: str) -> None:
    env["K"] = "from the environment"
    extra = ["--cryptdb-key", "env:K"] if opt.startswith("--old") else []
    r = shell(proxy.port, *extra, opt, "hunter2", "-e", "SELECT 1", env=env)
    assert r.returncode == 2
    assert "not the value itself" in r.stderr and "hunter2" not in r.stderr


def test_world_readable_key_file_refused(proxy, env: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET_KEY + "\n")
    key_file.chmod(0o644)
    r = shell(proxy.port, "--cryptdb-key", f"file:{key_file}", "-e", "SELECT 1", env=env)
    assert r.returncode == 2
    assert f"chmod 0600 {key_file}" in r.stderr
    assert SECRET_KEY not in r.stderr + r.stdout


def test_missing_env_var(proxy, env: dict[str, str]) -> None:
    r = shell(proxy.port, "--cryptdb-key", "env:NOT_SET_HERE", "-e", "SELECT 1", env=env)
    assert r.returncode == 2 and "NOT_SET_HERE is not set" in r.stderr


# -- the key reaches the proxy: HR42 as seen on the wire -------------------------------------


def sent_hr42(wire: Relay) -> HandshakeResponse42:
    deadline = time.monotonic() + 5
    while not wire.client_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    from proxy.connection import SERVER_CAPABILITIES

    return parse_first(SERVER_CAPABILITIES, packets(bytes(wire.client_bytes)))


def test_key_from_env_var(proxy, wire: Relay, env: dict[str, str]) -> None:
    env["MY_KEY"] = SECRET_KEY
    r = shell(wire.port, "--skip-ssl", "--cryptdb-key", "env:MY_KEY", "-e", "SELECT 1",
              env=env)
    assert r.returncode == 0, r.stderr
    hr = sent_hr42(wire)
    assert (hr.cryptdb_key, hr.old_cryptdb_key) == (SECRET_KEY.encode(), None)


def test_key_from_private_file(proxy, wire: Relay, env: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\x00binary\xffkey\n")  # one trailing newline is not part of it
    key_file.chmod(0o600)
    env["OLD"] = "the old one"
    r = shell(wire.port, "--skip-ssl", "--cryptdb-key", f"file:{key_file}",
              "--old-cryptdb-key", "env:OLD", "-e", "SELECT 1", env=env)
    assert r.returncode == 0, r.stderr
    hr = sent_hr42(wire)
    assert (hr.cryptdb_key, hr.old_cryptdb_key) == (b"\x00binary\xffkey", b"the old one")


# -- interactive, through a pseudo-terminal ----------------------------------------------------

# Run the shell with the pty as its controlling terminal (what /dev/tty and getpass need).
WITH_CTTY = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'proxy.cli', *sys.argv[1:]])"
)


class Pty:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        self.fd = master
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WITH_CTTY, *args], stdin=slave, stdout=slave, stderr=slave,
            env=env, cwd=REPO, start_new_session=True, close_fds=True,
        )
        os.close(slave)
        self.raw = b""
        self.seen = ""  # everything read so far, \r\n made \n
        self._pos = 0  # where the next expect() starts looking

    def expect(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.seen, self._pos)
            if m:
                self._pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError(f"timed out waiting for {pattern!r}; got:\n{self.seen}")
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child is gone
                data = b""
            if not data:
                raise AssertionError(f"EOF waiting for {pattern!r}; got:\n{self.seen}")
            self.raw += data
            self.seen = self.raw.decode("utf-8", "replace").replace("\r\n", "\n")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=15)
        finally:
            os.close(self.fd)


def test_interactive_session(proxy, database: str, tmp_path: Path, wire: Relay) -> None:
    env = base_env(tmp_path, MY_KEY=SECRET_KEY)
    pty = Pty(["shell", "-P", str(wire.port), "-u", DEMO_USER, "-D", database, "--skip-ssl",
               "--cryptdb-key", "prompt"], env)
    try:
        pty.expect("Enter password: ")
        pty.send(DEMO_PASSWORD + "\n")
        pty.expect("Enter cryptdb key: ")
        pty.send(SECRET_KEY + "\n")
        pty.expect(r"cryptdb key sent")
        prompt = re.escape(f"cryptdb [{database}]> ")
        pty.expect(prompt)
        pty.send("CREATE TABLE t (id INT, name VARCHAR(10));\n")
        pty.expect(r"Query OK, 0 rows affected \(\d+\.\d\d sec\)")
        pty.expect(prompt)
        pty.send("INSERT INTO t VALUES (1, 'alice'),\n")
        pty.expect(r"    -> ")
        pty.send("(22, NULL);\n")
        pty.expect(r"Query OK, 2 rows affected \(\d+\.\d\d sec\)\nRecords: 2  Duplicates: 0")
        pty.send("SELECT * FROM t ORDER BY id;\n")
        table = pty.expect(r"\+----\+-------\+\n(.*\n){4}\+----\+-------\+\n").group(0)
        assert table.splitlines()[1:-1] == [
            "| id | name  |", "+----+-------+", "|  1 | alice |", "| 22 | NULL  |",
        ]
        pty.expect(r"2 rows in set")
        pty.send("SELEC 1;\n")
        pty.expect(r"ERROR 1064 \(42000\): You have an error in your SQL syntax")
        pty.expect(prompt)  # the connection is still usable
        pty.send("SELECT name FROM t WHERE id = 1\\G\n")
        pty.expect(r"\*+ 1\. row \*+\nname: alice\n1 row in set")
        pty.send("SELECT 'it''s' AS q,\n")
        pty.send("'unterminated\n")
        pty.expect(r"    '> ")
        pty.send("' AS r;\n")
        pty.expect(r"1 row in set")
        pty.send("use mysql\n")
        pty.expect(r"Database changed\ncryptdb \[mysql\]> ")
        pty.send("quit\n")
        pty.expect("Bye")
        assert pty.close() == 0
    finally:
        if pty.proc.poll() is None:
            pty.proc.kill()
    # Neither secret was echoed; the key went to the proxy as the HR42 field.
    assert SECRET_KEY not in pty.seen
    assert "Enter password: \n" in pty.seen
    assert sent_hr42(wire).cryptdb_key == SECRET_KEY.encode()
    history = tmp_path / "history"
    assert history.stat().st_mode & 0o077 == 0
    assert "SELECT * FROM t ORDER BY id;" in history.read_text()


def test_interactive_ctrl_d_and_rotation_prompts(proxy, tmp_path: Path) -> None:
    env = base_env(tmp_path, MYSQL_PWD=DEMO_PASSWORD)
    pty = Pty(["shell", "-P", str(proxy.port), "-u", DEMO_USER,
               "--cryptdb-key", "prompt", "--old-cryptdb-key", "prompt"], env)
    try:
        pty.expect("Enter old cryptdb key: ")
        pty.send("old\n")
        pty.expect("Enter new cryptdb key: ")
        pty.send("new\n")
        pty.expect("Enter new cryptdb key again: ")
        pty.send("new\n")
        pty.expect(re.escape("cryptdb [(none)]> "))
        pty.send("SELECT 1 +\n")
        pty.expect("    -> ")
        # Ctrl-C forgets the half-typed statement. CPython's readline loses a SIGINT that
        # lands between drawing the prompt and waiting for input: retry as a user would.
        for attempt in range(10):
            pty.send("\x03")
            try:
                pty.expect(re.escape("^C\ncryptdb [(none)]> "), timeout=1)
                break
            except AssertionError:
                if attempt == 9:
                    raise
        pty.send("\x04")  # Ctrl-D leaves
        pty.expect("Bye")
        assert pty.close() == 0
    finally:
        if pty.proc.poll() is None:
            pty.proc.kill()
