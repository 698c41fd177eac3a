"""kill -9 at random instants of a rotation loop: the keystore always opens with one of the two
passwords, and the metadata stays readable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keystore import AccessDenied, KdfParams, Keystore, MasterKey

FAST = KdfParams(memory_kib=32, time_cost=1, parallelism=1)
PASSWORDS = ("password-A", "password-B")
KILLS = 100


def _rotate_forever(path: Path) -> None:
    """Child body: rotate A -> B -> A ... as fast as possible until killed."""
    ks = Keystore(path, kdf=FAST)
    current, other = PASSWORDS
    while True:
        try:
            ks.rotate("alice", current, other)
        except AccessDenied:
            pass  # a previous child stopped on the other password
        current, other = other, current


def _which_password(path: Path, master: MasterKey) -> str:
    ks = Keystore(path)
    opened = []
    for pw in PASSWORDS:
        try:
            assert ks.unlock("alice", pw) == master
            opened.append(pw)
        except AccessDenied:
            pass
    assert len(opened) == 1, opened
    assert ks.load_metadata(master) == (0, {"k": "v"})
    return opened[0]


def _temps(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{path.name}.*.tmp"))


@pytest.mark.timeout(120)
def test_kill_during_rotation(tmp_path: Path) -> None:
    path = tmp_path / "ks" / "keystore"
    master = Keystore(path, kdf=FAST).initialize("alice", PASSWORDS[0], metadata={"k": "v"})
    rng = random.Random(4)
    seen: dict[str, int] = {}
    leftovers = 0
    deadline = time.monotonic() + 60
    for _ in range(KILLS):
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            try:
                _rotate_forever(path)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        leftovers += bool(_temps(path))
        pw = _which_password(path, master)
        seen[pw] = seen.get(pw, 0) + 1
        assert time.monotonic() < deadline
    assert set(seen) == set(PASSWORDS), seen  # kills landed on both sides of rotations
    # The next writer sweeps temp files that killed writers left behind.
    Keystore(path, kdf=FAST).rotate("alice", _which_password(path, master), "final")
    assert not _temps(path)
    print(f"{KILLS} kills, outcomes {seen}, {leftovers} left a temp file mid-write")


CHILD = """
import sys
from keystore import Keystore, KdfParams
ks = Keystore(sys.argv[1], kdf=KdfParams(32, 1, 1))
a, b = "password-A", "password-B"
print("ready", flush=True)
while True:
    try:
        ks.rotate("alice", a, b)
    except Exception:
        pass
    a, b = b, a
"""


@pytest.mark.timeout(60)
def test_kill_separate_interpreter(tmp_path: Path) -> None:
    """The same with a fresh interpreter (no state inherited through fork)."""
    path = tmp_path / "ks" / "keystore"
    master = Keystore(path, kdf=FAST).initialize("alice", PASSWORDS[0], metadata={"k": "v"})
    for delay in (0.0, 0.003, 0.011, 0.05):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        _which_password(path, master)
