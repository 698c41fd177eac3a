"""Layer keys: HKDF-SHA256 from one 256-bit master key and a label of stable ids.

Labels name (database id, table id, column id, onion, layer) by the integer ids the proxy's
metadata assigns once, never by SQL names, so RENAME TABLE/COLUMN keeps every key. A join
group's DET key comes from the group's id instead of the column's. Layer keys live only in
memory (`KeyCache`); nothing here writes them anywhere.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_SIZE = 32
LABEL_PREFIX = "cryptdb-onion/v1"

ONIONS = ("eq", "ord", "search")
# Bytes of key material per layer: DET and OPE take two AES-256 keys each (AES-SIV / the
# OPE's ECBC-MAC coin generator), RND and SEARCH one. HOM keys are Paillier key pairs
# generated at random (onion.hom), not derived.
KEY_SIZES = {"rnd": 32, "det": 64, "ope": 64, "search": 32}
LAYERS_OF = {"eq": ("rnd", "det"), "ord": ("rnd", "ope"), "search": ("search",)}


def _check_id(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise ValueError(f"{name} must be an integer id in [0, 2**64)")


def layer_label(database_id: int, table_id: int, column_id: int, onion: str, layer: str) -> bytes:
    """The HKDF info string of one column layer, e.g. b"cryptdb-onion/v1/layer/1/7/3/eq/det"."""
    _check_id("database_id", database_id)
    _check_id("table_id", table_id)
    _check_id("column_id", column_id)
    if onion not in LAYERS_OF or layer not in LAYERS_OF[onion]:
        raise ValueError(f"no layer {layer!r} in onion {onion!r}")
    return f"{LABEL_PREFIX}/layer/{database_id}/{table_id}/{column_id}/{onion}/{layer}".encode()


def join_label(group_id: int) -> bytes:
    """The HKDF info string of a join group's DET key: b"cryptdb-onion/v1/join/<group>/det"."""
    _check_id("group_id", group_id)
    return f"{LABEL_PREFIX}/join/{group_id}/det".encode()


def _hkdf(master: bytes, info: bytes, length: int) -> bytes:
    if len(master) != MASTER_KEY_SIZE:
        raise ValueError("master key must be 32 bytes")
    # No salt: the master key is already uniformly random, so HKDF-Extract with the default
    # all-zero salt is a PRF step; the label carries all domain separation.
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def derive_layer_key(
    master: bytes, database_id: int, table_id: int, column_id: int, onion: str, layer: str
) -> bytes:
    """The key of one column's layer (32 bytes for rnd/search, 64 for det/ope)."""
    label = layer_label(database_id, table_id, column_id, onion, layer)
    return _hkdf(master, label, KEY_SIZES[layer])


def derive_join_key(master: bytes, group_id: int) -> bytes:
    """The 64-byte DET key every column of join group `group_id` uses for its DET layer."""
    return _hkdf(master, join_label(group_id), KEY_SIZES["det"])


class KeyCache:
    """Derived keys memoised in memory (HKDF costs ~6 us); `clear()` drops them all."""

    __slots__ = ("_master", "_keys", "_limit")

    def __init__(self, master: bytes, limit: int = 65536) -> None:
        if len(master) != MASTER_KEY_SIZE:
            raise ValueError("master key must be 32 bytes")
        self._master = bytes(master)
        self._keys: dict[tuple[object, ...], bytes] = {}
        self._limit = limit

    def layer_key(
        self, database_id: int, table_id: int, column_id: int, onion: str, layer: str
    ) -> bytes:
        ref = (database_id, table_id, column_id, onion, layer)
        key = self._keys.get(ref)
        if key is None:
            key = derive_layer_key(self._master, *ref)  # type: ignore[arg-type]
            self._remember(ref, key)
        return key

    def join_key(self, group_id: int) -> bytes:
        ref = ("join", group_id)
        key = self._keys.get(ref)
        if key is None:
            key = derive_join_key(self._master, group_id)
            self._remember(ref, key)
        return key

    def det_key(
        self, database_id: int, table_id: int, column_id: int, join_group: int | None
    ) -> bytes:
        """The DET key a column uses: its join group's when it has one, else its own."""
        if join_group is not None:
            return self.join_key(join_group)
        return self.layer_key(database_id, table_id, column_id, "eq", "det")

    def _remember(self, ref: tuple[object, ...], key: bytes) -> None:
        if len(self._keys) >= self._limit:
            self._keys.clear()  # crude bound: re-deriving is cheap, unbounded growth is not
        self._keys[ref] = key

    def clear(self) -> None:
        self._keys.clear()
