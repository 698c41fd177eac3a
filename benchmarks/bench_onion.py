"""Per-operation cost of every onion layer, and one typical row into all its onions.

Run: `.venv/bin/python -m benchmarks onion` (or `make bench`). Pure CPU, no database. Each
figure is the best of 3 timed batches (this machine is shared), in microseconds per operation
unless it says /s. "OPE uncached" encrypts distinct values with the cache off: the honest rate;
"cached" re-encrypts values already seen (the cache holds 4096 values per column).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from collections.abc import Callable
from decimal import Decimal

from onion import ColumnCrypto, ColumnType, KeyCache, Kind, new_iv
from onion.hom import PaillierPrivateKey
from onion.keys import derive_layer_key
from onion.leaky import ope as ope_mod
from onion.leaky._ope_ref import OpeRef
from onion.leaky.det import KIND_INTEGER, Det
from onion.rnd import Rnd
from onion.search import Search, match

RUNS = 3


def per_op(fn: Callable[[int], object], n: int) -> float:
    """Best-of-RUNS microseconds per call of fn(i) for i in range(n)."""
    best = float("inf")
    for _ in range(RUNS):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - t)
    return best / n * 1e6


def line(label: str, us: float) -> None:
    print(f"  {label:<52} {us:>10.2f} us   {1e6 / us:>12,.0f} /s", flush=True)


def bench_keys() -> None:
    master = os.urandom(32)
    cache = KeyCache(master)
    cache.layer_key(1, 2, 3, "eq", "det")
    print("keys")
    line("HKDF layer key (uncached)", per_op(
        lambda i: derive_layer_key(master, 1, 2, i, "eq", "det"), 2000))
    line("KeyCache hit", per_op(lambda i: cache.layer_key(1, 2, 3, "eq", "det"), 20000))


def bench_rnd_det() -> None:
    rnd, det = Rnd(os.urandom(32)), Det(os.urandom(64))
    iv = os.urandom(16)
    b16, b100, b1k = os.urandom(16), os.urandom(100), os.urandom(1024)
    print("RND (AES-256-CTR)")
    line("encrypt/decrypt 16 B", per_op(lambda i: rnd.encrypt(iv, b16), 20000))
    line("encrypt/decrypt 100 B", per_op(lambda i: rnd.encrypt(iv, b100), 20000))
    line("encrypt/decrypt 1 KiB", per_op(lambda i: rnd.encrypt(iv, b1k), 5000))
    print("DET")
    ct = det.encrypt_int(KIND_INTEGER, 123456789)
    line("integer encrypt (one AES block)", per_op(
        lambda i: det.encrypt_int(KIND_INTEGER, i), 20000))
    line("integer decrypt", per_op(lambda i: det.decrypt_int(KIND_INTEGER, ct), 20000))
    s16 = det.encrypt_bytes(b16)
    line("bytes encrypt 16 B (AES-SIV)", per_op(lambda i: det.encrypt_bytes(b16), 20000))
    line("bytes decrypt 16 B", per_op(lambda i: det.decrypt_bytes(s16), 20000))
    line("bytes encrypt 100 B", per_op(lambda i: det.encrypt_bytes(b100), 20000))


def bench_ope() -> None:
    key = os.urandom(64)
    native = ope_mod.NATIVE
    print(f"OPE (64-bit domain -> 128-bit range; compiled core: {'yes' if native else 'NO'})")
    if not native:
        print("  (build it with `make -C onion`; the figures below are the pure-Python path)")
    rng = random.Random(1)
    vals = [rng.getrandbits(64) for _ in range(3 * 4000)]
    o = ope_mod.Ope(key, cache_size=0)
    it = iter(vals)
    line("encrypt, uncached (distinct values)", per_op(lambda i: o.encrypt_int(next(it)), 4000))
    cts = [o.encrypt_int(v) for v in vals[:2000]]
    line("decrypt", per_op(lambda i: o.decrypt_int(cts[i]), 2000))
    cached = ope_mod.Ope(key, cache_size=4096)
    hot = vals[:1000]
    for v in hot:
        cached.encrypt_int(v)
    line("encrypt, cached (value seen before)", per_op(
        lambda i: cached.encrypt_int(hot[i % 1000]), 20000))
    ref = OpeRef(key, 64, 128)
    line("encrypt, pure-Python reference", per_op(lambda i: ref.encrypt(vals[i]), 200))
    wide = ColumnCrypto(ColumnType(kind=Kind.DECIMAL, precision=65, scale=30), ope=key,
                        ope_cache=0)
    line("DECIMAL(65,30) encrypt (218-bit domain, reference)", per_op(
        lambda i: wide.ope(Decimal(i) + Decimal("0.5")), 50))
    print(f"  fallbacks to the reference: {o.fallbacks}")


def bench_hom() -> None:
    t = time.perf_counter()
    key = PaillierPrivateKey.generate()
    gen = time.perf_counter() - t
    t = time.perf_counter()
    key.precompute()
    tables = time.perf_counter() - t
    pub = key.public_key
    print("HOM (Paillier n = 2048, DJN fixed-base randomness, CRT)")
    print(f"  key generation {gen * 1e3:.0f} ms, fixed-base tables {tables * 1e3:.0f} ms")
    line("encrypt (fresh randomness each, sustained)", per_op(lambda i: key.encrypt(i), 1000))
    ct = key.encrypt(-5)
    line("decrypt", per_op(lambda i: key.decrypt(ct), 100))
    line("add (multiply mod n^2, as the UDFs do)", per_op(lambda i: pub.add(ct, ct), 5000))
    line("textbook encrypt, public key only (r^n)", per_op(lambda i: pub.encrypt_public(i), 20))


def bench_search() -> None:
    s = Search(os.urandom(32))
    text = "the quick brown fox jumps over the lazy dog again and again"
    stored = s.encrypt(text)
    tok = s.token("fox")
    print("SEARCH")
    line("encrypt a 10-word text", per_op(lambda i: s.encrypt(text), 5000))
    line("token", per_op(lambda i: s.token("fox"), 20000))
    line("match against 10 entries (Python; the UDF does this)", per_op(
        lambda i: match(stored, tok), 5000))


def bench_row() -> None:
    keys = KeyCache(os.urandom(32))
    hom = PaillierPrivateKey.generate()
    hom.precompute()
    cols = [
        (ColumnCrypto.from_keys(keys, ColumnType(kind=Kind.INT), 1, 1, 1), lambda i: i),
        (ColumnCrypto.from_keys(keys, ColumnType(kind=Kind.STRING), 1, 1, 2),
         lambda i: f"customer {i:07d}"),
        (ColumnCrypto.from_keys(keys, ColumnType(kind=Kind.DECIMAL, precision=10, scale=2),
                                1, 1, 3, onions=("eq", "ord", "add"), hom=hom),
         lambda i: Decimal(i % 100000) / 100),
        (ColumnCrypto.from_keys(keys, ColumnType(kind=Kind.DATETIME), 1, 1, 4),
         lambda i: dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i)),
        (ColumnCrypto.from_keys(keys, ColumnType(kind=Kind.STRING), 1, 1, 5,
                                onions=("eq", "search")),
         lambda i: f"order {i} shipped to warehouse north with express delivery"),
    ]

    def row(i: int) -> None:
        iv = new_iv()
        for col, value in cols:
            col.encrypt(value(i), iv)

    print("one typical row: BIGINT(eq,ord) VARCHAR(eq,ord) DECIMAL(10,2)(eq,ord,add) "
          "DATETIME(eq,ord) TEXT(eq,search)")
    offset = [0]

    def fresh(i: int) -> None:
        row(offset[0] + i)

    us = per_op(fresh, 300)
    offset[0] += 10_000
    line("row into all onions (distinct values: OPE uncached)", us)
    without_hom = per_op(lambda i: [c.encrypt(v(i), new_iv()) for c, v in cols
                                    if c._hom is None], 1000)
    line("same row without the Add onion", without_hom)


def main() -> None:
    bench_keys()
    bench_rnd_det()
    bench_ope()
    bench_hom()
    bench_search()
    bench_row()


if __name__ == "__main__":
    main()
