"""Backup files follow mysqldump-secure: 0400 files, 0700 dirs, umask set before `open`.

Extends keystore.files (which handles 0600 secrets) with read-only output files and the
credential-file checks specific to backups.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from keystore.files import InsecurePermissions, check_private, fsync_dir, private_dir

BACKUP_FILE_MODE = 0o400
BACKUP_UMASK = 0o377  # `umask 377; mysqldump ...`: the file is 0400 from the instant it exists


@contextlib.contextmanager
def backup_umask() -> Iterator[None]:
    old = os.umask(BACKUP_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def check_credentials_file(path: Path) -> Path:
    """Refuse a my.cnf-style credentials file others could read (naming the file and fix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"credentials file {path} does not exist")
    try:
        check_private(path)
    except InsecurePermissions as e:
        raise InsecurePermissions(
            f"refusing credentials file: {e} (the password may already have leaked; "
            "consider changing it)"
        ) from None
    return path


def output_dir(path: Path, warn: BinaryIO | None = None) -> Path:
    """Create the backup directory 0700; warn when an existing one is open to others."""
    path = Path(path)
    if not path.exists():
        return private_dir(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        msg = (
            f"warning: backup directory {path} has mode {mode:04o}; "
            f"backups are safer in a 0700 directory (chmod 0700 {path})\n"
        )
        (warn or sys.stderr.buffer).write(msg.encode())
    return path


class OutputFile:
    """A new 0400 file, written under a temporary name and renamed into place on `commit`.

    A failed or interrupted backup never leaves a file under the final name.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.exists() or self.path.is_symlink():
            raise FileExistsError(f"{self.path} exists; refusing to overwrite a backup")
        self.partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        with backup_umask():
            fd = os.open(self.partial, flags, BACKUP_FILE_MODE)
        self.file: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)

    def commit(self) -> Path:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if self.path.exists():
            raise FileExistsError(f"{self.path} appeared during the backup; kept {self.partial}")
        os.rename(self.partial, self.path)
        fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.partial)
