"""Keystore API: unlock, rotation, principals, metadata CAS, secrets at rest, permissions."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from keystore import (
    AccessDenied,
    InsecurePermissions,
    KdfParams,
    Keystore,
    KeystoreError,
    KeystoreExists,
    KeystoreMissing,
    MasterKey,
    MetadataConflict,
    PrincipalExists,
    UnknownPrincipal,
    crypto,
)
from keystore.format import DEPLOYMENT_ID_BYTES

FAST = KdfParams(memory_kib=32, time_cost=1, parallelism=1)
META = {"tables": {"patients": {"anon": "table_7f3a", "columns": {"ssn": "c_91ab"}}}}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keystore"


@pytest.fixture
def ks(path: Path) -> Keystore:
    return Keystore(path, kdf=FAST)


@pytest.fixture
def master(ks: Keystore) -> MasterKey:
    return ks.initialize("alice", "correct horse", metadata=META)


def test_initialize_then_unlock(ks: Keystore, master: MasterKey, path: Path) -> None:
    assert ks.exists()
    assert ks.unlock("alice", "correct horse") == master
    assert ks.unlock("alice", b"correct horse") == master  # bytes as a client sends them
    assert Keystore(path).unlock("alice", "correct horse") == master  # a fresh object
    assert ks.list_principals() == ["alice"]
    assert ks.load_metadata(master) == (0, META)


def test_initialize_refuses_existing(ks: Keystore, master: MasterKey, path: Path) -> None:
    before = path.read_bytes()
    with pytest.raises(KeystoreExists, match=str(path)):
        Keystore(path, kdf=FAST).initialize("mallory", "x")
    assert path.read_bytes() == before


def test_missing_keystore(ks: Keystore) -> None:
    assert not ks.exists()
    with pytest.raises(KeystoreMissing, match="cryptdb keystore init"):
        ks.unlock("alice", "x")


def test_private_modes(ks: Keystore, master: MasterKey, path: Path) -> None:
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert ks.lock_path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("password", ["wrong", "", "correct horse ", "Correct horse"])
def test_wrong_password_denied_and_file_untouched(
    ks: Keystore, master: MasterKey, path: Path, password: str
) -> None:
    before, st = path.read_bytes(), path.stat()
    with pytest.raises(AccessDenied) as e:
        ks.unlock("alice", password)
    assert str(e.value) == "access denied"
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_ino == st.st_ino


def test_unknown_principal_same_error(ks: Keystore, master: MasterKey, path: Path) -> None:
    before = path.read_bytes()
    with pytest.raises(AccessDenied) as unknown:
        ks.unlock("bob", "correct horse")
    with pytest.raises(AccessDenied) as wrong:
        ks.unlock("alice", "nope")
    assert str(unknown.value) == str(wrong.value) == "access denied"
    assert type(unknown.value) is type(wrong.value)
    assert path.read_bytes() == before


def test_unknown_principal_comparable_timing(tmp_path: Path) -> None:
    # argon2 at ~8 MiB makes the KDF dominate, as it does at the real cost.
    ks = Keystore(tmp_path / "k" / "ks", kdf=KdfParams(8192, 1, 1))
    ks.initialize("alice", "pw")

    times: dict[str, list[float]] = {"alice": [], "nobody": []}
    for _ in range(9):  # interleaved, so load spikes on the shared box hit both alike
        for principal, samples in times.items():
            t0 = time.perf_counter()
            with pytest.raises(AccessDenied):
                ks.unlock(principal, "guess")
            samples.append(time.perf_counter() - t0)
    known, unknown = (statistics.median(v) for v in times.values())
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_rotate(ks: Keystore, master: MasterKey, path: Path) -> None:
    ks.rotate("alice", "correct horse", "battery staple")
    with pytest.raises(AccessDenied):
        ks.unlock("alice", "correct horse")
    assert ks.unlock("alice", "battery staple") == master
    assert Keystore(path).load_metadata(master) == (0, META)  # data keys unchanged


def test_rotate_wrong_old_password_changes_nothing(
    ks: Keystore, master: MasterKey, path: Path
) -> None:
    before = path.read_bytes()
    for principal, old in (("alice", "not it"), ("bob", "correct horse")):
        with pytest.raises(AccessDenied):
            ks.rotate(principal, old, "new")
        assert path.read_bytes() == before


def test_rotate_direction_is_old_to_new(ks: Keystore, master: MasterKey) -> None:
    # The seed paper swaps the two in one sentence; the new password must be the one that works.
    with pytest.raises(AccessDenied):
        ks.rotate("alice", "new one", "correct horse")
    ks.rotate("alice", "correct horse", "new one")
    assert ks.unlock("alice", "new one") == master


def test_add_and_remove_user(ks: Keystore, master: MasterKey, path: Path) -> None:
    ks.add_user(master, "bob", "bob's pw")
    assert ks.list_principals() == ["alice", "bob"]
    assert Keystore(path).unlock("bob", "bob's pw") == master
    with pytest.raises(PrincipalExists):
        ks.add_user(master, "bob", "other")
    ks.remove_user(master, "bob")
    with pytest.raises(AccessDenied):
        ks.unlock("bob", "bob's pw")
    with pytest.raises(UnknownPrincipal):
        ks.remove_user(master, "bob")
    with pytest.raises(KeystoreError, match="last principal"):
        ks.remove_user(master, "alice")


def test_only_master_holders_add_slots(ks: Keystore, master: MasterKey, path: Path) -> None:
    before = path.read_bytes()
    impostor = MasterKey.generate()
    with pytest.raises(AccessDenied):
        ks.add_user(impostor, "mallory", "pw")
    with pytest.raises(AccessDenied):
        ks.remove_user(impostor, "alice")
    with pytest.raises(AccessDenied):
        ks.save_metadata(impostor, {}, 0)
    with pytest.raises(AccessDenied):
        ks.load_metadata(impostor)
    assert path.read_bytes() == before


@pytest.mark.parametrize("principal", ["", "a\x00b", "tab\there", "x" * 256])
def test_bad_principal_names(ks: Keystore, principal: str) -> None:
    with pytest.raises(ValueError):
        ks.initialize(principal, "pw")


def test_empty_password_refused(ks: Keystore, master: MasterKey) -> None:
    with pytest.raises(ValueError):
        ks.add_user(master, "bob", "")
    with pytest.raises(ValueError):
        ks.rotate("alice", "correct horse", "")


def test_metadata_compare_and_swap(ks: Keystore, master: MasterKey, path: Path) -> None:
    other = Keystore(path, kdf=FAST)
    version, meta = other.load_metadata(master)
    assert ks.save_metadata(master, {**meta, "v": 1}, expected_version=version) == version + 1
    assert other.refresh()
    assert other.load_metadata(master) == (version + 1, {**META, "v": 1})
    before = path.read_bytes()
    with pytest.raises(MetadataConflict) as e:
        other.save_metadata(master, {"stale": True}, expected_version=version)
    assert (e.value.expected, e.value.actual) == (version, version + 1)
    assert path.read_bytes() == before
    assert other.save_metadata(master, {"v": 2}, expected_version=version + 1) == version + 2


def test_metadata_must_be_json_object(ks: Keystore, master: MasterKey) -> None:
    with pytest.raises(TypeError):
        ks.save_metadata(master, ["not", "a", "dict"], 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ks.save_metadata(master, {"raw": b"bytes"}, 0)


def test_refresh_is_cheap_and_exact(ks: Keystore, master: MasterKey, path: Path) -> None:
    other = Keystore(path)
    other.refresh()
    assert not other.refresh()
    ks.add_user(master, "bob", "pw")
    assert other.refresh() and other.list_principals() == ["alice", "bob"]
    assert not other.refresh()
    assert other.generation == ks.generation


def test_rollback_is_detected(ks: Keystore, master: MasterKey, path: Path) -> None:
    old = path.read_bytes()
    ks.rotate("alice", "correct horse", "new")
    ks.refresh()
    path.write_bytes(old)  # an attacker restores the file from before the rotation
    with pytest.raises(KeystoreError, match="older copy"):
        ks.unlock("alice", "correct horse")


def test_no_secret_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "d" / "ks"
    ks = Keystore(path, kdf=FAST)
    master = ks.initialize("alice", "pw-alice", metadata=META)
    ks.add_user(master, "bob", "pw-bob")
    ks.rotate("alice", "pw-alice", "pw-alice-2")
    ks.save_metadata(master, {**META, "secret_column": "ssn_plaintext_name"}, 0)
    data = path.read_bytes()
    from keystore.format import decode

    file = decode(data)
    dep = file.header.deployment_id
    assert len(dep) == DEPLOYMENT_ID_BYTES
    secrets = {
        "master": master.raw,
        "metadata key": crypto.derive(master, dep, crypto.LABEL_METADATA),
        "kek alice": crypto.derive_kek("pw-alice-2", file.find("alice").salt, FAST),
        "kek bob": crypto.derive_kek("pw-bob", file.find("bob").salt, FAST),
        "password": b"pw-alice-2",
        "metadata plaintext": b"ssn_plaintext_name",
        "anonymized name": b"table_7f3a",
    }
    for leftover in path.parent.iterdir():  # the keystore, its lock, any temp file
        blob = leftover.read_bytes()
        for name, secret in secrets.items():
            assert secret not in blob, f"{name} found in {leftover.name}"
            assert secret.hex().encode() not in blob, f"{name} (hex) found in {leftover.name}"


def test_refuses_loose_file_mode(ks: Keystore, master: MasterKey, path: Path) -> None:
    os.chmod(path, 0o644)
    with pytest.raises(InsecurePermissions) as e:
        Keystore(path).unlock("alice", "correct horse")
    assert str(path) in str(e.value) and f"chmod 0600 {path}" in str(e.value)


def test_refuses_loose_dir_mode(ks: Keystore, master: MasterKey, path: Path) -> None:
    os.chmod(path.parent, 0o755)  # noqa: S103 - the loose mode under test
    for action in (
        lambda: Keystore(path).unlock("alice", "correct horse"),
        lambda: Keystore(path).list_principals(),
        lambda: ks.add_user(master, "bob", "pw"),
    ):
        with pytest.raises(InsecurePermissions) as e:
            action()
        assert f"chmod 0700 {path.parent}" in str(e.value)


def test_master_key_never_printed(master: MasterKey) -> None:
    assert master.raw.hex() not in repr(master) and "secret" in repr(master)
    with pytest.raises(TypeError):
        hash(master)


def test_rotate_commit_hook(ks: Keystore, master: MasterKey, path: Path) -> None:
    calls = []
    before = path.read_bytes()

    def backend_refuses() -> None:
        calls.append("refused")
        raise RuntimeError("backend ALTER USER failed")

    with pytest.raises(RuntimeError):
        ks.rotate("alice", "correct horse", "new", commit_hook=backend_refuses)
    assert path.read_bytes() == before  # neither
    with pytest.raises(AccessDenied):
        ks.rotate("alice", "wrong", "new", commit_hook=lambda: calls.append("never"))
    ks.rotate("alice", "correct horse", "new", commit_hook=lambda: calls.append("ok"))
    assert calls == ["refused", "ok"]  # both
    assert ks.unlock("alice", "new") == master


def test_busy_lock(ks: Keystore, master: MasterKey, path: Path) -> None:
    from keystore import KeystoreBusy
    from keystore.files import exclusive_lock

    impatient = Keystore(path, kdf=FAST, lock_timeout=0.1)
    with exclusive_lock(ks.lock_path):  # another writer holds it
        with pytest.raises(KeystoreBusy, match=str(ks.lock_path)):
            impatient.add_user(master, "bob", "pw")
        assert impatient.unlock("alice", "correct horse") == master  # readers never wait


def test_threads_share_one_keystore(ks: Keystore, master: MasterKey) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> bool:
        if i % 3 == 0:
            while True:
                version, meta = ks.load_metadata(master)
                try:
                    ks.save_metadata(master, {**meta, f"k{i}": i}, version)
                    return True
                except MetadataConflict:
                    continue
        try:
            return ks.unlock("alice", "correct horse" if i % 2 else "bad") == master
        except AccessDenied:
            return i % 2 == 0

    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(work, range(30)))
    assert set(ks.load_metadata(master)[1]) >= {f"k{i}" for i in range(0, 30, 3)}
