"""onion.keys: labels by stable ids, HKDF derivation, join-group keys, the in-memory cache."""

from __future__ import annotations

import itertools

import pytest

from onion import keys

MASTER = bytes(range(32))


def test_layer_label_format() -> None:
    assert keys.layer_label(1, 7, 3, "eq", "det") == b"cryptdb-onion/v1/layer/1/7/3/eq/det"
    assert keys.join_label(5) == b"cryptdb-onion/v1/join/5/det"


def test_key_sizes() -> None:
    for onion, layers in keys.LAYERS_OF.items():
        for layer in layers:
            key = keys.derive_layer_key(MASTER, 1, 2, 3, onion, layer)
            assert len(key) == keys.KEY_SIZES[layer]
    assert len(keys.derive_join_key(MASTER, 1)) == 64


def test_every_label_component_separates_keys() -> None:
    seen = set()
    for ids in itertools.product((0, 1), (0, 1), (0, 1)):
        for onion, layers in keys.LAYERS_OF.items():
            for layer in layers:
                seen.add(keys.derive_layer_key(MASTER, *ids, onion, layer))
    assert len(seen) == 8 * 5
    # Ids are not concatenated ambiguously: (1, 12) and (11, 2) differ.
    assert keys.derive_layer_key(MASTER, 1, 12, 3, "eq", "det") != keys.derive_layer_key(
        MASTER, 11, 2, 3, "eq", "det"
    )
    assert keys.derive_join_key(MASTER, 1) not in seen
    assert keys.derive_layer_key(bytes(32), 1, 2, 3, "eq", "det") != keys.derive_layer_key(
        MASTER, 1, 2, 3, "eq", "det"
    )


@pytest.mark.parametrize(
    "args",
    [(-1, 0, 0, "eq", "det"), (0, 2**64, 0, "eq", "det"), (0, 0, "c", "eq", "det"),
     (0, 0, True, "eq", "det"), (0, 0, 0, "eq", "ope"), (0, 0, 0, "add", "hom"),
     (0, 0, 0, "EQ", "det")],
)
def test_bad_labels_refused(args: tuple) -> None:
    with pytest.raises(ValueError):
        keys.layer_label(*args)


def test_master_key_length_checked() -> None:
    with pytest.raises(ValueError):
        keys.derive_layer_key(MASTER[:31], 0, 0, 0, "eq", "rnd")
    with pytest.raises(ValueError):
        keys.KeyCache(MASTER + b"\0")


def test_KeyCache() -> None:
    cache = keys.KeyCache(MASTER, limit=4)
    k = cache.layer_key(1, 2, 3, "ord", "ope")
    assert k == keys.derive_layer_key(MASTER, 1, 2, 3, "ord", "ope")
    assert cache.layer_key(1, 2, 3, "ord", "ope") is k  # served from memory
    assert cache.det_key(1, 2, 3, None) == keys.derive_layer_key(MASTER, 1, 2, 3, "eq", "det")
    assert cache.det_key(1, 2, 3, 9) == keys.derive_join_key(MASTER, 9)
    for c in range(10):  # past the limit the cache starts over, still correct
        assert cache.layer_key(1, 2, c, "eq", "rnd") == keys.derive_layer_key(
            MASTER, 1, 2, c, "eq", "rnd")
    cache.clear()
    assert cache.join_key(9) == keys.derive_join_key(MASTER, 9)
