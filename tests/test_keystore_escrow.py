"""Escrow to an age X25519 recipient and recovery, checked against the stock `age` tool."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest

from keystore import (
    AccessDenied,
    EscrowError,
    InsecurePermissions,
    KdfParams,
    Keystore,
    MasterKey,
)
from keystore.escrow import ESCROW_MAGIC

FAST = KdfParams(memory_kib=32, time_cost=1, parallelism=1)
AGE = shutil.which("age") or "/usr/bin/age"


def write_identity(path: Path, identity: pyrage.x25519.Identity) -> Path:
    text = f"# created: test\n# public key: {identity.to_public()}\n{identity}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


@pytest.fixture
def ident(tmp_path: Path) -> tuple[Path, str]:
    identity = pyrage.x25519.Identity.generate()
    return write_identity(tmp_path / "id.txt", identity), str(identity.to_public())


@pytest.fixture
def ks(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "k" / "ks", kdf=FAST)


def test_escrow_decrypts_with_stock_age(
    ks: Keystore, ident: tuple[Path, str], tmp_path: Path
) -> None:
    if not os.path.exists(AGE):
        pytest.skip("age CLI not installed (make sysdeps)")
    master = ks.initialize("alice", "pw")
    blob = ks.escrow(master, ident[1])
    assert blob.startswith(b"age-encryption.org/v1\n")
    assert master.raw not in blob
    out = tmp_path / "escrow.age"
    out.write_bytes(blob)
    plain = subprocess.run(
        [AGE, "-d", "-i", str(ident[0]), str(out)], capture_output=True, check=True
    ).stdout
    assert plain == ESCROW_MAGIC + ks.deployment_id + master.raw


def test_recover_new_principal(ks: Keystore, ident: tuple[Path, str]) -> None:
    master = ks.initialize("alice", "forgotten")
    blob = ks.escrow(master, ident[1])
    assert ks.recover(blob, ident[0], "rescuer", "fresh") == master
    assert ks.unlock("rescuer", "fresh") == master
    assert ks.list_principals() == ["alice", "rescuer"]


def test_recover_replaces_forgotten_password(ks: Keystore, ident: tuple[Path, str]) -> None:
    master = ks.initialize("alice", "forgotten", metadata={"x": 1})
    blob = ks.escrow(master, ident[1])
    ks.recover(blob, ident[0], "alice", "fresh")
    with pytest.raises(AccessDenied):
        ks.unlock("alice", "forgotten")
    assert ks.unlock("alice", "fresh") == master
    assert ks.load_metadata(master) == (0, {"x": 1})
    assert ks.list_principals() == ["alice"]


def test_age_keygen_identity_file(ks: Keystore, tmp_path: Path) -> None:
    keygen = shutil.which("age-keygen")
    if keygen is None:
        pytest.skip("age-keygen not installed")
    idfile = tmp_path / "keygen.txt"
    subprocess.run([keygen, "-o", str(idfile)], check=True, capture_output=True)
    recipient = subprocess.run(
        [keygen, "-y", str(idfile)], check=True, capture_output=True, text=True
    ).stdout.strip()
    master = ks.initialize("alice", "pw")
    assert ks.recover(ks.escrow(master, recipient), idfile, "bob", "pw2") == master


def test_wrong_identity(ks: Keystore, ident: tuple[Path, str], tmp_path: Path) -> None:
    master = ks.initialize("alice", "pw")
    blob = ks.escrow(master, ident[1])
    other = write_identity(tmp_path / "other.txt", pyrage.x25519.Identity.generate())
    before = ks.path.read_bytes()
    with pytest.raises(EscrowError, match="cannot decrypt"):
        ks.recover(blob, other, "mallory", "pw")
    assert ks.path.read_bytes() == before


def test_escrow_of_another_keystore(
    ks: Keystore, ident: tuple[Path, str], tmp_path: Path
) -> None:
    ks.initialize("alice", "pw")
    elsewhere = Keystore(tmp_path / "other" / "ks", kdf=FAST)
    blob = elsewhere.escrow(elsewhere.initialize("eve", "pw"), ident[1])
    with pytest.raises(EscrowError, match="another keystore"):
        ks.recover(blob, ident[0], "eve", "pw")


def test_escrow_needs_the_master(ks: Keystore, ident: tuple[Path, str]) -> None:
    ks.initialize("alice", "pw")
    with pytest.raises(AccessDenied):
        ks.escrow(MasterKey.generate(), ident[1])


def test_bad_recipient(ks: Keystore) -> None:
    master = ks.initialize("alice", "pw")
    with pytest.raises(EscrowError, match="age X25519 recipient"):
        ks.escrow(master, "age1notakey")


def test_identity_file_must_be_private(ks: Keystore, ident: tuple[Path, str]) -> None:
    master = ks.initialize("alice", "pw")
    blob = ks.escrow(master, ident[1])
    os.chmod(ident[0], 0o644)
    with pytest.raises(InsecurePermissions, match=str(ident[0])):
        ks.recover(blob, ident[0], "bob", "pw")


def test_garbage_identity_not_echoed(ks: Keystore, tmp_path: Path) -> None:
    master = ks.initialize("alice", "pw")
    bad = tmp_path / "bad.txt"
    fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"AGE-SECRET-KEY-1SECRETBUTMISTYPED\n")
    os.close(fd)
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    with pytest.raises(EscrowError) as e:
        ks.recover(ks.escrow(master, recipient), bad, "bob", "pw")
    assert "SECRETBUTMISTYPED" not in str(e.value)
