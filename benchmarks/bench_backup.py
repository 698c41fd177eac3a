"""Backup and restore throughput against `mariadb-dump | age -r` on the same data, same run.

    .venv/bin/python -m benchmarks backup
    CRYPTDB_BENCH_BACKUP_MB=3200 .venv/bin/python -m benchmarks backup    # the >= 3 GiB dump

The default dump is 256 MiB so `make bench` stays short on 2 shared cores; the 3 GiB run
(issue 6: the smime pipeline it replaces truncates silently near 1.9 GB) takes ~10 minutes
and ~15 GB of disk. MB/s are dump bytes (the SQL mariadb-dump writes) per second of wall time,
so every pipeline is measured against the same denominator.
"""

from __future__ import annotations

import io
import os
import resource
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from backup import create_backup, restore_backup, verify_backup
from backup.age import AgeWriter, Identity, open_decrypt
from backup.compress import zstd_available
from backup.mysql import client_argv, dump_argv
from backup.testing import make_keys
from proxy.devbackend import DevBackend

ROW_DUMP_BYTES = 528  # hex dump of one generated row, measured
BATCH = 200_000


def _mbs(nbytes: float, seconds: float) -> str:
    return f"{nbytes / max(seconds, 1e-9) / 1e6:8.0f} MB/s"


def _timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


def bench_stages(size: int = 256 << 20) -> None:
    """The encryption stage alone, in memory: ours vs pyrage vs the stock age binary."""
    data = os.urandom(size)
    ident = Identity.generate()
    rec = ident.recipient()
    sink = open(os.devnull, "wb")

    def ours() -> None:
        w = AgeWriter(sink, [rec])
        view = memoryview(data)
        for i in range(0, size, 1 << 20):
            w.write(view[i : i + (1 << 20)])
        w.close()

    _, dt = _timed(ours)
    print(f"  encrypt stage, ours (ChaCha20-Poly1305, 64 KiB chunks) {_mbs(size, dt)}")
    blob = io.BytesIO()
    w = AgeWriter(blob, [rec])
    w.write(data)
    w.close()

    def decrypt() -> None:
        r = open_decrypt(io.BytesIO(blob.getvalue()), [ident])
        while r.read(1 << 20):
            pass

    _, dt = _timed(decrypt)
    print(f"  decrypt stage, ours                                   {_mbs(size, dt)}")
    try:
        import pyrage

        prec = pyrage.x25519.Recipient.from_str(str(rec))
        _, dt = _timed(lambda: pyrage.encrypt_io(io.BytesIO(data), sink, [prec]))
        print(f"  encrypt stage, pyrage.encrypt_io                      {_mbs(size, dt)}")
    except ImportError:
        pass
    if shutil.which("age"):
        _, dt = _timed(lambda: subprocess.run(
            ["age", "-r", str(rec)], input=data, stdout=subprocess.DEVNULL, check=True))
        print(f"  encrypt stage, stock age binary (via pipe)            {_mbs(size, dt)}")
    sink.close()


def _fill(backend: DevBackend, db: str, target_bytes: int) -> None:
    rows = max(target_bytes // ROW_DUMP_BYTES, 1)
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        conn.select_db(db)  # seq_1_to_N (the Sequence engine) needs a current database
        cur.execute(
            f"CREATE TABLE `{db}`.cipher (id BIGINT PRIMARY KEY, name_enc VARBINARY(48), "
            "name_iv BIGINT UNSIGNED, payload_enc VARBINARY(255), age_ope DECIMAL(39,0)) "
            "ENGINE=InnoDB"
        )
        for start in range(0, rows, BATCH):
            n = min(BATCH, rows - start)
            # random bytes: what RND/DET ciphertext looks like to a dump and to zstd
            cur.execute(
                f"INSERT INTO `{db}`.cipher SELECT seq + {start}, RANDOM_BYTES(32), "
                "CONV(HEX(RANDOM_BYTES(7)), 16, 10), RANDOM_BYTES(200), FLOOR(RAND() * 1e30) "
                f"FROM seq_1_to_{n}"
            )


def _shell(cmd: str) -> float:
    _, dt = _timed(lambda: subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True))
    return dt


def _drop(backend: DevBackend, db: str) -> None:
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")


def bench_pipeline(target_bytes: int) -> None:
    base = Path(os.environ.get("CRYPTDB_BENCH_DIR") or tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=base, prefix="bench-backup-") as tmp:
        work = Path(tmp)
        backend = DevBackend(work / "mariadb")
        backend.start()
        try:
            _run(backend, work, target_bytes)
        finally:
            backend.stop()


def _run(backend: DevBackend, work: Path, target_bytes: int) -> None:
    cnf = backend.service_cnf
    keys = make_keys(work / "keys")
    db = "bench_src"
    _, dt = _timed(lambda: _fill(backend, db, target_bytes))
    print(f"  data: generated in {dt:.0f} s")
    raw = " ".join(map(str, dump_argv(cnf, db)))
    dt = _shell(f"{raw} > /dev/null")
    out = work / "ours.age"
    res = create_backup(out, [keys.recipient], cnf, keys.signing_key(), databases=[db],
                        compression="none")
    size = res.dump_bytes
    print(f"  dump size {size / 2**30:.2f} GiB ({size} bytes), encrypted file "
          f"{res.file_bytes / 2**30:.2f} GiB; max RSS after the backup "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    print(f"  backup  mariadb-dump > /dev/null (ceiling)        {_mbs(size, dt)}")
    base_file = work / "baseline.age"
    dt = _shell(f"{raw} | age -r {keys.recipient} > {base_file}")
    print(f"  backup  mariadb-dump | age -r                     {_mbs(size, dt)}")
    print(f"  backup  ours, no compression                      {_mbs(size, res.seconds)}")
    if zstd_available():
        zfile = work / "ours-zstd.age"
        zres = create_backup(zfile, [keys.recipient], cnf, keys.signing_key(), databases=[db],
                             compression="zstd")
        print(f"  backup  ours, zstd                                {_mbs(size, zres.seconds)}"
              f"  (file {zres.file_bytes / size:.0%} of the dump)")
        zfile.unlink()
    _, dt = _timed(lambda: verify_backup(out, [keys.identity], keys.trusted()))
    print(f"  verify  ours (decrypt + SHA-256 + signature)      {_mbs(size, dt)}")

    target = f"r_{secrets.token_hex(4)}"
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{target}`")
    client = " ".join(map(str, client_argv(cnf, target)))
    dt = _shell(f"age -d -i {keys.identity_file} {base_file} | {client}")
    print(f"  restore age -d | mariadb                          {_mbs(size, dt)}")
    _drop(backend, target)
    base_file.unlink()
    rres = restore_backup(out, [keys.identity], keys.trusted(), cnf, databases=[target])
    counts = "row counts match the manifest" if not rres.warnings else "; ".join(rres.warnings)
    print(f"  restore ours (verify pass + load pass)            {_mbs(size, rres.seconds)}"
          f"  ({counts})")
    _drop(backend, target)
    print(f"  max RSS after backup, verify and restore: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


def main() -> None:
    mb = int(os.environ.get("CRYPTDB_BENCH_BACKUP_MB", "256"))
    # the pipeline first, so that the max RSS it reports is the pipeline's, not the stages'
    if shutil.which("age") and shutil.which("mariadb-dump"):
        print(f"  pipeline on a ~{mb} MiB dump (CRYPTDB_BENCH_BACKUP_MB to change)")
        bench_pipeline(mb << 20)
    else:
        print("  (age or mariadb-dump missing: pipeline benchmark skipped)")
    bench_stages()


if __name__ == "__main__":
    main()
