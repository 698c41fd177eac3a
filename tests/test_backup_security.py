"""mysqldump-secure's rules: permissions, umask before the file exists, no password on argv,
refused credential files, progress only on a terminal."""

from __future__ import annotations

import io
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import backup.mysql as mysql_mod
from backup import create_backup, restore_backup
from backup.cli import main
from backup.mysql import BackendError
from backup.testing import Keys, fill_sample, make_keys
from keystore.files import InsecurePermissions, write_private


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path / "keys")


@pytest.fixture
def sample(direct, database: str) -> str:
    fill_sample(direct, rows=800, blob_bytes=256)  # a dump well over the 64 KiB pipe buffer
    return database


@pytest.fixture
def target(backend) -> Iterator[str]:
    name = f"r_{secrets.token_hex(6)}"
    yield name
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _password(cnf: Path) -> str:
    line = next(ln for ln in cnf.read_text().splitlines() if ln.startswith("password="))
    return line.split("=", 1)[1]


def _copy_cnf(backend, path: Path, mode: int) -> Path:  # type: ignore[no-untyped-def]
    write_private(path, backend.service_cnf.read_bytes())
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_readable_credentials_file_refused(backend, sample, keys, tmp_path, mode) -> None:
    cnf = _copy_cnf(backend, tmp_path / "cnf" / "my.cnf", mode)
    out = tmp_path / "b.age"
    with pytest.raises(InsecurePermissions) as err:
        create_backup(out, [keys.recipient], cnf, keys.signing_key(), databases=[sample])
    assert str(cnf) in str(err.value) and "chmod 0600" in str(err.value)
    assert not out.exists()
    with pytest.raises(InsecurePermissions, match="chmod 0600"):
        restore_backup(out, [keys.identity], keys.trusted(), cnf)


def test_cli_names_the_insecure_file(backend, sample, keys, tmp_path, capsys) -> None:
    cnf = _copy_cnf(backend, tmp_path / "cnf" / "my.cnf", 0o644)
    rc = main(["backup", "--defaults-file", str(cnf), "--recipient", str(keys.recipient),
               "--signing-key", str(keys.signing_key_file), "-o", str(tmp_path / "b.age")])
    err = capsys.readouterr().err
    assert rc == 1 and str(cnf) in err and f"chmod 0600 {cnf}" in err
    os.chmod(keys.identity_file, 0o644)
    rc = main(["backup", "verify", str(tmp_path / "x.age"), "--identity", str(keys.identity_file),
               "--signer", str(keys.signer_pub)])
    err = capsys.readouterr().err
    assert rc == 1 and str(keys.identity_file) in err and "chmod 0600" in err


def test_readable_keystore_refused(backend, sample, keys, tmp_path) -> None:
    ks = tmp_path / "st" / "keystore"
    write_private(ks, b"secret")
    os.chmod(ks, 0o644)
    with pytest.raises(InsecurePermissions, match="keystore"):
        create_backup(tmp_path / "b.age", [keys.recipient], backend.service_cnf,
                      keys.signing_key(), databases=[sample], keystore=ks)


def test_umask_set_before_the_file_exists(backend, sample, keys, tmp_path) -> None:
    """Even under umask 000, the output dir is 0700 and the file 0400 from its first instant."""
    out = tmp_path / "deep" / "er" / "b.age"
    seen: list[tuple[str, int]] = []

    def during_dump(proc) -> None:  # type: ignore[no-untyped-def]
        for p in out.parent.iterdir():  # only the partial backup exists, already 0400
            seen.append((p.name, stat.S_IMODE(p.stat().st_mode)))

    old = os.umask(0)
    try:
        create_backup(out, [keys.recipient], backend.service_cnf, keys.signing_key(),
                      databases=[sample], on_spawn=during_dump)
        assert os.umask(0) == 0, "the umask was not restored"
    finally:
        os.umask(old)
    assert len(seen) == 1 and seen[0][0].endswith(".partial") and seen[0][1] == 0o400
    assert stat.S_IMODE(out.stat().st_mode) == 0o400
    for d in (tmp_path / "deep", out.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert [p.name for p in out.parent.iterdir()] == ["b.age"]


def test_no_password_on_argv_or_environment(backend, sample, keys, target, tmp_path) -> None:
    password = _password(backend.service_cnf)
    assert len(password) > 8
    checked: list[str] = []

    def inspect(proc) -> None:  # type: ignore[no-untyped-def]
        # Popen returns after exec; the child blocks on its pipe, so /proc shows its real argv
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert cmdline, "process already gone: cannot check its argv"
        assert password.encode() not in cmdline
        assert password.encode() not in environ and b"MYSQL_PWD" not in environ
        args = cmdline.split(b"\0")
        assert args[1] == f"--defaults-file={backend.service_cnf}".encode()
        assert not any(a.startswith((b"-p", b"--password")) for a in args)
        checked.append(os.path.basename(args[0].decode()))

    out = tmp_path / "b.age"
    create_backup(out, [keys.recipient], backend.service_cnf, keys.signing_key(),
                  databases=[sample], on_spawn=inspect)
    restore_backup(out, [keys.identity], keys.trusted(), backend.service_cnf,
                   databases=[target], on_spawn=inspect)
    assert checked in (["mariadb-dump", "mariadb"], ["mysqldump", "mysql"])


def test_failed_backup_leaves_no_file(backend, sample, keys, tmp_path, monkeypatch) -> None:
    real = mysql_mod.dump_argv
    monkeypatch.setattr(mysql_mod, "dump_argv", lambda cnf, db: real(cnf, db) + ["--no-such-opt"])
    out = tmp_path / "out" / "b.age"
    with pytest.raises(BackendError, match="mariadb-dump"):
        create_backup(out, [keys.recipient], backend.service_cnf, keys.signing_key(),
                      databases=[sample])
    assert list(out.parent.iterdir()) == []


def test_existing_backup_not_overwritten(backend, sample, keys, tmp_path) -> None:
    out = tmp_path / "b.age"
    out.write_bytes(b"older backup")
    with pytest.raises(FileExistsError):
        create_backup(out, [keys.recipient], backend.service_cnf, keys.signing_key(),
                      databases=[sample])
    assert out.read_bytes() == b"older backup"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_tty_only(backend, sample, keys, tmp_path) -> None:
    tty, pipe = _Tty(), io.StringIO()
    create_backup(tmp_path / "a.age", [keys.recipient], backend.service_cnf, keys.signing_key(),
                  databases=[sample], progress=tty)
    create_backup(tmp_path / "b.age", [keys.recipient], backend.service_cnf, keys.signing_key(),
                  databases=[sample], progress=pipe)
    line = tty.getvalue()
    assert line.startswith("\rbackup: ") and "/s" in line and line.endswith("\n")
    assert pipe.getvalue() == ""
