"""onion.leaky.ope: order, decryption, the exact sampler, and the compiled core == reference."""

from __future__ import annotations

import collections
import math
import os
import random
import shutil
import subprocess
from fractions import Fraction
from math import comb
from pathlib import Path

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onion.errors import InvalidCiphertext
from onion.leaky import _ope_ref as ref
from onion.leaky import ope

REPO = Path(__file__).resolve().parents[1]
KEY = bytes(range(100, 164))


@pytest.fixture(scope="module")
def native() -> None:
    """Builds the compiled core (a no-op when up to date) and loads it."""
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    done = subprocess.run(["make", "-s", "-C", str(REPO / "onion")], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert ope._reload_native()


def test_native_matches_reference(native: None) -> None:
    rng = random.Random(7)
    for d, r in [(64, 128), (64, 128), (64, 72), (32, 96), (16, 80), (8, 16), (1, 1), (3, 128)]:
        key = rng.randbytes(64)
        fast = ope.Ope(key, d, r, cache_size=0, native=True)
        slow = ref.OpeRef(key, d, r)
        for m in {0, (1 << d) - 1, 1 << (d - 1)} | {rng.getrandbits(d) for _ in range(40)}:
            c = fast.encrypt_int(m)
            assert c == slow.encrypt(m), (d, r, m)
            assert fast.decrypt_int(c) == m
        assert fast.fallbacks == 0


def test_exact_path_gives_the_same_ciphertexts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every acceptance test settled by MPFR instead of doubles: same coins, same outputs."""
    expected = [ref.OpeRef(KEY, 64, 128).encrypt(m) for m in (0, 12345, 2**64 - 1)]
    monkeypatch.setattr(ref, "ETA", 1e300)
    assert [ref.OpeRef(KEY, 64, 128).encrypt(m) for m in (0, 12345, 2**64 - 1)] == expected


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
@settings(max_examples=150, deadline=None)
def test_order_and_round_trip_64(a: int, b: int) -> None:
    o = ope.Ope(KEY, cache_size=0)
    ca, cb = o.encrypt(a), o.encrypt(b)
    assert len(ca) == len(cb) == 16
    assert (ca < cb) == (a < b) and (ca == cb) == (a == b)  # bytes order = memcmp = BINARY
    assert o.decrypt(ca) == a and o.decrypt(cb) == b


def test_small_domain_is_injective_and_sorted() -> None:
    o = ref.OpeRef(KEY, 8, 12)  # 256 points into 4096: the clamps are exercised too
    cts = [o.encrypt(m) for m in range(256)]
    assert cts == sorted(set(cts))
    assert [o.decrypt(c) for c in cts] == list(range(256))
    tight = ref.OpeRef(KEY, 6, 6)  # D == R: the identity is the only OPF
    assert [tight.encrypt(m) for m in range(64)] == list(range(64))


def test_invalid_ciphertexts(native: None) -> None:
    for o in (ope.Ope(KEY, cache_size=0), ope.Ope(KEY, cache_size=0, native=False)):
        good = o.encrypt(1000)
        rejected = 0
        for _ in range(20):
            c = os.urandom(16)
            try:
                o.decrypt(c)
            except InvalidCiphertext:
                rejected += 1
        assert rejected == 20  # a random 128-bit string is a ciphertext with prob ~2**-64
        for bad in (good[:-1] + bytes([good[-1] ^ 1]), good[:15], good + b"\0"):
            with pytest.raises(InvalidCiphertext):
                o.decrypt(bad)
    with pytest.raises(InvalidCiphertext):
        ope.Ope(KEY, 8, 12, cache_size=0).decrypt_int(1 << 12)
    with pytest.raises(ValueError):
        ope.Ope(KEY, 8, 12).encrypt_int(256)


def test_cache_is_transparent_and_bounded() -> None:
    o = ope.Ope(KEY, cache_size=3)
    plain = ope.Ope(KEY, cache_size=0)
    for m in [5, 6, 7, 5, 8, 9, 5]:
        assert o.encrypt_int(m) == plain.encrypt_int(m)
    assert len(o._cache) == 3


class _Words:
    """Coins with given words (to test the samplers' word-by-word rules)."""

    def __init__(self, words: list[int]) -> None:
        self.words_ = list(words)
        self.used = 0

    def word(self) -> int:
        self.used += 1
        return self.words_.pop(0)

    def words(self, n: int) -> int:
        acc = 0
        for _ in range(n):
            acc = (acc << 64) | self.word()
        return acc


def test_pareto_ceil_reads_until_determined() -> None:
    rng = random.Random(3)
    limit = 2**70
    for _ in range(300):
        s = rng.randrange(2, 2**33)
        words = [rng.getrandbits(64) >> rng.choice((0, 0, 40, 63)) for _ in range(8)]
        coins = _Words(words)
        j = ref._pareto_ceil(coins, s, limit)  # type: ignore[arg-type]
        w = coins.used
        prefix = 0
        for x in words[:w]:
            prefix = (prefix << 64) | x
        lo, hi = Fraction(prefix, 2 ** (64 * w)), Fraction(prefix + 1, 2 ** (64 * w))
        eps = Fraction(1, 2 ** (64 * w + 64))
        if j is None:  # known to be past the limit for every U in [lo, hi)
            assert math.ceil(s / (hi - eps)) > limit
            continue
        # Every U in [lo, hi) gives the same ceil(s / U): check both ends (hi from below).
        assert j == math.ceil(s / (hi - eps))
        assert lo and j == math.ceil(s / lo)


def test_envelope_bounds_the_binomial() -> None:
    """C(M, m0+k) / C(M, m0) <= e(k), exactly, around the flat top's edges and far out."""
    for m in (1025, 1026, 4099, 10000):
        s, m0 = math.isqrt(m) + 1, m // 2
        base = comb(m, m0)
        for k in list(range(-3 * s, 3 * s + 1)) + [m - m0, -m0]:
            x = m0 + k
            ratio = Fraction(comb(m, x), base)
            j = abs(k)
            e = Fraction(1) if j <= s else Fraction(s * s, j * (j - 1))
            assert ratio <= e, (m, k)


def test_log_r_double_is_accurate() -> None:
    rng = random.Random(5)
    with gmpy2.context(gmpy2.get_context(), precision=400):
        for _ in range(200):
            m = rng.choice([rng.randrange(1025, 10**6), rng.randrange(2**40, 2**64 + 1)])
            s, m0 = math.isqrt(m) + 1, m // 2
            k = rng.choice([rng.randrange(-s, s + 1), rng.randrange(s + 1, 20 * s)])
            x = m0 + k
            if min(x, m - x) < ref.TAIL_MIN:
                continue

            def lg(v: int) -> gmpy2.mpfr:
                return gmpy2.lgamma(gmpy2.mpfr(v + 1))[0]

            exact = lg(m0) + lg(m - m0) - lg(x) - lg(m - x)
            if abs(k) > s:
                exact -= 2 * gmpy2.log(s) - gmpy2.log(abs(k)) - gmpy2.log(abs(k) - 1)
            got = ref._log_r_double(m, m0, x, k, s)
            assert abs(got - float(exact)) < 1e-12 * max(1.0, abs(float(exact)))
            assert float(exact) <= 1e-12  # R <= 1


def test_binomial_half_distribution() -> None:
    prf = ref._Prf(KEY, 64, 128)
    rng = random.Random(11)

    def coins() -> ref._Coins:
        # Random 128-bit chain states, as real nodes have (small integers would give
        # overlapping coin streams: state ^ C(j) collides for i ^ j == i' ^ j').
        return ref._Coins(prf, rng.getrandbits(128))

    m, n = 1100, 3000
    counts = collections.Counter(ref.binomial_half(m, coins()) for _ in range(n))
    lo, hi = m // 2 - 35, m // 2 + 35
    chi2 = sum((counts.get(x, 0) - comb(m, x) / 2**m * n) ** 2 / (comb(m, x) / 2**m * n)
               for x in range(lo, hi + 1))
    assert chi2 < 130  # 71 cells: the 99.99th percentile is about 125
    big = [ref.binomial_half(2**64, coins()) for _ in range(400)]
    z = [(x - 2**63) / 2**31 for x in big]
    mean = sum(z) / len(z)
    var = sum((v - mean) ** 2 for v in z) / len(z)
    assert abs(mean) < 0.25 and 0.75 < var < 1.3
    small = [ref.binomial_half(5, coins()) for _ in range(2000)]
    assert abs(sum(small) / 2000 - 2.5) < 0.1
