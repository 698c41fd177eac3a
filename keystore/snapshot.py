"""Reading the keystore file from disk: a checked, parsed snapshot, re-read only when it changed.

Readers take no lock: writers replace the file by rename, so one open file descriptor always
sees one complete version. "Changed" is decided from the fstat identity and the 78-byte
header (generation), so polling costs an open and a small read, no argon2 and no AES.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from keystore.errors import CorruptKeystore, KeystoreMissing
from keystore.files import check_private
from keystore.format import HEADER_BYTES, MAX_FILE_BYTES, KeystoreFile, decode, decode_header


@dataclass(frozen=True)
class Snapshot:
    file: KeystoreFile
    data: bytes = field(repr=False)
    ident: tuple[int, int, int]  # st_dev, st_ino, st_size of the file it was read from


def corrupt(path: Path, reason: str) -> CorruptKeystore:
    return CorruptKeystore(f"{path}: {reason}")


def read_if_changed(path: Path, old: Snapshot | None) -> Snapshot | None:
    """A new snapshot of `path`, or None if it is still the one in `old`.

    Checks the directory's and the file's permissions on every call (InsecurePermissions).
    """
    try:
        check_private(path.parent)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeystoreMissing(
            f"no keystore at {path}: create one with `cryptdb keystore init`"
        ) from None
    try:
        st = os.fstat(fd)
        check_private(path, st)
        if not stat.S_ISREG(st.st_mode):
            raise corrupt(path, "not a regular file")
        ident = (st.st_dev, st.st_ino, st.st_size)
        head = os.pread(fd, HEADER_BYTES, 0)
        try:
            header = decode_header(head)
        except CorruptKeystore as e:
            raise corrupt(path, str(e)) from None
        if old is not None and old.ident == ident and old.file.header == header:
            return None
        data = _read_all(fd, MAX_FILE_BYTES)
        if data is None:
            raise corrupt(path, "file larger than any keystore can be")
    finally:
        os.close(fd)
    try:
        file = decode(data)
    except CorruptKeystore as e:
        raise corrupt(path, str(e)) from None
    if old is not None:
        _check_successor(path, old, file, data)
    return Snapshot(file, data, ident)


def _check_successor(path: Path, old: Snapshot, new: KeystoreFile, data: bytes) -> None:
    """Refuse a file that cannot have been written after the one we know: a restored backup
    (it would resurrect rotated-away passwords) or another deployment's keystore."""
    before, after = old.file.header, new.header
    if after.deployment_id != before.deployment_id:
        raise corrupt(path, "replaced by a different keystore; restart to use it")
    if after.generation < before.generation or (
        after.generation == before.generation and data != old.data
    ):
        raise corrupt(
            path, f"generation went from {before.generation} to {after.generation}: "
            "replaced by an older copy; restart to accept it",
        )


def _read_all(fd: int, limit: int) -> bytes | None:
    """The whole file, or None if it holds more than `limit` bytes (it may grow after fstat)."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
        if offset > limit:
            return None
    return b"".join(chunks)
