"""SQL-level tests of the Paillier UDFs: cryptdb_hom_sum (aggregate) and cryptdb_hom_add.

Besides the shared vectors, a plain-Python Paillier (gmpy2, a fresh 2048-bit key per run)
encrypts 10,000 signed values; MariaDB multiplies them through the UDF and the product must
decrypt to the plaintext sum.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gmpy2
import pymysql
import pytest

from proxy.devbackend import DevBackend
from tests.udf_support import (
    VECTORS,
    ensure_udfs,
    load_vectors_from_file,
    scalar,
    scratch_db,
)

ROWS = 10_000
GROUPS = 7


@pytest.fixture(scope="module", autouse=True)
def _udfs(backend: DevBackend) -> None:
    ensure_udfs(backend)


@dataclass
class Paillier:
    """Textbook Paillier with g = n + 1; signed values are taken mod n."""

    n: int
    lam: int
    rn_pool: list[int]

    @classmethod
    def generate(cls, bits: int = 2048, pool: int = 48) -> Paillier:
        def prime() -> int:
            return int(gmpy2.next_prime(secrets.randbits(bits // 2) | (3 << (bits // 2 - 2))))

        p, q = prime(), prime()
        n = p * q
        n2 = n * n
        # r^n is the expensive part: a small pool, combined pairwise per ciphertext, keeps
        # 10,000 encryptions fast (test-only shortcut; distinct ciphertexts all the same).
        rn = [int(gmpy2.powmod(secrets.randbelow(n - 2) + 2, n, n2)) for _ in range(pool)]
        return cls(n, (p - 1) * (q - 1) // int(gmpy2.gcd(p - 1, q - 1)), rn)

    @property
    def n2(self) -> int:
        return self.n * self.n

    @property
    def width(self) -> int:
        return (self.n2.bit_length() + 7) // 8

    def encrypt(self, m: int) -> bytes:
        n, n2 = self.n, self.n2
        r = self.rn_pool[secrets.randbelow(len(self.rn_pool))]
        r = r * self.rn_pool[secrets.randbelow(len(self.rn_pool))] % n2
        c = (1 + (m % n) * n) * r % n2
        return c.to_bytes(self.width, "big")

    def decrypt(self, c: bytes) -> int:
        n = self.n
        u = int(gmpy2.powmod(int.from_bytes(c, "big"), self.lam, self.n2))
        m = (u - 1) // n * int(gmpy2.invert(self.lam, n)) % n
        return m - n if m > n // 2 else m

    def n2_bytes(self) -> bytes:
        return self.n2.to_bytes(self.width, "big")


@pytest.fixture(scope="module")
def key() -> Paillier:
    return Paillier.generate()


@dataclass
class HomTable:
    conn: pymysql.Connection
    values: list[int | None]  # row id -> plaintext (None: SQL NULL)
    groups: list[int]


@pytest.fixture(scope="module")
def hom_table(backend: DevBackend, key: Paillier) -> Iterator[HomTable]:
    """10,000 encrypted signed values (INT64 extremes included) plus NULL rows, in 7 groups."""
    rng = secrets.SystemRandom()
    values: list[int | None] = [rng.randint(-(2**63), 2**63 - 1) for _ in range(ROWS)]
    values[:4] = [-(2**63), 2**63 - 1, 0, -1]
    values += [None] * 25
    groups = [i % GROUPS for i in range(len(values))]
    with scratch_db(backend) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, g INT, c_add VARBINARY(1024))")
            cur.executemany(
                "INSERT INTO t VALUES (%s, %s, %s)",
                [
                    (i, g, None if v is None else key.encrypt(v))
                    for i, (v, g) in enumerate(zip(values, groups, strict=True))
                ],
            )
        yield HomTable(conn, values, groups)


def test_sum_10k_rows_with_negatives(hom_table: HomTable, key: Paillier) -> None:
    start = time.perf_counter()
    total = scalar(hom_table.conn, "SELECT cryptdb_hom_sum(c_add, %s) FROM t", (key.n2_bytes(),))
    elapsed = time.perf_counter() - start
    print(f"cryptdb_hom_sum over {ROWS} rows (2048-bit n): {elapsed * 1000:.1f} ms")
    assert len(total) == key.width
    assert key.decrypt(total) == sum(v for v in hom_table.values if v is not None)
    assert elapsed < 5  # ~0.05 s measured; generous for a loaded machine


def test_group_by(hom_table: HomTable, key: Paillier) -> None:
    with hom_table.conn.cursor() as cur:
        cur.execute(
            "SELECT g, cryptdb_hom_sum(c_add, %s), COUNT(c_add) FROM t GROUP BY g ORDER BY g",
            (key.n2_bytes(),),
        )
        rows = cur.fetchall()
    assert [r[0] for r in rows] == list(range(GROUPS))
    for g, ct, count in rows:
        mine = [v for v, gg in zip(hom_table.values, hom_table.groups, strict=True) if gg == g]
        assert count == sum(v is not None for v in mine)
        assert key.decrypt(ct) == sum(v for v in mine if v is not None)


def test_sum_of_no_rows_or_only_nulls_is_null(hom_table: HomTable, key: Paillier) -> None:
    q = "SELECT cryptdb_hom_sum(c_add, %s) FROM t WHERE "
    assert scalar(hom_table.conn, q + "id < 0", (key.n2_bytes(),)) is None
    assert scalar(hom_table.conn, q + "c_add IS NULL", (key.n2_bytes(),)) is None


def test_window_frames(hom_table: HomTable, key: Paillier) -> None:
    """MariaDB runs aggregate UDFs with a _remove function as window functions."""
    with hom_table.conn.cursor() as cur:
        cur.execute(
            "SELECT id, cryptdb_hom_sum(c_add, %s) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING"
            " AND CURRENT ROW) FROM t WHERE id < 40 ORDER BY id",
            (key.n2_bytes(),),
        )
        rows = cur.fetchall()
    for i, ct in rows:
        window = hom_table.values[max(0, i - 2) : i + 1]
        assert key.decrypt(ct) == sum(window)


def test_in_place_increment(direct: pymysql.Connection, key: Paillier) -> None:
    values = [5, -7, 0, 2**62, None]
    n2 = key.n2_bytes()
    with direct.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, c_add VARBINARY(1024))")
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s)",
            [(i, None if v is None else key.encrypt(v)) for i, v in enumerate(values)],
        )
        for k in (10, -3):
            cur.execute("UPDATE t SET c_add = cryptdb_hom_add(c_add, %s, %s)", (key.encrypt(k), n2))
        cur.execute("SELECT c_add FROM t ORDER BY id")
        got = [None if c is None else key.decrypt(c) for (c,) in cur.fetchall()]
    assert got == [None if v is None else v + 7 for v in values]


def test_add_and_sum_reject_malformed(direct: pymysql.Connection, key: Paillier) -> None:
    n2 = key.n2_bytes()
    a, b = key.encrypt(1), key.encrypt(2)
    add = "SELECT cryptdb_hom_add(%s, %s, %s)"
    assert key.decrypt(scalar(direct, add, (a, b, n2))) == 3
    bad_cts = [a[1:], b"\0" + a, b"\0" * len(a), n2, b"\xff" * len(a), b""]
    for bad in bad_cts:
        assert scalar(direct, add, (bad, b, n2)) is None
        assert scalar(direct, add, (a, bad, n2)) is None
    for bad_n2 in (n2[1:], b"\0" + n2, n2[:-1] + b"\x02", b"", b"\x01", None):
        assert scalar(direct, add, (a, b, bad_n2)) is None
    with direct.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, c VARBINARY(1100), m VARBINARY(1100))")
        # One malformed ciphertext poisons the sum (NULL), it is not skipped.
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s)", [(0, a, n2), (1, a[1:], n2)])
        assert scalar(direct, "SELECT cryptdb_hom_sum(c, m) FROM t") is None
        # Two moduli in one group: NULL.
        other = Paillier(key.n + 2, 1, [1]).n2_bytes()
        cur.execute("UPDATE t SET c = %s, m = %s WHERE id = 1", (b, other))
        assert scalar(direct, "SELECT cryptdb_hom_sum(c, m) FROM t") is None
        # Per-group moduli are fine.
        cur.execute(
            "SELECT id, cryptdb_hom_sum(c, m) IS NULL FROM t GROUP BY id ORDER BY id",
        )
        assert cur.fetchall() == ((0, 0), (1, 0))


@dataclass
class HomVectors:
    n2: bytes
    sums: list[tuple[list[bytes], bytes, int]]  # ciphertexts, product, plaintext sum
    adds: list[tuple[bytes, bytes, bytes, int]]  # a, b, a*b, plaintext a+b
    private_key: bytes  # onion.hom's serialized test key


def load_hom(d: dict[str, Any]) -> HomVectors:
    n2 = bytes.fromhex(d["n2"])
    assert int.from_bytes(n2, "big") == int(d["n"], 16) ** 2 and len(n2) == d["width"]
    return HomVectors(
        n2,
        [
            (
                [bytes.fromhex(c) for c in s["ciphertexts"]],
                bytes.fromhex(s["product"]),
                int(s["plaintext_sum"]),
            )
            for s in d["sums"]
        ],
        [
            (
                bytes.fromhex(a["a"]),
                bytes.fromhex(a["b"]),
                bytes.fromhex(a["result"]),
                int(a["result_plain"]),
            )
            for a in d["adds"]
        ],
        bytes.fromhex(d["private_key"]),
    )


def test_vectors(direct: pymysql.Connection) -> None:
    """Byte for byte against onion/'s vectors; the UDF's output also decrypts (with onion/'s
    own key and decryption) to the plaintext sums: Python encrypts, MariaDB aggregates,
    Python decrypts."""
    v = load_vectors_from_file(VECTORS / "hom.json", load_hom)
    assert v.sums and v.adds
    from onion.hom import PaillierPrivateKey

    key = PaillierPrivateKey.from_bytes(v.private_key)
    with direct.cursor() as cur:
        cur.execute("CREATE TABLE s (g INT, c VARBINARY(2048))")
        cur.executemany(
            "INSERT INTO s VALUES (%s, %s)",
            [(g, c) for g, (cts, _, _) in enumerate(v.sums) for c in cts],
        )
        cur.execute("SELECT g, cryptdb_hom_sum(c, %s) FROM s GROUP BY g ORDER BY g", (v.n2,))
        got = dict(cur.fetchall())
    assert len(got) == len(v.sums)
    for g, (_, product, plain) in enumerate(v.sums):
        assert got[g] == product, g
        assert key.decrypt(got[g]) == plain, g
    for a, b, result, plain in v.adds:
        out = scalar(direct, "SELECT cryptdb_hom_add(%s, %s, %s)", (a, b, v.n2))
        assert out == result
        assert key.decrypt(out) == plain
