"""Private files: strict umask before creation, atomic replacement, permission checks.

Following mysqldump-secure: permissions are right from the moment a file exists (the umask
is set before `open`, never fixed afterwards with chmod), and a secret-bearing file that
others can read is refused, naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


class InsecurePermissions(Exception):
    """A secret-bearing file or directory is accessible to other users."""


@contextlib.contextmanager
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) as 0700, or check an existing one."""
    path = Path(path)
    with strict_umask():
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    check_private(path)
    return path


def check_private(path: Path, st: os.stat_result | None = None) -> None:
    """Refuse `path` if group or others have any access to it (`st`: an fstat already made)."""
    st = os.stat(path) if st is None else st
    if stat.S_IMODE(st.st_mode) & 0o077:
        wanted = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
        raise InsecurePermissions(
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}, readable by other users; "
            f"fix with: chmod {wanted:04o} {path}"
        )
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise InsecurePermissions(f"{path} is owned by uid {st.st_uid}, not by this user")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes | str) -> None:
    """Atomically replace `path` with `data`: temp file, fsync, rename, fsync of the dir.

    A crash at any instant leaves either the old content or the new one.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    directory = path.parent
    private_dir(directory)
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    with strict_umask():
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def read_private(path: Path) -> bytes:
    """Read a secret-bearing file after checking it and its directory are private."""
    path = Path(path)
    check_private(path.parent)
    check_private(path)
    return path.read_bytes()


class LockTimeout(Exception):
    """Another process held a lock for longer than the caller was willing to wait."""


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created 0600 if missing) for the `with` body.

    flock, not lockf: two open file descriptions conflict even inside one process, and the
    kernel releases the lock when its holder dies (kill -9 included), so no stale lock files.
    """
    with strict_umask():
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{path} is locked by another process") from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale_temps(path: Path) -> int:
    """Delete temp files that `write_private(path, ...)` left behind when its writer was killed.

    Only safe while holding the lock every writer of `path` takes: then no temp file is live.
    """
    path = Path(path)
    removed = 0
    pattern = os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.tmp")
    for tmp in glob.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
            removed += 1
    return removed
