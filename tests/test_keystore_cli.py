"""`cryptdb keystore ...` as a subprocess (env and file passwords) and in-process (prompts)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest

from keystore import Keystore, cli

REPO = Path(__file__).resolve().parent.parent
LOW = ["--argon2-memory-kib", "32", "--argon2-time", "1", "--argon2-parallelism", "1"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keystore.cli", *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=60,
    )


def secret_file(path: Path, content: str, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, content.encode())
    os.close(fd)
    os.chmod(path, mode)
    return path


@pytest.fixture
def ks_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keystore"


def test_lifecycle_as_subprocess(ks_path: Path, tmp_path: Path) -> None:
    k = ["--keystore", str(ks_path)]
    env = {"KS_ALICE": "alice-pw-1", "KS_BOB": "bob-pw"}
    r = run("init", "-u", "alice", *k, *LOW, "--password-env", "KS_ALICE", env=env)
    assert r.returncode == 0, r.stderr
    assert Keystore(ks_path).unlock("alice", "alice-pw-1")

    r = run("add-user", "bob", "-u", "alice", *k, *LOW, "--password-env", "KS_ALICE",
            "--new-password-env", "KS_BOB", env=env)
    assert r.returncode == 0, r.stderr
    assert run("list", *k).stdout.split() == ["alice", "bob"]

    old = secret_file(tmp_path / "old", "alice-pw-1\n")
    new = secret_file(tmp_path / "new", "alice-pw-2\n")
    r = run("passwd", "-u", "alice", *k, *LOW, "--password-file", str(old),
            "--new-password-file", str(new))
    assert r.returncode == 0, r.stderr
    master = Keystore(ks_path).unlock("alice", "alice-pw-2")  # trailing newline stripped

    before = ks_path.read_bytes()
    r = run("passwd", "-u", "alice", *k, "--password-file", str(old),
            "--new-password-file", str(new))
    assert (r.returncode, r.stderr.strip()) == (1, "cryptdb keystore: error: access denied")
    assert ks_path.read_bytes() == before

    r = run("remove-user", "bob", "-u", "alice", *k, "--password-file", str(new))
    assert r.returncode == 0, r.stderr
    assert run("list", *k).stdout.split() == ["alice"]
    assert Keystore(ks_path).load_metadata(master) == (0, {})


def test_escrow_and_recover_as_subprocess(ks_path: Path, tmp_path: Path) -> None:
    k = ["--keystore", str(ks_path)]
    env = {"PW": "pw", "NEWPW": "recovered"}
    assert run("init", "-u", "alice", *k, *LOW, "--password-env", "PW", env=env).returncode == 0
    identity = pyrage.x25519.Identity.generate()
    idfile = secret_file(tmp_path / "id.txt", f"{identity}\n")
    out = tmp_path / "escrow.age"
    r = run("escrow", "-u", "alice", *k, "--password-env", "PW",
            "--recipient", str(identity.to_public()), "-o", str(out), env=env)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    r = run("escrow", "-u", "alice", *k, "--password-env", "PW",
            "--recipient", str(identity.to_public()), "-o", str(out), env=env)
    assert r.returncode == 1 and "refusing to overwrite" in r.stderr
    r = run("recover", "-u", "carol", *k, *LOW, "--identity", str(idfile), "-i", str(out),
            "--password-env", "NEWPW", env=env)
    assert r.returncode == 0, r.stderr
    assert Keystore(ks_path).unlock("carol", "recovered") == Keystore(ks_path).unlock("alice", "pw")


def test_errors_are_one_line_without_secrets(ks_path: Path, tmp_path: Path) -> None:
    k = ["--keystore", str(ks_path)]
    r = run("list", *k)
    assert r.returncode == 1 and "no keystore at" in r.stderr and "Traceback" not in r.stderr
    r = run("init", "-u", "alice", *k, "--password-env", "UNSET_VAR_FOR_TEST")
    assert r.returncode == 1 and "UNSET_VAR_FOR_TEST is not set" in r.stderr
    loose = secret_file(tmp_path / "loose", "hunter2", mode=0o644)
    r = run("init", "-u", "alice", *k, "--password-file", str(loose))
    assert r.returncode == 1 and f"chmod 0600 {loose}" in r.stderr
    assert "hunter2" not in r.stderr + r.stdout
    assert not ks_path.exists()


def test_no_password_on_argv() -> None:
    r = run("init", "-u", "alice", "--password", "literal")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_prompts(ks_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["pw1", "pw1", "pw1", "pw2", "pw2", "pw1", "typo1", "typo2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    k = ["--keystore", str(ks_path)]
    assert cli.main(["init", "-u", "alice", *k, *LOW]) == 0  # asks twice
    assert cli.main(["passwd", "-u", "alice", *k, *LOW]) == 0  # old, new, repeat
    assert Keystore(ks_path).unlock("alice", "pw2")
    assert cli.main(["passwd", "-u", "alice", *k, *LOW]) == 1  # wrong old: denied


def test_mismatched_confirmation(
    ks_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli.main(["init", "-u", "alice", "--keystore", str(ks_path), *LOW]) == 1
    assert "differ" in capsys.readouterr().err and not ks_path.exists()


def test_mounts_on_the_proxy_cli(ks_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    top = argparse.ArgumentParser(prog="cryptdb")
    subparsers = top.add_subparsers(dest="command", required=True)
    subparsers.add_parser("serve")
    cli.add_subcommands(subparsers)
    Keystore(ks_path, kdf=cli.KdfParams(32, 1, 1)).initialize("alice", "pw")
    args = top.parse_args(["keystore", "list", "--keystore", str(ks_path)])
    assert args.func(args) == 0
    assert capsys.readouterr().out == "alice\n"


def test_default_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(cli.ENV_PATH, str(tmp_path / "x"))
    assert cli.default_path() == tmp_path / "x"
    monkeypatch.delenv(cli.ENV_PATH)
    assert cli.default_path() == cli.DEFAULT_PATH
