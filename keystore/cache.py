"""UnlockCache: reconnects skip argon2 by proving knowledge of the password cheaply.

The cache holds, per principal, the unlocked master key plus a verifier
HMAC-SHA256(process_key, principal, slot, password) under a random key that exists only in
this process's memory. Why this is acceptable (docs/keystore-format.md, "Unlock cache"):
anyone who can read the process's memory already holds the master key itself, which is all
the password protects; to anyone else the verifier is a MAC under an unknown key and reveals
nothing, not even whether two principals share a password. Wrong passwords never match, fall
through to the full argon2 unlock, and so stay as slow to guess as without a cache.

The slot's bytes are bound into the entry: a rotation or removal made by another process
changes the slot, and the stale entry is dropped on its next use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import threading
from dataclasses import dataclass, field

from keystore.crypto import MasterKey


@dataclass
class _Entry:
    binding: bytes
    verifier: bytes = field(repr=False)
    master: MasterKey = field(repr=False)


class UnlockCache:
    """Unlocked master keys for the life of the process, behind per-principal verifiers."""

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def _verifier(self, principal: str, binding: bytes, password: bytes) -> bytes:
        name = principal.encode("utf-8")
        msg = struct.pack(">I", len(name)) + name + struct.pack(">I", len(binding)) + binding
        return hmac.new(self._key, msg + password, hashlib.sha256).digest()

    def lookup(self, principal: str, binding: bytes, password: bytes) -> MasterKey | None:
        """The cached master key if `password` is the one that unlocked this very slot."""
        with self._lock:
            entry = self._entries.get(principal)
        if entry is None:
            return None
        if not hmac.compare_digest(entry.binding, binding):
            self.invalidate(principal, binding=entry.binding)  # slot changed elsewhere
            return None
        if hmac.compare_digest(entry.verifier, self._verifier(principal, binding, password)):
            return entry.master
        return None

    def store(self, principal: str, binding: bytes, password: bytes, master: MasterKey) -> None:
        entry = _Entry(binding, self._verifier(principal, binding, password), master)
        with self._lock:
            self._entries[principal] = entry

    def invalidate(self, principal: str, *, binding: bytes | None = None) -> None:
        """Forget `principal` (only if its entry is still for `binding`, when given)."""
        with self._lock:
            entry = self._entries.get(principal)
            if entry is not None and (binding is None or entry.binding == binding):
                del self._entries[principal]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, principal: object) -> bool:
        with self._lock:
            return principal in self._entries
