"""`cryptdb leakage`: what the server can learn, per column, from the keystore's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keystore import KdfParams, Keystore
from proxy.cli import main
from tests.rewrite_support import DryRunner


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    dry = DryRunner("shop")
    dry.plan(
        "CREATE TABLE p (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20), "
        "age INT COMMENT 'cryptdb: min=DET', note TEXT COMMENT 'cryptdb: plain')"
    )
    dry.plan("SELECT name FROM p WHERE age = 3")  # peels age's Eq onion to DET
    d = tmp_path / "ks"
    d.mkdir(mode=0o700)
    ks = Keystore(d / "keystore", kdf=KdfParams(8192, 1, 1))
    ks.initialize("alice", b"secret", metadata={"schema": dry.schema.to_json()})
    key = tmp_path / "key"
    key.write_bytes(b"secret")
    key.chmod(0o600)
    return d / "keystore"


def test_table_and_json(keystore: Path, tmp_path: Path, capsys) -> None:
    args = ["leakage", "--keystore", str(keystore), "-u", "alice",
            "--password-file", str(tmp_path / "key")]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == [
        "database", "table", "column", "onions", "learns", "minimum"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    rows = {r["column"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["id"]["learns"] == "everything (AUTO_INCREMENT)"
    assert rows["note"]["learns"] == "everything (policy plain)"
    assert rows["age"]["learns"] == "equality, sums only" and rows["age"]["minimum"] == "DET"
    assert "eq=DET" in rows["age"]["onions"]
    # The search onion has one layer: word equality, for words the server is asked about.
    assert rows["name"]["learns"] == "word equality" and "eq=RND" in rows["name"]["onions"]
    for r in rows.values():
        assert r["column"] in text


def test_wrong_key_is_refused(keystore: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"nope")
    bad.chmod(0o600)
    args = ["leakage", "--keystore", str(keystore), "-u", "alice", "--password-file", str(bad)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "cryptdb leakage: error" in err and "nope" not in err
