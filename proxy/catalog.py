"""The deployment's encrypted schema as the sessions of this process share it.

The schema lives in the keystore's metadata (encrypted under the master key) so every proxy
on the same keystore plans with the same tables, ids and onion layers. Before each statement
a session calls `current()`: one header read when nothing changed, a reload when another
process (or session) saved a change. Changes are saved with compare-and-swap; a conflict
reloads and re-applies the change on top of the newer state.

DDL holds a lock across processes (a flock next to the keystore) from planning to saving,
so two proxies never hand out the same ids. Peels need no such lock: the backend's layers
table makes them exactly-once (proxy.rewrite.plan.Peel), and recording a layer another
proxy already recorded is a no-op here.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from keystore import Keystore, MasterKey, MetadataConflict
from keystore.files import fsync_dir, strict_umask
from onion import KeyCache
from proxy.rewrite import Crypto, Rewriter
from proxy.schema import Schema

log = logging.getLogger(__name__)
SAVE_ATTEMPTS = 5
PEEL_GATE_WAIT = 5.0  # seconds a peel waits for this process's in-flight writes


class PeelBusy(Exception):
    """In-flight writes did not finish in time for a peel to start."""


class PeelGate:
    """Writes that encrypt values for an onion's current layer are planned and executed
    inside `write()`; a peel runs inside `peel()`, alone. Otherwise a write planned while an
    onion is at RND could land after the peel committed, leaving an RND value in a column
    recorded as DET. This orders the writes and peels of one proxy process; across proxies
    the same race remains open (docs/rewrite.md). Peels are rare: waiting peels go first."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._writers = 0
        self._peeling = False
        self._waiting = 0

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._peeling and not self._waiting)
            self._writers += 1
        try:
            yield
        finally:
            async with self._cond:
                self._writers -= 1
                self._cond.notify_all()

    @asynccontextmanager
    async def peel(self, timeout: float = PEEL_GATE_WAIT) -> AsyncIterator[None]:
        async with self._cond:
            self._waiting += 1
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: not self._peeling and not self._writers),
                    timeout,
                )
            except TimeoutError:
                raise PeelBusy() from None
            finally:
                self._waiting -= 1
                self._cond.notify_all()
            self._peeling = True
        try:
            yield
        finally:
            async with self._cond:
                self._peeling = False
                self._cond.notify_all()


class Catalog:
    def __init__(self, keystore: Keystore, master: MasterKey, audit_log: Path | None) -> None:
        self.keystore = keystore
        self.master = master
        self.audit_log = audit_log
        self.rewriter = Rewriter()
        self._version = -1
        self._ident: tuple[int, ...] | None = None
        self._meta: dict[str, Any] = {}
        self.schema = Schema()
        self.crypto = Crypto(KeyCache(master.raw), self.schema)
        self._local_ddl = asyncio.Lock()
        self.peel_gate = PeelGate()
        # Onions whose row in <db>._cryptdb_layers is known to exist (write guards lock it).
        self.layer_rows: set[tuple[int, int, int, str]] = set()
        self._reload()

    # ---- reading ------------------------------------------------------------------------

    def current(self) -> Schema:
        """The latest saved schema: one stat() when the file did not change.

        Every write replaces the file (rename), so a changed identity means a new version.
        A schema a moment stale is safe anyway: peels are exactly-once on the backend, and
        readers decode both sides of a peel."""
        try:
            st = os.stat(self.keystore.path)
            ident = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            ident = None
        if ident is None or ident != self._ident:
            self.keystore.refresh()  # also re-checks the file's permissions
            if self.keystore.metadata_version != self._version:
                self._reload()
            self._ident = ident
        return self.schema

    def _reload(self) -> None:
        version, meta = self.keystore.load_metadata(self.master)
        self._version, self._meta = version, meta
        self.schema = Schema.from_json(meta.get("schema"))
        self.crypto.use_schema(self.schema)

    # ---- writing ------------------------------------------------------------------------

    def apply(self, ops: Sequence[dict[str, Any]]) -> None:
        """Apply ops to the schema and save them; on a conflict, reload and apply again."""
        if not ops:
            return
        for attempt in range(SAVE_ATTEMPTS):
            if attempt:
                self._reload()
            schema = Schema.from_json(self.schema.to_json())
            for op in ops:
                if not _already_applied(schema, op):
                    schema.apply(op)
            meta = dict(self._meta)
            meta["schema"] = schema.to_json()
            try:
                self._version = self.keystore.save_metadata(self.master, meta, self._version)
            except MetadataConflict:
                continue
            self._meta, self.schema = meta, schema
            self.crypto.use_schema(schema)
            return
        raise MetadataConflict(self._version, self.keystore.metadata_version)

    @asynccontextmanager
    async def ddl_lock(self) -> AsyncIterator[None]:
        """Serialize schema changes across sessions and proxies (plan, run, save)."""
        async with self._local_ddl:
            path = Path(str(self.keystore.path) + ".ddl.lock")
            with strict_umask():
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    # ---- audit --------------------------------------------------------------------------

    def audit(self, user: str, peer: str, peel: Any, outcome: str) -> None:
        """One line per onion adjustment: who, when, table.column, from and to layer."""
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "user": user,
            "peer": peer,
            "database": peel.database,
            "table": peel.table,
            "column": peel.column,
            "onion": peel.onion,
            "from": peel.from_layer.upper(),
            "to": peel.to_layer.upper(),
            "outcome": outcome,
        }
        log.info("onion adjustment by %r: %s (%s)", user, peel.describe(), outcome)
        if self.audit_log is None:
            return
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        existed = self.audit_log.exists()
        with strict_umask():
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = os.open(self.audit_log, flags, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if not existed:
            fsync_dir(self.audit_log.parent)


def _already_applied(schema: Schema, op: dict[str, Any]) -> bool:
    """A layer another proxy recorded first (the backend's layers table agrees)."""
    if op.get("op") != "set_layer":
        return False
    table = schema.table(op["database"], op["table"])
    col = table.column(op["column"]) if table is not None else None
    return col is not None and col.onions.get(op["onion"]) == op["to"]
