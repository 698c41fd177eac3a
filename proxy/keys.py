"""Authentication by key: the key a client presents must open its keystore slot.

Key delivery, first match wins: the HR42 `cryptdb-key` field, the connection attribute
`cryptdb_key`, the login password. With an old key too (HR42 `old-cryptdbkey` or attribute
`old_cryptdbkey`) the slot is unwrapped with the old key and re-wrapped with the new one.
The first key presented to a deployment without a keystore initializes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keystore import AccessDenied, Keystore, KeystoreError, KeystoreExists, MasterKey
from proxy.catalog import Catalog
from proxy.protocol import errors
from proxy.protocol.errors import MysqlError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PresentedKey:
    key: bytes
    old_key: bytes | None
    from_password: bool  # the slot follows the login password (ALTER USER re-wraps it)

    def __repr__(self) -> str:
        return f"PresentedKey(from_password={self.from_password})"


def choose_key(
    hr42_key: bytes | None,
    hr42_old: bytes | None,
    attrs: dict[str, str],
    password: bytes,
) -> PresentedKey:
    key = hr42_key or (attrs.get("cryptdb_key") or "").encode() or None
    old = hr42_old or (attrs.get("old_cryptdbkey") or "").encode() or None
    if key is None:
        return PresentedKey(password, None, True)
    return PresentedKey(key, old, False)


def access_denied(username: str) -> MysqlError:
    # One message for a wrong key and an unknown user: nothing to tell them apart by.
    return MysqlError(*errors.ER_ACCESS_DENIED, f"Access denied for user '{username}'")


class KeyGate:
    def __init__(self, keystore: Keystore, audit_log: Path | None = None) -> None:
        self.keystore = keystore
        self.audit_log = audit_log
        self._catalog: Catalog | None = None

    async def catalog(self, master: MasterKey) -> Catalog:
        """The process's view of the encrypted schema (one deployment, one master key)."""
        if self._catalog is None or self._catalog.master != master:
            try:
                self._catalog = await asyncio.to_thread(
                    Catalog, self.keystore, master, self.audit_log
                )
            except (KeystoreError, ValueError) as e:
                log.error("keystore %s metadata: %s", self.keystore.path, type(e).__name__)
                raise MysqlError(
                    *errors.ER_UNKNOWN_ERROR, "the proxy's keystore cannot be opened; see its log"
                ) from None
        return self._catalog

    async def open(self, username: str, presented: PresentedKey) -> MasterKey:
        try:
            return await asyncio.to_thread(self._open, username, presented)
        except AccessDenied:
            log.info("keystore: access denied for %r", username)
            raise access_denied(username) from None
        except (KeystoreError, ValueError) as e:
            # A damaged or unreadable keystore: refuse the login, keep serving others.
            log.error("keystore %s: %s", self.keystore.path, type(e).__name__)
            raise MysqlError(
                *errors.ER_UNKNOWN_ERROR, "the proxy's keystore cannot be opened; see its log"
            ) from None

    def _open(self, username: str, presented: PresentedKey) -> MasterKey:
        ks = self.keystore
        if not ks.exists():
            try:
                log.info("keystore: initializing a new deployment for %r", username)
                return ks.initialize(username, presented.key)
            except KeystoreExists:
                pass  # another proxy won the race
        if presented.old_key is not None:
            ks.rotate(username, presented.old_key, presented.key)
            log.info("keystore: key rotated for %r", username)
        return ks.unlock(username, presented.key)

    async def rotate(
        self, username: str, old: bytes, new: bytes, commit_hook: Callable[[], None]
    ) -> None:
        try:
            await asyncio.to_thread(
                self.keystore.rotate, username, old, new, commit_hook=commit_hook
            )
        except AccessDenied:
            raise access_denied(username) from None
