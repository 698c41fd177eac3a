"""`workers = 2`: two proxy processes on one listening socket, one keystore (proxy/workers.py).

Each worker is a proxy of its own; these tests show clients are spread over them, that
encrypted work and DDL on one worker are seen by the other, that a worker killed with -9 is
replaced while the other's sessions go on, and that SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest

from proxy.devbackend import DevBackend
from tests.conftest import LOW_KDF, ProxyProcess, start_proxy, stop_proxy
from tests.rewrite_support import extra_database


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":  # a killed worker not yet reaped: gone
                out.append(int(entry.name))
    return sorted(out)


def _workers(p: ProxyProcess, n: int, timeout: float = 20, without: int = 0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        kids = _children(p.process.pid)
        if len(kids) == n and without not in kids:
            return kids
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(kids)} workers, not {n}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def workers(
    backend: DevBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    state = tmp_path_factory.mktemp("workers")
    ks = state / "ks"
    ks.mkdir(mode=0o700)
    p = start_proxy(
        backend, state / "proxy", extra=f"keystore = {ks / 'keystore'}\nworkers = 2\n" + LOW_KDF
    )
    try:
        yield p
    finally:
        stop_proxy(p)


@pytest.fixture
def db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "wk") as name:
        yield name


def _q(conn: pymysql.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def test_clients_are_spread_over_both_workers_and_share_the_schema(workers, db) -> None:
    _workers(workers, 2)
    first = workers.connect(db, autocommit=True, charset="utf8mb4")
    _q(first, "CREATE TABLE w (id INT AUTO_INCREMENT PRIMARY KEY, k INT, c VARCHAR(20))")
    _q(first, "INSERT INTO w (k, c) VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    # Proxy connection ids are worker + 1 + n * workers: their parity names the worker.
    seen: dict[int, list[pymysql.Connection]] = {0: [], 1: []}
    conns = [first]
    for _ in range(200):
        if all(seen.values()):
            break
        c = workers.connect(db, autocommit=True, charset="utf8mb4")
        conns.append(c)
        seen[(c.server_thread_id[0] - 1) % 2].append(c)
    try:
        assert all(seen.values()), "every connection went to one worker"
        for parity, group in seen.items():
            c = group[0]
            # Equality peels on whichever worker asks first; the other sees the new layer.
            assert _q(c, "SELECT id FROM w WHERE c = 'two'") == [(2,)], parity
            assert _q(c, "SELECT SUM(k), MAX(k) FROM w") == [(Decimal(6), 3)], parity
        for parity, group in seen.items():
            _q(group[0], f"INSERT INTO w (k, c) VALUES ({10 + parity}, 'w{parity}')")
        for group in seen.values():
            assert _q(group[0], "SELECT k FROM w WHERE c IN ('w0', 'w1') ORDER BY k") == [
                (10,),
                (11,),
            ]
    finally:
        for c in conns:
            c.close()


def test_a_killed_worker_is_replaced_and_the_other_keeps_serving(workers, db) -> None:
    before = _workers(workers, 2)
    # The kernel may hand every accept to one worker: connect until both hold a session,
    # so the survivor's sessions are there to be checked whichever worker dies.
    conns: list[pymysql.Connection] = []
    by_worker: dict[int, list[pymysql.Connection]] = {0: [], 1: []}
    for _ in range(200):
        if all(len(g) >= 2 for g in by_worker.values()):
            break
        c = workers.connect(db, autocommit=True, charset="utf8mb4")
        conns.append(c)
        by_worker[(c.server_thread_id[0] - 1) % 2].append(c)
    try:
        assert all(by_worker.values()), "every connection went to one worker"
        _q(conns[0], "CREATE TABLE v (id INT PRIMARY KEY, c VARCHAR(9))")
        _q(conns[0], "INSERT INTO v VALUES (1, 'a'), (2, 'b')")
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        after = _workers(workers, 2, without=victim)  # a new one in its place
        assert victim not in after and before[1] in after
        survived = set()
        for parity, group in by_worker.items():
            for c in group:
                try:
                    assert _q(c, "SELECT c FROM v WHERE id = 2") == [("b",)]
                    survived.add(parity)
                except pymysql.err.OperationalError:
                    pass  # its worker was the one killed: the client sees a lost connection
        # Exactly one worker's sessions go on: the one not killed.
        assert len(survived) == 1
        for _ in range(6):  # new clients reach a working proxy whichever worker takes them
            c = workers.connect(db, autocommit=True, charset="utf8mb4")
            try:
                assert _q(c, "SELECT COUNT(*) FROM v WHERE c = 'a'") == [(1,)]
            finally:
                c.close()
    finally:
        for c in conns:
            c.close()


def test_sigterm_stops_every_worker(backend: DevBackend, tmp_path: Path) -> None:
    p = start_proxy(backend, tmp_path / "proxy", extra="workers = 3\n")
    kids = _workers(p, 3)
    c = p.connect(None)
    c.close()
    stop_proxy(p)
    assert p.process.returncode == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{k}").exists() for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [k for k in kids if Path(f"/proc/{k}/stat").exists()]


def test_bad_worker_count_is_refused(tmp_path: Path, backend: DevBackend) -> None:
    cnf = tmp_path / "p.cnf"
    cnf.write_text(backend.service_cnf.read_text() + "\n[cryptdb]\nworkers = 0\n")
    cnf.chmod(0o600)
    out = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve", "--defaults-file", str(cnf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "workers must be a number from 1 to 64" in out.stderr


def test_concurrent_clients_on_both_workers(workers, db) -> None:
    setup = workers.connect(db, autocommit=True, charset="utf8mb4")
    _q(setup, "CREATE TABLE z (id INT AUTO_INCREMENT PRIMARY KEY, t INT, n INT)")
    setup.close()
    errors: list[BaseException] = []

    def client(t: int) -> None:
        try:
            c = workers.connect(db, autocommit=True, charset="utf8mb4")
            try:
                for n in range(20):
                    _q(c, f"INSERT INTO z (t, n) VALUES ({t}, {n})")
                assert _q(c, f"SELECT COUNT(*), SUM(n) FROM z WHERE t = {t}") == [(20, 190)]
            finally:
                c.close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    check = workers.connect(db, autocommit=True, charset="utf8mb4")
    try:
        assert _q(check, "SELECT COUNT(*) FROM z") == [(160,)]
    finally:
        check.close()
