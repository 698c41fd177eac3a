"""Backup -> stock tools, backup -> restore, verify, CLI: against the real dev MariaDB."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup import create_backup, restore_backup, verify_backup
from backup.archive import TOP
from backup.cli import main
from backup.compress import zstd_available
from backup.restore import RestoreError
from backup.testing import Keys, fill_sample, make_keys, snapshot
from keystore.files import write_private

KEYSTORE_BYTES = b"CRYPTDB-KEYSTORE\x00\x01" + os.urandom(200)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path / "keys")


@pytest.fixture
def sample(direct, database: str) -> str:
    fill_sample(direct, rows=1500)
    return database


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "keystore"
    write_private(path, KEYSTORE_BYTES)
    return path


@pytest.fixture
def target(backend) -> Iterator[str]:
    """A database name that does not exist yet, dropped after the test."""
    name = f"r_{secrets.token_hex(6)}"
    yield name
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _backup(backend, sample, keys, keystore, out, **kw):  # type: ignore[no-untyped-def]
    return create_backup(
        out, [keys.recipient], backend.service_cnf, keys.signing_key(), databases=[sample],
        keystore=keystore, **kw,
    )


@pytest.mark.parametrize(
    "compression, unpack",
    [("zstd", ["zstd", "-dc"]), ("gzip", ["gzip", "-dc"]), ("none", None)],
)
def test_stock_tools_read_the_backup(
    backend, sample, keys, keystore, target, tmp_path, compression, unpack
) -> None:
    if compression == "zstd" and not zstd_available():
        pytest.skip("zstandard not installed")
    out = tmp_path / "backups" / "b.age"
    _backup(backend, sample, keys, keystore, out, compression=compression, part_size=64 << 10)
    # age -d | (zstd|gzip) -d | tar -x, with nothing of ours involved
    plain = subprocess.run(
        ["age", "-d", "-i", str(keys.identity_file), str(out)], check=True, capture_output=True
    ).stdout
    if unpack:
        plain = subprocess.run(unpack, input=plain, check=True, capture_output=True).stdout
    xdir = tmp_path / "x"
    xdir.mkdir()
    subprocess.run(["tar", "-x", "-C", str(xdir)], input=plain, check=True)
    top = xdir / TOP
    assert (top / "keystore").read_bytes() == KEYSTORE_BYTES
    assert "cryptdb" in (top / "README.txt").read_text()
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=top, check=True)
    sums_hash = subprocess.run(
        ["sha256sum", "SHA256SUMS"], cwd=top, check=True, capture_output=True, text=True
    ).stdout.split()[0]
    assert sums_hash in (top / "manifest.json").read_text()
    allowed = tmp_path / "allowed_signers"
    allowed.write_text("backup " + keys.signer_pub.read_text())
    subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "backup", "-n",
         "cryptdb-backup", "-s", "manifest.json.sig"],
        stdin=(top / "manifest.json").open("rb"), cwd=top, check=True, capture_output=True,
    )
    parts = sorted((top / "dump" / sample).glob("*.sql"))
    assert len(parts) > 1  # 64 KiB parts: the dump was split
    assert stat.S_IMODE(parts[0].stat().st_mode) & 0o077 == 0
    # the parts, concatenated and fed to the stock client, give the same database
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{target}`")
    dump = b"".join(p.read_bytes() for p in parts)
    subprocess.run(
        ["mariadb", f"--defaults-file={backend.service_cnf}", "--binary-mode", target],
        input=dump, check=True,
    )
    with backend.admin() as conn:
        assert snapshot(conn, target) == snapshot(conn, sample)


def test_backup_restore_same_rows(backend, sample, keys, keystore, target, tmp_path) -> None:
    out = tmp_path / "b.age"
    result = _backup(backend, sample, keys, keystore, out, part_size=100 << 10)
    assert result.dump_bytes > 300 << 10
    tables = {t["name"]: t for t in result.manifest.databases[0]["tables"]}
    assert tables["patients"]["rows"] == 1500 and tables["empty_table"]["rows"] == 0
    assert tables["patient_names"]["type"] == "view"

    verified = verify_backup(out, [keys.identity], keys.trusted())
    assert verified.manifest.data["backup_id"] == result.manifest.data["backup_id"]

    ks_out = tmp_path / "restored" / "keystore"
    restored = restore_backup(
        out, [keys.identity], keys.trusted(), backend.service_cnf, databases=[target],
        keystore_out=ks_out,
    )
    assert restored.databases == {sample: target}
    assert restored.warnings == []
    assert ks_out.read_bytes() == KEYSTORE_BYTES
    assert stat.S_IMODE(ks_out.stat().st_mode) == 0o600
    with backend.admin() as conn:
        assert snapshot(conn, target) == snapshot(conn, sample)


def test_restore_refuses_non_empty_target(backend, sample, keys, keystore, target, tmp_path):
    out = tmp_path / "b.age"
    _backup(backend, sample, keys, keystore, out)
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{target}`")
        cur.execute(f"CREATE TABLE `{target}`.keepme (id INT)")
        cur.execute(f"INSERT INTO `{target}`.keepme VALUES (7)")
    with pytest.raises(RestoreError, match="not empty"):
        restore_backup(out, [keys.identity], keys.trusted(), backend.service_cnf,
                       databases=[target])
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{target}`.keepme")
        assert cur.fetchall() == ((7,),)


def test_restore_into_existing_empty_database(backend, sample, keys, keystore, target, tmp_path):
    out = tmp_path / "b.age"
    _backup(backend, sample, keys, keystore, out, compression="gzip")
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{target}`")
    restore_backup(out, [keys.identity], keys.trusted(), backend.service_cnf,
                   databases=[f"{sample}={target}"])
    with backend.admin() as conn:
        assert snapshot(conn, target) == snapshot(conn, sample)


def test_cli_backup_verify_restore(backend, sample, keys, keystore, target, tmp_path, capsys):
    out = tmp_path / "cli" / "b.age"
    state = tmp_path / "state"
    rc = main([
        "backup", "--state-dir", str(state), "--defaults-file", str(backend.service_cnf),
        "--database", sample, "--recipient", str(keys.recipient), "--keystore", str(keystore),
        "-o", str(out),
    ])
    assert rc == 0, capsys.readouterr().err
    assert (state / "backup" / "signing-key").exists()  # created on first use
    assert stat.S_IMODE(out.stat().st_mode) == 0o400
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    rc = main(["backup", "verify", str(out), "--state-dir", str(state),
               "--identity", str(keys.identity_file)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "OK" in captured.out and "signature by SHA256:" in captured.out
    # a signer other than the one that signed: refused
    rc = main(["backup", "verify", str(out), "--identity", str(keys.identity_file),
               "--signer", str(keys.signer_pub)])
    assert rc == 1 and "not by the trusted" in capsys.readouterr().err
    rc = main(["restore", str(out), "--state-dir", str(state), "--identity",
               str(keys.identity_file), "--defaults-file", str(backend.service_cnf),
               "--database", target, "--keystore-out", str(tmp_path / "ks")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{sample} -> {target}" in captured.out
    with backend.admin() as conn:
        assert snapshot(conn, target) == snapshot(conn, sample)


# After a restore, a proxy on the restored keystore answers as before: tests/test_backup_proxy.py
