"""`cryptdb restore` and `cryptdb backup verify`.

Restore makes two passes over the encrypted file (decryption runs at >2 GB/s, far above what
the mariadb client loads): pass 1 verifies everything and applies nothing; pass 2 feeds the
dumps to `mariadb` while re-checking each member against the verified manifest. If pass 2
fails anyway (file altered in between, SQL error, lost connection), the target databases,
empty before, are emptied again (or dropped if we created them): nothing is left half-done.
A staging database renamed into place was the alternative; MariaDB cannot rename a database,
and moving tables one by one leaves views, routines and triggers behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from backup import mysql
from backup.age import Identity
from backup.archive import Member
from backup.files import check_credentials_file
from backup.manifest import Manifest
from backup.progress import Progress
from backup.reader import BackupInvalid, Verified, read_backup
from keystore.files import write_private


class RestoreError(Exception):
    pass


@dataclass
class RestoreResult:
    verified: Verified
    databases: dict[str, str]  # source name -> restored name
    keystore: Path | None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    file_bytes: int = 0


def verify_backup(
    path: Path,
    identities: Iterable[Identity],
    trusted: Ed25519PublicKey,
    progress: TextIO | None = None,
) -> Verified:
    """Decrypt and check signature, manifest and every checksum; restore nothing."""
    with open(path, "rb") as f:
        bar = Progress("verify", os.fstat(f.fileno()).st_size, progress)
        verified = read_backup(f, identities, trusted, progress=bar)
        bar.finish()
    return verified


def plan_targets(manifest: Manifest, selections: Sequence[str] | None) -> dict[str, str]:
    """`--database` values -> {source: target}.

    NAME picks a database of the backup under its own name; SRC=DST renames it; a NAME that
    is not in a one-database backup is the target for that database. Default: all, same names.
    """
    sources = [d["name"] for d in manifest.databases]
    if not selections:
        return {s: s for s in sources}
    plan: dict[str, str] = {}
    for sel in selections:
        src, eq, dst = sel.partition("=")
        if not eq:
            if src in sources:
                dst = src
            elif len(sources) == 1:
                src, dst = sources[0], sel
            else:
                raise RestoreError(
                    f"{sel!r} is not in this backup (it holds {', '.join(sources)}); "
                    "use SRC=TARGET"
                )
        if src not in sources:
            raise RestoreError(f"database {src!r} is not in this backup")
        if not dst:
            raise RestoreError(f"empty target name in {sel!r}")
        plan[src] = dst
    if len(set(plan.values())) != len(plan):
        raise RestoreError("two databases would be restored into the same target")
    return plan


class _Loader:
    """Feeds dump parts, in archive order, to one `mariadb` client per database."""

    def __init__(self, cnf: Path, plan: dict[str, str], manifest: Manifest,
                 on_spawn: mysql.SpawnHook | None) -> None:
        self.cnf, self.plan, self.on_spawn = cnf, plan, on_spawn
        self.part_db = {p: d["name"] for d in manifest.databases for p in d["parts"]}
        self.db: str | None = None
        self.proc: mysql.Process | None = None

    def __call__(self, member: Member) -> None:
        db = self.part_db.get(member.name)
        if db is None or db not in self.plan:
            return
        if db != self.db:
            self.finish()
            self.db = db
            self.proc = mysql.Process(
                mysql.client_argv(self.cnf, self.plan[db]), stdin=subprocess.PIPE,
                on_spawn=self.on_spawn,
            )
        assert self.proc is not None and self.proc.popen.stdin is not None
        try:
            for chunk in member.chunks():
                self.proc.popen.stdin.write(chunk)
        except BrokenPipeError:
            self.finish()  # raises with the client's own error message if it failed
            raise mysql.BackendError("the mariadb client stopped reading its input") from None

    def finish(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            assert proc.popen.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.popen.stdin.close()
            proc.wait(f"mariadb client loading {self.plan[self.db or '']!r}")

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()


def restore_backup(
    path: Path,
    identities: Iterable[Identity],
    trusted: Ed25519PublicKey,
    cnf: Path,
    databases: Sequence[str] | None = None,
    keystore_out: Path | None = None,
    progress: TextIO | None = None,
    on_spawn: mysql.SpawnHook | None = None,
) -> RestoreResult:
    """Verify `path` completely, then load it into empty (or new) databases."""
    started = time.monotonic()
    identities = list(identities)
    cnf = check_credentials_file(Path(cnf))
    if keystore_out is not None and Path(keystore_out).exists():
        raise RestoreError(f"{keystore_out} exists; refusing to overwrite a keystore")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        bar = Progress("verify", size, progress)
        verified = read_backup(f, identities, trusted, progress=bar)
        bar.finish()
        manifest = verified.manifest
        if keystore_out is not None and manifest.keystore is None:
            raise RestoreError("this backup holds no keystore")
        plan = plan_targets(manifest, databases)
        info = {d["name"]: d for d in manifest.databases}
        conn = mysql.connect(cnf)
        created: list[str] = []
        existing: list[str] = []
        loader = _Loader(cnf, plan, manifest, on_spawn)
        try:
            for dst in plan.values():
                if mysql.database_exists(conn, dst):
                    found = mysql.contents(conn, dst)
                    if found:
                        raise RestoreError(
                            f"target database {dst!r} is not empty ({len(found)} objects, "
                            f"e.g. {found[0]}); restore only goes into an empty database"
                        )
                    existing.append(dst)
            try:
                for src, dst in plan.items():
                    if dst not in existing:
                        charset, collation = info[src]["charset"], info[src]["collation"]
                        mysql.create_database(conn, dst, charset, collation)
                        created.append(dst)
                f.seek(0)
                bar = Progress("restore", size, progress)
                keystore = read_backup(
                    f, identities, trusted, sink=loader, expected=verified, keep_keystore=True,
                    progress=bar,
                ).keystore
                loader.finish()
                bar.finish()
            except BaseException as e:
                loader.kill()
                for db in created:
                    mysql.drop_database(conn, db)
                for db in existing:
                    mysql.empty_database(conn, db)
                if isinstance(e, (BackupInvalid, mysql.BackendError, OSError)):
                    raise RestoreError(f"restore failed and was rolled back: {e}") from e
                raise
            warnings = _count_check(conn, plan, info)
        finally:
            conn.close()
    ks_path = None
    if keystore_out is not None and keystore is not None:
        write_private(Path(keystore_out), keystore)  # 0600, atomically
        ks_path = Path(keystore_out)
    return RestoreResult(verified, plan, ks_path, warnings, time.monotonic() - started, size)


def _count_check(conn, plan: dict[str, str], info: dict[str, dict]) -> list[str]:  # type: ignore[no-untyped-def]
    """Row counts after the load against the manifest's (an estimate under concurrent writes)."""
    warnings = []
    for src, dst in plan.items():
        got = mysql.row_counts(conn, dst)
        for t in info[src]["tables"]:
            if t["type"] == "table" and got.get(t["name"]) != t.get("rows"):
                warnings.append(
                    f"{dst}.{t['name']}: {got.get(t['name'])} rows restored, manifest counted "
                    f"{t.get('rows')} (rows written during the backup?)"
                )
    return warnings
