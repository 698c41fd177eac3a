"""`cryptdb backup`: mariadb-dump | tar | compress | age, streaming, into a new 0400 file.

Pipeline (mariadb-dump and the server run in their own processes):
    mariadb-dump stdout -> reader thread -> 16 MiB part buffers -> TarWriter (SHA-256 per
      member) -> compressor -> AgeWriter (ChaCha20-Poly1305, 64 KiB chunks) -> OutputFile (0400)
Memory is three part buffers plus the compressor's window, whatever the database's size, and
no plaintext touches the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backup import mysql, signing
from backup.age import AgeWriter, Recipient
from backup.archive import (
    KEYSTORE,
    MANIFEST,
    MAX_SMALL,
    PART_SIZE,
    README,
    SIGNATURE,
    SUMS,
    TOP,
    TarWriter,
    dump_dir,
    dump_part,
)
from backup.compress import default_kind, open_compressor
from backup.files import OutputFile, check_credentials_file, output_dir
from backup.manifest import FORMAT, README_TEXT, VERSION, Manifest, sha256sums
from backup.progress import Progress
from keystore.files import check_private

F_SETPIPE_SZ = 1031  # Linux: a 1 MiB pipe means fewer, larger reads from mariadb-dump
BUFFERS = 3


class BackupError(Exception):
    pass


@dataclass
class BackupResult:
    path: Path
    manifest: Manifest
    dump_bytes: int  # SQL produced by mariadb-dump
    archive_bytes: int  # plaintext tar stream
    file_bytes: int  # encrypted file on disk
    seconds: float


def _read_keystore(path: Path) -> bytes:
    check_private(path)  # key material: refuse it if others can read it, as for credentials
    data = path.read_bytes()
    if len(data) > MAX_SMALL:
        raise BackupError(f"keystore {path} is implausibly large ({len(data)} bytes)")
    return data


def _tool_version() -> str:
    try:
        return metadata.version("cryptdb-proxy")
    except metadata.PackageNotFoundError:
        return "unknown"


def _produce(stdout: BinaryIO, free: queue.Queue, filled: queue.Queue, stop: threading.Event,
             part_size: int) -> None:
    """Reader thread: fills part buffers from mariadb-dump while the main thread hashes,
    compresses and encrypts the previous one (the pipe read releases the GIL)."""
    try:
        first = True
        while not stop.is_set():
            buf = free.get()
            view, fill = memoryview(buf), 0
            while fill < part_size and (n := stdout.readinto(view[fill:])):
                fill += n
            if fill or first:
                filled.put((buf, fill))
            first = False
            if fill < part_size:
                break
        filled.put(None)
    except BaseException as e:  # handed to the main thread
        filled.put(e)


def _dump_database(
    tar: TarWriter,
    cnf: Path,
    database: str,
    progress: Progress,
    on_spawn: mysql.SpawnHook | None,
    part_size: int,
) -> tuple[list[str], int]:
    tar.add_dir(dump_dir(database))
    parts: list[str] = []
    total = 0
    free: queue.Queue[bytearray] = queue.Queue()
    filled: queue.Queue[tuple[bytearray, int] | BaseException | None] = queue.Queue()
    for _ in range(BUFFERS):  # memory: BUFFERS x part_size, whatever the dump's size
        free.put(bytearray(part_size))
    stop = threading.Event()
    proc = mysql.Process(
        mysql.dump_argv(cnf, database), stdout=subprocess.PIPE, on_spawn=on_spawn
    )
    stdout = proc.popen.stdout
    assert stdout is not None
    with contextlib.suppress(OSError):
        fcntl.fcntl(stdout.fileno(), F_SETPIPE_SZ, 1 << 20)
    reader = threading.Thread(
        target=_produce, args=(stdout, free, filled, stop, part_size), daemon=True
    )
    reader.start()
    try:
        while (item := filled.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            buf, fill = item
            name = dump_part(database, len(parts) + 1)
            parts.append(tar.add_file(name, memoryview(buf)[:fill]).name)
            total += fill
            progress.update(fill)
            free.put(buf)
        proc.wait(f"mariadb-dump of database {database!r}")
    except BaseException:
        stop.set()
        proc.kill()
        free.put(bytearray(0))  # unblock the reader if it waits for a buffer
        raise
    finally:
        reader.join(timeout=10)
    return parts, total


def create_backup(
    output: Path,
    recipients: Sequence[Recipient],
    cnf: Path,
    signing_key: Ed25519PrivateKey,
    databases: Sequence[str] | None = None,
    keystore: Path | None = None,
    compression: str | None = None,
    progress: TextIO | None = None,
    on_spawn: mysql.SpawnHook | None = None,
    part_size: int = PART_SIZE,
) -> BackupResult:
    """Dump `databases` (default: all non-system ones) and `keystore` into `output`.

    `compression`: "zstd" (default when the zstandard package is installed), "gzip", "none".
    """
    started = time.monotonic()
    compression = compression or default_kind()
    if not recipients:
        raise BackupError("at least one age recipient is needed (--recipient age1...)")
    cnf = check_credentials_file(Path(cnf))
    keystore_bytes = _read_keystore(Path(keystore)) if keystore else None
    output = Path(output)
    output_dir(output.parent)

    conn = mysql.connect(cnf)
    try:
        names = list(databases) if databases else mysql.list_databases(conn)
        if not names:
            raise BackupError("no database to back up")
        infos = [mysql.describe(conn, name) for name in names]
        server = mysql.server_version(conn)
    finally:
        conn.close()
    # ETA basis: --hex-blob doubles the ciphertext columns that make up most of the tables
    estimate = 2 * sum(t["bytes"] for info in infos for t in info["tables"])

    created = datetime.now(UTC)
    out = OutputFile(output)
    try:
        age = AgeWriter(out.file, recipients)
        comp = open_compressor(compression, age)  # type: ignore[arg-type]
        tar = TarWriter(comp, int(created.timestamp()))
        tar.add_dir(TOP)
        tar.add_file(README, README_TEXT.encode())
        ks_meta: dict[str, Any] | None = None
        if keystore_bytes is not None:
            entry = tar.add_file(KEYSTORE, keystore_bytes)
            ks_meta = {"member": KEYSTORE, "source": str(keystore), "size": entry.size,
                       "sha256": entry.sha256}
        tar.add_dir(f"{TOP}/dump")
        bar = Progress("backup", estimate, progress)
        dump_bytes = 0
        for info in infos:
            parts, size = _dump_database(tar, cnf, info["name"], bar, on_spawn, part_size)
            info["parts"], info["dump_bytes"] = parts, size
            dump_bytes += size
        bar.finish()
        if keystore_bytes is not None and _read_keystore(Path(keystore)) != keystore_bytes:  # type: ignore[arg-type]
            raise BackupError(
                f"keystore {keystore} changed during the backup; the dump may hold data under "
                "keys this copy lacks: run the backup again"
            )
        tar.add_file(SUMS, sha256sums(tar.entries))
        manifest = Manifest(
            {
                "format": FORMAT,
                "version": VERSION,
                "backup_id": uuid.uuid4().hex,
                "created": created.isoformat(timespec="seconds"),
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "tool": {"name": "cryptdb-proxy", "version": _tool_version()},
                "server": {"version": server},
                "compression": compression,
                "recipients": [str(r) for r in recipients],
                "signer": signing.public_key_line(signing_key.public_key()),
                "keystore": ks_meta,
                "databases": infos,
                "dump_bytes": dump_bytes,
            },
            list(tar.entries),
        )
        raw = manifest.to_bytes()
        tar.add_file(MANIFEST, raw)
        tar.add_file(SIGNATURE, signing.sign(signing_key, raw).encode())
        tar.close()
        comp.close()
        age.close()
        file_bytes = out.file.tell()
        path = out.commit()
    except BaseException:
        out.abort()
        raise
    return BackupResult(
        path, manifest, dump_bytes, tar.written, file_bytes, time.monotonic() - started
    )

