"""Keystore: one file holding the wrapped master key (one slot per principal) and the metadata.

Concurrency model (docs/keystore-format.md, "Several proxies"): readers never lock, because
every write replaces the file atomically (write_private: temp, fsync, rename, fsync dir), so
a reader sees the old file or the new one. Writers serialize on an flock of `<file>.lock`,
re-read the file under the lock, and bump `generation`; metadata saves are compare-and-swap
on `metadata_version`. `refresh()` reads the fixed header only, so polling it per query is cheap.

All methods block (argon2 takes ~0.15 s at the default cost): call them from a worker thread
in an event loop. A Keystore object is safe to share between threads.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from keystore import crypto, escrow
from keystore.cache import UnlockCache
from keystore.crypto import MasterKey, Password, password_bytes
from keystore.errors import (
    AccessDenied,
    CorruptKeystore,
    EscrowError,
    KeystoreBusy,
    KeystoreError,
    KeystoreExists,
    MetadataConflict,
    PrincipalExists,
    UnknownPrincipal,
)
from keystore.files import (
    LockTimeout,
    exclusive_lock,
    private_dir,
    remove_stale_temps,
    write_private,
)
from keystore.format import (
    DEPLOYMENT_ID_BYTES,
    KdfParams,
    KeystoreFile,
    Slot,
    check_principal,
)
from keystore.snapshot import Snapshot, corrupt, read_if_changed

DEFAULT_KDF = KdfParams()


class Keystore:
    """A keystore file. `kdf` applies to slots this object creates; existing slots keep theirs."""

    def __init__(
        self, path: str | os.PathLike[str], *, kdf: KdfParams = DEFAULT_KDF,
        cache: UnlockCache | None = None, lock_timeout: float = 30.0, max_parallel_kdf: int = 2,
    ) -> None:
        # Resolved once: writes replace the real file, never a symlink pointing at it.
        self.path = Path(path).expanduser().resolve()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.kdf = kdf
        self.cache = cache
        self.lock_timeout = lock_timeout
        self._mutex = threading.RLock()  # guards _loaded only; never held during argon2
        self._loaded: Snapshot | None = None
        # Each cold unlock takes 64 MiB and a core for ~0.15 s: bound them, so a burst of
        # wrong passwords queues instead of exhausting memory. Cached unlocks skip this.
        self._kdf_slots = threading.BoundedSemaphore(max_parallel_kdf)

    def __repr__(self) -> str:
        return f"Keystore({str(self.path)!r})"

    # ---- reading (no lock: files are replaced atomically) ----

    def exists(self) -> bool:
        return self.path.exists()

    def refresh(self) -> bool:
        """Re-read the file if any process wrote it since; True if it changed.

        Costs one open and a read of the fixed header when nothing changed (no argon2, no AES).
        """
        with self._mutex:
            return self._refresh()

    @property
    def generation(self) -> int:
        return self._current().header.generation

    @property
    def metadata_version(self) -> int:
        return self._current().header.metadata_version

    @property
    def deployment_id(self) -> bytes:
        return self._current().header.deployment_id

    def list_principals(self) -> list[str]:
        return [slot.principal for slot in self._current().slots]

    def unlock(self, principal: str, password: Password) -> MasterKey:
        """The master key, or AccessDenied for a wrong password and an unknown principal alike.

        Never writes. An unknown principal costs the same argon2 as a known one.
        """
        pw = password_bytes(password)
        file = self._current()
        slot = file.find(principal)
        if slot is None:
            with self._kdf_slots:
                crypto.dummy_unwrap(file.slots[0].kdf, pw)
            raise AccessDenied
        binding = file.header.deployment_id + slot.encode()
        if self.cache is not None:
            cached = self.cache.lookup(principal, binding, pw)
            if cached is not None:
                return cached
        with self._kdf_slots:
            master = crypto.unwrap_slot(slot, pw, file.header.deployment_id)
        try:
            crypto.open_metadata(file, master)  # authenticates the whole file
        except AccessDenied:
            raise self._corrupt("a slot holds a key that does not open this keystore") from None
        except CorruptKeystore as e:
            raise self._corrupt(str(e)) from None
        if self.cache is not None:
            self.cache.store(principal, binding, pw, master)
        return master

    def load_metadata(self, master: MasterKey) -> tuple[int, dict[str, Any]]:
        """(metadata_version, metadata) as last saved by any process."""
        file = self._current()
        plaintext = self._open(file, master)
        return file.header.metadata_version, crypto.decode_metadata(plaintext)

    # ---- writing (flock on <file>.lock, re-read under it) ----

    def initialize(
        self, principal: str, password: Password, *, metadata: dict[str, Any] | None = None
    ) -> MasterKey:
        """Create the keystore with a fresh master key and one slot; KeystoreExists if present."""
        check_principal(principal)
        plaintext = crypto.encode_metadata({} if metadata is None else metadata)
        master = MasterKey.generate()
        deployment_id = os.urandom(DEPLOYMENT_ID_BYTES)
        with self._exclusive():
            if self.path.exists():
                raise KeystoreExists(f"{self.path} already holds a keystore")
            slot = crypto.make_slot(principal, password, master, deployment_id, self.kdf)
            self._commit(crypto.seal(
                master, deployment_id, generation=1, metadata_version=0, slots=(slot,),
                metadata=plaintext,
            ))
            self._remember(slot, password, master)
        return master

    def rotate(
        self, principal: str, old_password: Password, new_password: Password, *,
        commit_hook: Callable[[], None] | None = None,
    ) -> None:
        """Unwrap with the old password, re-wrap with the new one. Data keys do not change.

        AccessDenied (and no change) if the old password is wrong or the principal unknown.
        `commit_hook` runs under the writers' lock once the old password is verified and just
        before the file is replaced; if it raises, nothing is written. The proxy changes the
        backend password there ("both or neither"), and reverts it if rotate() then raises.
        """
        if not password_bytes(new_password):
            raise ValueError("empty password")
        with self._exclusive():
            file = self._current()
            slot = file.find(principal)
            if slot is None:
                crypto.dummy_unwrap(file.slots[0].kdf, old_password)
                raise AccessDenied
            master = crypto.unwrap_slot(slot, old_password, file.header.deployment_id)
            self._open(file, master)  # fail on a damaged file before the hook, not after
            new = crypto.make_slot(principal, new_password, master, file.header.deployment_id,
                                   self.kdf)
            if commit_hook is not None:
                commit_hook()
            self._rewrite(file, master, slots=_replace_slot(file.slots, new))
            self._remember(new, new_password, master)

    def add_user(self, master: MasterKey, principal: str, password: Password) -> None:
        """A new slot: only a holder of the master key can make one."""
        check_principal(principal)
        with self._exclusive():
            file = self._current()
            self._open(file, master)
            if file.find(principal) is not None:
                raise PrincipalExists(f"principal {principal!r} already has a slot")
            new = crypto.make_slot(principal, password, master, file.header.deployment_id,
                                   self.kdf)
            self._rewrite(file, master, slots=(*file.slots, new))

    def remove_user(self, master: MasterKey, principal: str) -> None:
        with self._exclusive():
            file = self._current()
            self._open(file, master)
            if file.find(principal) is None:
                raise UnknownPrincipal(f"principal {principal!r} has no slot")
            if len(file.slots) == 1:
                raise KeystoreError("refusing to remove the last principal: nobody could unlock")
            slots = tuple(s for s in file.slots if s.principal != principal)
            self._rewrite(file, master, slots=slots)
        if self.cache is not None:
            self.cache.invalidate(principal)

    def save_metadata(
        self, master: MasterKey, metadata: dict[str, Any], expected_version: int
    ) -> int:
        """Compare-and-swap: write if the stored version is still `expected_version`.

        Returns the new version; MetadataConflict if another writer got there first.
        """
        plaintext = crypto.encode_metadata(metadata)
        with self._exclusive():
            file = self._current()
            self._open(file, master)
            actual = file.header.metadata_version
            if actual != expected_version:
                raise MetadataConflict(expected_version, actual)
            self._rewrite(file, master, metadata=plaintext)
            return actual + 1

    # ---- escrow (seed 000) ----

    def escrow(self, master: MasterKey, recipient: str) -> bytes:
        """The master key encrypted to an age X25519 recipient, as an age file."""
        file = self._current()
        crypto.check_master(file, master)
        return escrow.seal(master, file.header.deployment_id, recipient)

    def recover(
        self, escrowed: bytes, identity_file: str | os.PathLike[str], principal: str,
        new_password: Password,
    ) -> MasterKey:
        """Open an escrow file with an age identity; create or replace `principal`'s slot."""
        check_principal(principal)
        if not password_bytes(new_password):
            raise ValueError("empty password")
        deployment_id, master = escrow.open_escrow(
            escrowed, escrow.load_identities(Path(identity_file))
        )
        with self._exclusive():
            file = self._current()
            if deployment_id != file.header.deployment_id:
                raise EscrowError("the escrow file was made for another keystore")
            try:
                crypto.check_master(file, master)
            except AccessDenied:
                raise EscrowError("the escrowed key does not open this keystore") from None
            new = crypto.make_slot(principal, new_password, master, deployment_id, self.kdf)
            old = file.find(principal)
            slots = _replace_slot(file.slots, new) if old else (*file.slots, new)
            self._rewrite(file, master, slots=slots)
            self._remember(new, new_password, master)
        return master

    # ---- internals ----

    def _corrupt(self, reason: str) -> CorruptKeystore:
        return corrupt(self.path, reason)

    def _current(self) -> KeystoreFile:
        with self._mutex:
            self._refresh()
            assert self._loaded is not None
            return self._loaded.file

    def _refresh(self) -> bool:
        new = read_if_changed(self.path, self._loaded)
        if new is None:
            return False
        self._loaded = new
        return True

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """The writers' flock. It also serializes this process's threads (each flock() call
        opens its own file description); _mutex stays free, so unlocks go on meanwhile."""
        private_dir(self.path.parent)
        try:
            with exclusive_lock(self.lock_path, self.lock_timeout):
                remove_stale_temps(self.path)  # left by writers killed mid-write
                yield
        except LockTimeout as e:
            raise KeystoreBusy(str(e)) from None

    def _open(self, file: KeystoreFile, master: MasterKey) -> bytes:
        try:
            return crypto.open_metadata(file, master)
        except CorruptKeystore as e:
            raise self._corrupt(str(e)) from None

    def _rewrite(
        self, file: KeystoreFile, master: MasterKey, *, slots: tuple[Slot, ...] | None = None,
        metadata: bytes | None = None,
    ) -> None:
        """Write a successor of `file`: verifies it first, so a tampered slot table is never
        re-authenticated under a fresh tag."""
        current = self._open(file, master)
        h = file.header
        self._commit(crypto.seal(
            master, h.deployment_id, generation=h.generation + 1,
            metadata_version=h.metadata_version + (metadata is not None),
            slots=file.slots if slots is None else slots,
            metadata=current if metadata is None else metadata,
        ))

    def _commit(self, file: KeystoreFile) -> None:
        data = file.encode()
        write_private(self.path, data)
        st = os.stat(self.path)
        with self._mutex:
            self._loaded = Snapshot(file, data, (st.st_dev, st.st_ino, st.st_size))

    def _remember(self, slot: Slot, password: Password, master: MasterKey) -> None:
        """Prime the cache with the slot just written (called under the writers' lock, so no
        other rotation can slip in between), so the next connection skips argon2."""
        if self.cache is not None:
            binding = self._current().header.deployment_id + slot.encode()
            self.cache.store(slot.principal, binding, password_bytes(password), master)


def _replace_slot(slots: tuple[Slot, ...], new: Slot) -> tuple[Slot, ...]:
    return tuple(new if s.principal == new.principal else s for s in slots)


__all__ = ["DEFAULT_KDF", "Keystore"]
