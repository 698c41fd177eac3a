"""Two proxy processes on one keystore: each sees the other's metadata, and the CAS plus the
writers' lock lose no update."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keystore import KdfParams, Keystore, MetadataConflict

FAST = KdfParams(memory_kib=32, time_cost=1, parallelism=1)
REPO = Path(__file__).resolve().parent.parent

WRITER = """
import json, sys
from keystore import Keystore, MetadataConflict
ks = Keystore(sys.argv[1])
master = ks.unlock("alice", "pw")
action = sys.argv[2]
if action == "ddl":
    version, meta = ks.load_metadata(master)
    meta.setdefault("tables", {})["orders"] = {"anon": "t_2", "onions": {"total": "HOM"}}
    print(ks.save_metadata(master, meta, version))
elif action == "count":
    for _ in range(int(sys.argv[3])):
        while True:
            version, meta = ks.load_metadata(master)
            meta["n"] = meta.get("n", 0) + 1
            try:
                ks.save_metadata(master, meta, version)
                break
            except MetadataConflict:
                continue
    print("done")
"""


def run_writer(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), *args], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "shared" / "keystore"
    Keystore(path, kdf=FAST).initialize("alice", "pw", metadata={"tables": {}})
    return path


def test_other_process_ddl_is_seen(path: Path) -> None:
    ks = Keystore(path)
    master = ks.unlock("alice", "pw")
    version, meta = ks.load_metadata(master)
    assert not ks.refresh()
    proc = run_writer(path, "ddl")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert int(out) == version + 1
    assert ks.refresh()
    assert ks.load_metadata(master) == (
        version + 1, {"tables": {"orders": {"anon": "t_2", "onions": {"total": "HOM"}}}}
    )
    with pytest.raises(MetadataConflict):  # our stale copy cannot overwrite theirs
        ks.save_metadata(master, {**meta, "mine": True}, expected_version=version)


def test_concurrent_writers_lose_nothing(path: Path) -> None:
    per_process, processes = 25, 3
    procs = [run_writer(path, "count", str(per_process)) for _ in range(processes)]
    ks = Keystore(path)
    master = ks.unlock("alice", "pw")
    local = 0
    for _ in range(per_process):  # this process writes too, through its own object
        while True:
            version, meta = ks.load_metadata(master)
            meta["n"] = meta.get("n", 0) + 1
            try:
                ks.save_metadata(master, meta, version)
                local += 1
                break
            except MetadataConflict:
                continue
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0 and out.strip() == "done", err
    version, meta = Keystore(path).load_metadata(master)
    assert meta["n"] == per_process * (processes + 1) == version
    assert json.dumps(meta)  # still a plain JSON object
