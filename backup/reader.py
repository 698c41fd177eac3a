"""One pass over a backup file: decrypt, decompress, walk the tar, hash, check the signed manifest.

`verify` is one such pass that keeps nothing. `restore` makes two: the first proves the whole
file good before anything is applied (a stream can only be judged at its end); the second
applies it while checking each member against the manifest already verified, in case the
file changed in between.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from backup import signing
from backup.age import AgeError, Identity, open_decrypt
from backup.archive import (
    KEYSTORE,
    MANIFEST,
    SIGNATURE,
    SUMS,
    ArchiveError,
    Entry,
    Member,
    read_members,
)
from backup.compress import open_decompressor
from backup.manifest import Manifest, check_entries, sha256sums
from backup.progress import Progress


class BackupInvalid(Exception):
    """The backup cannot be trusted: undecryptable, truncated, corrupted, or not ours."""


@dataclass
class Verified:
    manifest: Manifest
    manifest_bytes: bytes
    signer: str  # fingerprint of the trusted key that signed it
    compression: str
    keystore: bytes | None
    plaintext_bytes: int


class _Counting(io.RawIOBase):
    """Counts (and reports) the encrypted bytes consumed."""

    def __init__(self, src: BinaryIO, progress: Progress | None) -> None:
        super().__init__()
        self._src, self._progress = src, progress

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._src.readinto(b)  # type: ignore[attr-defined]
        if self._progress and n:
            self._progress.update(n)
        return n or 0


def _drain(stream: BinaryIO) -> int:
    n = 0
    while b := stream.read(1 << 20):
        n += len(b)
    return n


def read_backup(
    src: BinaryIO,
    identities: Iterable[Identity],
    trusted: Ed25519PublicKey,
    sink: Callable[[Member], None] | None = None,
    expected: Verified | None = None,
    keep_keystore: bool = False,
    progress: Progress | None = None,
) -> Verified:
    """Read the whole backup from `src`; raise BackupInvalid unless every check passes.

    `sink` is handed each file member (other than keystore, SHA256SUMS, manifest, signature)
    to consume as it streams; data it sees is only proven good when this returns.
    """
    try:
        return _read(src, identities, trusted, sink, expected, keep_keystore, progress)
    except (AgeError, ArchiveError, signing.SignatureError) as e:
        raise BackupInvalid(str(e)) from None
    except (EOFError, OSError, ValueError) as e:  # zstd/gzip on a damaged stream
        raise BackupInvalid(f"backup corrupted: {e}") from None


def _read(
    src: BinaryIO,
    identities: Iterable[Identity],
    trusted: Ed25519PublicKey,
    sink: Callable[[Member], None] | None,
    expected: Verified | None,
    keep_keystore: bool,
    progress: Progress | None,
) -> Verified:
    plain = open_decrypt(io.BufferedReader(_Counting(src, progress), 1 << 20), identities)
    kind, stream = open_decompressor(plain)  # type: ignore[arg-type]
    want = {e.name: e for e in expected.manifest.entries} if expected else None
    seen: list[Entry] = []
    manifest_raw = sig = sums = keystore = None
    total = 0
    for member in read_members(stream):
        total += member.size
        if sig is not None:
            raise ArchiveError(f"{member.name} follows the manifest signature")
        if member.name == MANIFEST and manifest_raw is None:
            manifest_raw = member.read_all()
            continue
        if member.name == SIGNATURE and manifest_raw is not None:
            sig = member.read_all()
            continue
        if manifest_raw is not None:
            raise ArchiveError(f"{member.name} follows the manifest")
        if member.name == SUMS:
            sums = member.read_all()
        elif member.name == KEYSTORE and keep_keystore:
            keystore = member.read_all()
        elif sink is not None and member.type == "file":
            sink(member)
        entry = member.entry()
        if want is not None and want.get(entry.name) != entry:
            raise ArchiveError(f"{entry.name} changed since it was verified")
        seen.append(entry)
    _drain(stream)
    _drain(plain)  # to the end of the age stream, so its final chunk is authenticated
    if manifest_raw is None or sig is None:
        raise ArchiveError("backup truncated: no signed manifest at the end of the archive")
    signing.verify(trusted, manifest_raw, sig)
    manifest = Manifest.parse(manifest_raw)
    check_entries(manifest, seen)
    before_sums = seen[: [e.name for e in seen].index(SUMS)]
    if sums != sha256sums(before_sums):
        raise ArchiveError("SHA256SUMS does not list the archive's members")
    if expected is not None and manifest_raw != expected.manifest_bytes:
        raise ArchiveError("the manifest changed since it was verified")
    return Verified(
        manifest, manifest_raw, signing.fingerprint(trusted), kind, keystore, total
    )
