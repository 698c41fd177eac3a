"""Garbage into every UDF: NULL or an error, a result equal to a Python model of the rules,
and a server that keeps answering.

Rows of random and near-valid arguments (truncated, extended, zeroed, NULL, huge) go through
each UDF in one statement; a Python reference computes what each row must give (NULL for any
malformed input, the real result otherwise), so the fuzzing is differential, not just "no
crash". Wrong argument types and counts must fail at init with a message.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import subprocess
from collections.abc import Callable

import gmpy2
import pymysql
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from proxy import udfs
from proxy.devbackend import DevBackend
from tests.udf_support import ensure_udfs, scalar

rng = secrets.SystemRandom()
ROWS = 300
HOM_MAX_N2 = 2048
ER_CANT_INITIALIZE_UDF = 1123


@pytest.fixture(scope="module", autouse=True)
def _udfs(backend: DevBackend) -> None:
    ensure_udfs(backend)


def alive(backend: DevBackend, conn: pymysql.Connection) -> None:
    assert backend.process is not None and backend.process.poll() is None
    assert scalar(conn, "SELECT 1") == 1


def garbage() -> bytes | None:
    kind = rng.random()
    if kind < 0.1:
        return None
    if kind < 0.15:
        return b""
    if kind < 0.17:
        return secrets.token_bytes(rng.choice([1 << 20, (1 << 20) + 1, 3 << 20]))
    return secrets.token_bytes(rng.choice([1, 7, 8, 15, 16, 17, 24, 25, 31, 32, 33, 256, 513]))


def mutate(v: bytes | None) -> bytes | None:
    """Leaves a valid value alone half the time, else breaks it in one typical way."""
    if v is None or rng.random() < 0.5:
        return v
    return rng.choice(
        [
            lambda: None,
            lambda: b"",
            lambda: v[:-1],
            lambda: v + b"\0",
            lambda: b"\0" + v[1:],
            lambda: bytes([v[0] ^ 0x80]) + v[1:],
            lambda: b"\0" * len(v),
            lambda: b"\xff" * len(v),
            lambda: v[: rng.randrange(len(v) + 1)],
            garbage,
        ]
    )()


def check_column(
    conn: pymysql.Connection,
    sql: str,
    rows: list[tuple[bytes | None, ...]],
    expect: Callable[..., object],
) -> None:
    """Puts `rows` into table f(id, a, b, c) and runs `sql` (SELECT id, f(...) FROM f ...)."""
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS f")
        cur.execute("CREATE TABLE f (id INT PRIMARY KEY, a LONGBLOB, b LONGBLOB, c LONGBLOB)")
        padded = [tuple(r) + (None,) * (3 - len(r)) for r in rows]
        for i, r in enumerate(padded):  # one by one: a few rows are several MiB
            cur.execute("INSERT INTO f VALUES (%s, %s, %s, %s)", (i, *r))
        cur.execute(sql)
        got = dict(cur.fetchall())
    for i, r in enumerate(rows):
        assert got[i] == expect(*r), (i, [None if x is None else len(x) for x in r])


# ---- reference models ---------------------------------------------------------------------


def ref_rnd(ct: bytes | None, key: bytes | None, iv: bytes | None) -> bytes | None:
    if ct is None or key is None or iv is None or len(key) != 32 or len(iv) != 16:
        return None
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(ct) + enc.finalize()


def n2_ok(n2: bytes | None) -> bool:
    return n2 is not None and 2 <= len(n2) <= HOM_MAX_N2 and n2[0] != 0 and n2[-1] & 1 == 1


def ct_ok(c: bytes | None, n2: bytes) -> bool:
    return c is not None and len(c) == len(n2) and 0 < int.from_bytes(c, "big") < int.from_bytes(n2)


def ref_hom_add(a: bytes | None, b: bytes | None, n2: bytes | None) -> bytes | None:
    if not n2_ok(n2) or not ct_ok(a, n2) or not ct_ok(b, n2):
        return None
    m = int.from_bytes(n2, "big")
    return (int.from_bytes(a, "big") * int.from_bytes(b, "big") % m).to_bytes(len(n2), "big")


def ref_hom_sum(rows: list[tuple[bytes | None, bytes | None]]) -> bytes | None:
    live = [(c, n2) for c, n2 in rows if c is not None]
    if not live or any(not n2_ok(n2) or n2 != live[0][1] or not ct_ok(c, n2) for c, n2 in live):
        return None
    n2 = live[0][1]
    m, acc = int.from_bytes(n2, "big"), 1
    for c, _ in live:
        acc = acc * int.from_bytes(c, "big") % m
    return acc.to_bytes(len(n2), "big")


def ref_search(stored: bytes | None, token: bytes | None) -> int | None:
    if stored is None or token is None or len(token) != 32:
        return None
    if len(stored) < 1 or stored[0] != 1 or (len(stored) - 1) % 24:
        return None
    entries = [stored[i : i + 24] for i in range(1, len(stored), 24)]
    return int(any(hmac.new(token, e[:8], hashlib.sha256).digest()[:16] == e[8:] for e in entries))


# ---- generators of near-valid rows ----------------------------------------------------------


def rnd_row() -> tuple[bytes | None, ...]:
    ct = garbage() if rng.random() < 0.3 else secrets.token_bytes(rng.randrange(0, 100))
    return ct, mutate(secrets.token_bytes(32)), mutate(secrets.token_bytes(16))


def n2_sample() -> bytes:
    """A modulus of a random width: p^2 for a prime p up to 256 bits (like Paillier's n^2,
    so random ciphertexts are units and the window's modular inverses exist); random odd
    numbers for the large widths, to stay fast."""
    width = rng.choice([2, 3, 16, 64, 256, 512, HOM_MAX_N2, HOM_MAX_N2 + 1])
    if width <= 64:
        bits = width * 4
        p = int(gmpy2.next_prime(rng.getrandbits(bits - 2) | (1 << (bits - 1))))
        return (p * p).to_bytes(width, "big")
    n2 = bytearray(secrets.token_bytes(width))
    n2[0] |= 0x80
    n2[-1] |= 1
    return bytes(n2)


def ct_sample(n2: bytes) -> bytes:
    return (rng.randrange(1, int.from_bytes(n2, "big"))).to_bytes(len(n2), "big")


def hom_add_row() -> tuple[bytes | None, ...]:
    n2 = n2_sample()
    return mutate(ct_sample(n2)), mutate(ct_sample(n2)), mutate(n2)


def search_row() -> tuple[bytes | None, ...]:
    token = secrets.token_bytes(32)
    stored = bytearray(b"\x01")
    for _ in range(rng.randrange(0, 6)):
        salt = secrets.token_bytes(8)
        key = token if rng.random() < 0.3 else secrets.token_bytes(32)
        stored += salt + hmac.new(key, salt, hashlib.sha256).digest()[:16]
    return mutate(bytes(stored)), mutate(token)


# ---- tests --------------------------------------------------------------------------------


def test_rnd_garbage(backend: DevBackend, direct: pymysql.Connection) -> None:
    rows = [rnd_row() for _ in range(ROWS)]
    check_column(direct, "SELECT id, cryptdb_rnd_decrypt(a, b, c) FROM f", rows, ref_rnd)
    alive(backend, direct)
    # Arguments in every position, including the huge and the empty.
    rows = [(garbage(), garbage(), garbage()) for _ in range(ROWS // 3)]
    check_column(direct, "SELECT id, cryptdb_rnd_decrypt(a, b, c) FROM f", rows, ref_rnd)
    alive(backend, direct)


def test_hom_add_garbage(backend: DevBackend, direct: pymysql.Connection) -> None:
    rows = [hom_add_row() for _ in range(ROWS)]
    rows += [(garbage(), garbage(), garbage()) for _ in range(ROWS // 3)]
    check_column(direct, "SELECT id, cryptdb_hom_add(a, b, c) FROM f", rows, ref_hom_add)
    alive(backend, direct)


def test_hom_sum_garbage(backend: DevBackend, direct: pymysql.Connection) -> None:
    # Groups of rows sharing a modulus, some broken by a mutated ciphertext or modulus.
    rows: list[tuple[bytes | None, bytes | None, int]] = []
    groups: list[list[tuple[bytes | None, bytes | None]]] = []
    for _ in range(60):
        n2 = n2_sample()
        members = [
            (mutate(ct_sample(n2)) if rng.random() < 0.2 else ct_sample(n2), n2)
            if rng.random() < 0.9
            else (garbage(), mutate(n2))
            for _ in range(rng.randrange(1, 8))
        ]
        groups.append(members)
        rows += [(c, m, len(groups) - 1) for c, m in members]
    with direct.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS f")
        cur.execute("CREATE TABLE f (seq INT PRIMARY KEY, id INT, a LONGBLOB, b LONGBLOB)")
        for seq, (c, m, g) in enumerate(rows):
            cur.execute("INSERT INTO f VALUES (%s, %s, %s, %s)", (seq, g, c, m))
        cur.execute("SELECT id, cryptdb_hom_sum(a, b) FROM f GROUP BY id")
        got = dict(cur.fetchall())
        assert got == {g: ref_hom_sum(members) for g, members in enumerate(groups)}
        # The same rows through sliding frames: the _remove path (modular inverses, frames
        # moving past malformed rows). A frame must equal a fresh aggregate of its rows, or
        # be NULL once the partition has met two well-formed moduli or a valid ciphertext
        # that is not a unit (real Paillier ciphertexts always are; random moduli here not):
        # the UDF then answers NULL until the partition ends, never a wrong product.
        cur.execute(
            "SELECT seq, cryptdb_hom_sum(a, b) OVER (PARTITION BY id ORDER BY seq"
            " ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM f ORDER BY seq"
        )
        window = dict(cur.fetchall())
    exact = 0
    for g in range(len(groups)):
        part = [(seq, c, m) for seq, (c, m, gg) in enumerate(rows) if gg == g]
        for k, (seq, _, _) in enumerate(part):
            frame = [(c, m) for _, c, m in part[max(0, k - 3) : k + 1]]
            seen = [(c, m) for _, c, m in part[: k + 1] if c is not None]
            moduli = {m for _, m in seen if n2_ok(m)}
            stuck = any(
                n2_ok(m) and ct_ok(c, m) and math.gcd(int.from_bytes(c), int.from_bytes(m)) != 1
                for c, m in seen
            )
            if window[seq] is None and (len(moduli) > 1 or stuck):
                continue
            assert window[seq] == ref_hom_sum(frame), (g, k)
            exact += window[seq] is not None
    assert exact > len(rows) // 4  # most frames are well-formed: the test has teeth
    alive(backend, direct)


def test_search_garbage(backend: DevBackend, direct: pymysql.Connection) -> None:
    rows = [search_row() for _ in range(ROWS)]
    rows += [(garbage(), garbage()) for _ in range(ROWS // 3)]
    check_column(direct, "SELECT id, cryptdb_search_match(a, b) FROM f", rows, ref_search)
    alive(backend, direct)


def test_huge_values_in_sql(backend: DevBackend, direct: pymysql.Connection) -> None:
    key, iv, tok = "REPEAT('k', 32)", "REPEAT('i', 16)", "REPEAT('t', 32)"
    q = f"SELECT LENGTH(cryptdb_rnd_decrypt(REPEAT('a', 8 << 20), {key}, {iv}))"
    assert scalar(direct, q) == 8 << 20
    # 100,000 search entries in one value: one HMAC each, no overflow.
    q = f"SELECT cryptdb_search_match(CONCAT(0x01, REPEAT('x', 24 * 100000)), {tok})"
    assert scalar(direct, q) == 0
    # A modulus beyond the supported 16,384 bits: NULL, not a 4-MiB bignum per row.
    big = "CONCAT(0x80, REPEAT('x', 4 << 20), 0x01)"
    assert scalar(direct, f"SELECT cryptdb_hom_add({big}, {big}, {big})") is None
    assert scalar(direct, f"SELECT cryptdb_hom_sum({big}, {big})") is None
    alive(backend, direct)


CALLS = {
    "cryptdb_rnd_decrypt": ["'x'", "REPEAT('k', 32)", "REPEAT('i', 16)"],
    "cryptdb_hom_add": ["'x'", "'y'", "'z'"],
    "cryptdb_hom_sum": ["'x'", "'y'"],
    "cryptdb_search_match": ["'x'", "REPEAT('t', 32)"],
}
WRONG_TYPES = ["1", "-1", "1.5", "1e300", "CAST(1 AS DECIMAL(10,2))", "18446744073709551615"]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_wrong_types_and_counts_fail_at_init(
    backend: DevBackend, direct: pymysql.Connection, name: str
) -> None:
    args = CALLS[name]
    statements = []
    for pos in range(len(args)):
        for wrong in WRONG_TYPES:
            bad = args.copy()
            bad[pos] = wrong
            statements.append(f"SELECT {name}({', '.join(bad)})")
    for count in range(6):
        if count != len(args):
            statements.append(f"SELECT {name}({', '.join((args * 3)[:count])})")
    with direct.cursor() as cur:
        for sql in statements:
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute(sql)
            assert info.value.args[0] == ER_CANT_INITIALIZE_UDF, sql
            assert name in info.value.args[1], info.value.args[1]
    # Values that are strings to SQL pass init and give NULL when malformed.
    for odd in ("NULL", "''", "NOW()", "DATE'2024-01-01'", "0x00", "_utf8mb4'é'"):
        call = f"SELECT {name}({', '.join([odd] * len(args))})"
        assert scalar(direct, call) in (None, 0), call
    alive(backend, direct)


def test_every_udf_is_covered() -> None:
    assert {u.name for u in udfs.UDFS} == set(CALLS)


def test_c_harness_under_sanitizers() -> None:
    """udf/check/harness.c drives every entry point with exactly-sized heap arguments under
    ASan+UBSan: an overread by one byte or a leak fails here, not in a server."""
    done = subprocess.run(
        ["make", "-s", "-C", str(udfs.UDF_SRC), "check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout
