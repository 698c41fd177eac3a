"""The plaintext archive: a POSIX (pax) tar stream, readable by `tar`, written and read in one pass.

A tar header needs its member's size up front, and a dump's size is known only at its end, so
each database's dump is cut into parts of PART_SIZE bytes: memory stays bounded, and
`cat dump/DB/*.sql` gives back the dump. Our reader accepts only what our writer produces
(regular files and directories, no links), since a backup is untrusted input until verified.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote

TOP = "cryptdb-backup"
README = f"{TOP}/README.txt"
KEYSTORE = f"{TOP}/keystore"
SUMS = f"{TOP}/SHA256SUMS"
MANIFEST = f"{TOP}/manifest.json"
SIGNATURE = f"{TOP}/manifest.json.sig"
PART_SIZE = 16 << 20
BLOCK = 512
RECORD = 20 * BLOCK
MAX_SMALL = 64 << 20  # manifest, signature, keystore: read into memory, so bounded
FILE_MODE, DIR_MODE = 0o400, 0o700


class ArchiveError(Exception):
    """The decrypted archive is malformed or does not match its manifest."""


def dump_dir(database: str) -> str:
    return f"{TOP}/dump/{quote(database, safe='')}"


def dump_part(database: str, index: int) -> str:
    return f"{dump_dir(database)}/{index:06d}.sql"


@dataclass(frozen=True)
class Entry:
    name: str
    type: str  # "file" or "dir"
    size: int = 0
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "file":
            d |= {"size": self.size, "sha256": self.sha256}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Entry:
        try:
            if d["type"] == "dir":
                return cls(str(d["name"]), "dir")
            if d["type"] == "file":
                return cls(str(d["name"]), "file", int(d["size"]), str(d["sha256"]))
        except (KeyError, TypeError, ValueError):
            pass
        raise ArchiveError(f"malformed manifest entry: {d!r}")


def _header(name: str, kind: str, size: int, mtime: int) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if kind == "dir" else tarfile.REGTYPE
    ti.mode = DIR_MODE if kind == "dir" else FILE_MODE
    ti.size = size
    ti.mtime = mtime
    ti.uname = ti.gname = ""
    return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


class TarWriter:
    """Appends members to `out`, hashing each; `entries` lists what was written, in order."""

    def __init__(self, out: BinaryIO, mtime: int) -> None:
        self.out = out
        self.mtime = mtime
        self.entries: list[Entry] = []
        self.written = 0

    def _write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.written += len(data)

    def add_dir(self, name: str) -> Entry:
        self._write(_header(name + "/", "dir", 0, self.mtime))
        entry = Entry(name, "dir")
        self.entries.append(entry)
        return entry

    def add_file(self, name: str, data: bytes | bytearray | memoryview) -> Entry:
        view = memoryview(data).cast("B")
        self._write(_header(name, "file", len(view), self.mtime))
        self._write(view)
        if len(view) % BLOCK:
            self._write(bytes(BLOCK - len(view) % BLOCK))
        entry = Entry(name, "file", len(view), hashlib.sha256(view).hexdigest())
        self.entries.append(entry)
        return entry

    def close(self) -> None:
        """End-of-archive (two zero blocks), padded to a whole record as tar does."""
        end = 2 * BLOCK
        end += -(self.written + end) % RECORD
        self._write(bytes(end))


def _read_exact(src: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        b = src.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _pax_records(data: bytes) -> dict[str, str]:
    out, i = {}, 0
    while i < len(data):
        sp = data.find(b" ", i)
        if sp < 0:
            raise ArchiveError("malformed pax header")
        try:
            length = int(data[i:sp])
        except ValueError:
            raise ArchiveError("malformed pax header") from None
        record = data[sp + 1 : i + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise ArchiveError("malformed pax header")
        key, _, value = record[:-1].partition(b"=")
        out[key.decode("utf-8")] = value.decode("utf-8")
        i += length
    return out


class Member:
    """One archive member, read in chunks; `sha256` is complete once it has been read out."""

    def __init__(self, src: BinaryIO, name: str, kind: str, size: int) -> None:
        self.name, self.type, self.size = name, kind, size
        self._src = src
        self._left = size
        self._hash = hashlib.sha256()

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        while self._left:
            b = self._src.read(min(size, self._left))
            if not b:
                raise ArchiveError(f"backup truncated inside {self.name}")
            self._left -= len(b)
            self._hash.update(b)
            yield b

    def read_all(self, limit: int = MAX_SMALL) -> bytes:
        if self.size > limit:
            raise ArchiveError(f"{self.name} is implausibly large ({self.size} bytes)")
        return b"".join(self.chunks())

    def entry(self) -> Entry:
        if self.type == "dir":
            return Entry(self.name, "dir")
        for _ in self.chunks():  # hash whatever the consumer left unread
            pass
        return Entry(self.name, "file", self.size, self._hash.hexdigest())


def read_members(src: BinaryIO) -> Iterator[Member]:
    """Members of the tar stream `src`, in order; each is finished (drained) before the next."""
    pax: dict[str, str] = {}
    while True:
        hdr = _read_exact(src, BLOCK)
        if len(hdr) < BLOCK:
            raise ArchiveError("backup truncated: the tar stream ends without its end marker")
        if hdr == bytes(BLOCK):
            return
        try:
            ti = tarfile.TarInfo.frombuf(hdr, "utf-8", "strict")
        except tarfile.HeaderError as e:
            raise ArchiveError(f"corrupted tar header in backup ({e})") from None
        if ti.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
            data = _read_exact(src, ti.size) if ti.size <= MAX_SMALL else b""
            if len(data) != ti.size:
                raise ArchiveError("truncated or oversized pax header")
            _read_exact(src, -ti.size % BLOCK)
            if ti.type == tarfile.XHDTYPE:
                pax = _pax_records(data)
            continue
        name = pax.get("path", ti.name).rstrip("/")
        size = int(pax.get("size", ti.size))
        pax = {}
        inside = name == TOP or name.startswith(TOP + "/")
        if name.startswith("/") or ".." in name.split("/") or not inside:
            raise ArchiveError(f"unexpected member path in backup: {name!r}")
        if ti.type == tarfile.DIRTYPE:
            yield Member(src, name, "dir", 0)
            continue
        if ti.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise ArchiveError(f"unexpected member type in backup: {name!r}")
        member = Member(src, name, "file", size)
        yield member
        member.entry()
        _read_exact(src, -size % BLOCK)
