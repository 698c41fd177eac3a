"""UnlockCache: fast reconnects, wrong passwords never served, invalidation on every change."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from keystore import AccessDenied, KdfParams, Keystore, MasterKey, UnlockCache
from keystore.crypto import MasterKey as _MK

FAST = KdfParams(memory_kib=32, time_cost=1, parallelism=1)
SLOW = KdfParams(memory_kib=16384, time_cost=1, parallelism=1)  # ~20 ms: a miss is visible


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "s" / "ks"


def _time(fn: object, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_cached_unlock_is_fast(path: Path) -> None:
    cache = UnlockCache()
    ks = Keystore(path, kdf=SLOW, cache=cache)
    master = ks.initialize("alice", "pw")
    cache.clear()
    cold = _time(lambda: (cache.clear(), ks.unlock("alice", "pw")), 3)
    assert ks.unlock("alice", "pw") == master
    warm = _time(lambda: ks.unlock("alice", "pw"), 50)
    assert warm < 0.005, warm
    assert warm < cold / 5, (warm, cold)


def test_wrong_password_never_hits_cache(path: Path) -> None:
    cache = UnlockCache()
    ks = Keystore(path, kdf=FAST, cache=cache)
    ks.initialize("alice", "pw")
    ks.unlock("alice", "pw")
    assert "alice" in cache
    for guess in ("pw ", "PW", "", "p", "pw\x00"):
        with pytest.raises(AccessDenied):
            ks.unlock("alice", guess)
    with pytest.raises(AccessDenied):
        ks.unlock("bob", "pw")  # another principal's cached password opens nothing
    assert "alice" in cache  # failed guesses do not evict the real entry


def test_cache_is_per_principal(path: Path) -> None:
    cache = UnlockCache()
    ks = Keystore(path, kdf=FAST, cache=cache)
    master = ks.initialize("alice", "same")
    ks.add_user(master, "bob", "other")
    assert ks.unlock("alice", "same") == ks.unlock("bob", "other") == master
    with pytest.raises(AccessDenied):
        ks.unlock("bob", "same")


def test_rotation_invalidates_in_process(path: Path) -> None:
    ks = Keystore(path, kdf=FAST, cache=UnlockCache())
    master = ks.initialize("alice", "old")
    ks.unlock("alice", "old")
    ks.rotate("alice", "old", "new")
    with pytest.raises(AccessDenied):
        ks.unlock("alice", "old")
    assert ks.unlock("alice", "new") == master


def test_rotation_by_another_process_invalidates(path: Path) -> None:
    proxy_a = Keystore(path, kdf=FAST, cache=UnlockCache())
    master = proxy_a.initialize("alice", "old")
    proxy_a.add_user(master, "bob", "bob")
    assert proxy_a.unlock("alice", "old") == master
    assert proxy_a.unlock("bob", "bob") == master
    proxy_b = Keystore(path, kdf=FAST, cache=UnlockCache())  # e.g. `cryptdb keystore passwd`
    proxy_b.rotate("alice", "old", "new")
    proxy_b.remove_user(master, "bob")
    with pytest.raises(AccessDenied):
        proxy_a.unlock("alice", "old")
    with pytest.raises(AccessDenied):
        proxy_a.unlock("bob", "bob")
    assert proxy_a.unlock("alice", "new") == master


def test_remove_and_readd_invalidates(path: Path) -> None:
    ks = Keystore(path, kdf=FAST, cache=UnlockCache())
    master = ks.initialize("alice", "a")
    ks.add_user(master, "bob", "first")
    ks.unlock("bob", "first")
    ks.remove_user(master, "bob")
    ks.add_user(master, "bob", "second")
    with pytest.raises(AccessDenied):
        ks.unlock("bob", "first")
    assert ks.unlock("bob", "second") == master


def test_verifier_reveals_nothing() -> None:
    a, b = UnlockCache(), UnlockCache()
    binding = b"slot"
    # A random per-process key: same password, different caches, unrelated verifiers.
    assert a._verifier("alice", binding, b"pw") != b._verifier("alice", binding, b"pw")
    assert a._verifier("alice", binding, b"pw") != a._verifier("bob", binding, b"pw")
    a.store("alice", binding, b"secret-pw", _MK(bytes(range(32))))
    shown = repr(a._entries)
    assert bytes(range(32)).hex() not in shown and "secret-pw" not in shown


def test_lookup_direct() -> None:
    cache = UnlockCache()
    master = MasterKey.generate()
    cache.store("alice", b"s1", b"pw", master)
    assert cache.lookup("alice", b"s1", b"pw") == master
    assert cache.lookup("alice", b"s1", b"px") is None
    assert cache.lookup("alice", b"s2", b"pw") is None  # slot changed: entry dropped
    assert "alice" not in cache
