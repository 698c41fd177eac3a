"""SQL-level tests of the RND and SEARCH UDFs and of installing them.

Two independent checks: the shared vector files written by the Python onion code
(tests/vectors/onion/*.json, byte for byte), and values computed here with pyca's AES-CTR and
HMAC, so neither the C nor the Python side can drift on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pymysql
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from proxy import udfs
from proxy.devbackend import DevBackend
from tests.udf_support import VECTORS, ensure_udfs, load_vectors_from_file, scalar


@pytest.fixture(scope="module", autouse=True)
def _udfs(backend: DevBackend) -> None:
    ensure_udfs(backend)


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def need(name: str) -> Path:
    path = VECTORS / name
    assert path.exists(), f"{path} missing: regenerate with python -m tests.vectors.onion.generate"
    return path


# ---- RND ----------------------------------------------------------------------------------


def test_rnd_vectors(direct: pymysql.Connection) -> None:
    vectors = load_vectors_from_file(
        need("rnd.json"),
        lambda d: [
            {k: bytes.fromhex(v[k]) for k in ("key", "iv", "plaintext", "ciphertext")}
            for v in d["vectors"]
        ],
    )
    assert vectors
    with direct.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, k BINARY(32), iv BINARY(16), c LONGBLOB)")
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s, %s, %s)",
            [(i, v["key"], v["iv"], v["ciphertext"]) for i, v in enumerate(vectors)],
        )
        cur.execute("SELECT id, cryptdb_rnd_decrypt(c, k, iv) FROM t ORDER BY id")
        got = [row[1] for row in cur.fetchall()]
    assert got == [v["plaintext"] for v in vectors]


RND_LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 4097, (1 << 20) + 3]


def test_rnd_matches_pyca_and_peels_in_place(direct: pymysql.Connection) -> None:
    key = secrets.token_bytes(32)
    rows = []
    for i, n in enumerate(RND_LENGTHS):
        # All-ones IV: the 128-bit counter wraps after the first block (both sides agree).
        iv = b"\xff" * 16 if i == 3 else secrets.token_bytes(16)
        plain = os.urandom(n)
        rows.append((i, iv, aes_ctr(key, iv, plain), plain))
    with direct.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, c_iv BINARY(16), c_eq LONGBLOB)")
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s)", [r[:3] for r in rows])
        cur.execute("SELECT id, cryptdb_rnd_decrypt(c_eq, %s, c_iv) FROM t ORDER BY id", (key,))
        assert [r[1] for r in cur.fetchall()] == [r[3] for r in rows]
        # The statement the proxy sends to lower the Eq onion.
        cur.execute("UPDATE t SET c_eq = cryptdb_rnd_decrypt(c_eq, %s, c_iv)", (key,))
        cur.execute("SELECT c_eq FROM t ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [r[3] for r in rows]


def test_rnd_null_and_bad_lengths(direct: pymysql.Connection) -> None:
    key, iv = secrets.token_bytes(32), secrets.token_bytes(16)
    q = "SELECT cryptdb_rnd_decrypt(%s, %s, %s)"
    assert scalar(direct, q, (None, key, iv)) is None
    assert scalar(direct, q, (b"x", None, iv)) is None
    assert scalar(direct, q, (b"x", key, None)) is None
    assert scalar(direct, q, (b"x", key[:31], iv)) is None
    assert scalar(direct, q, (b"x", key + b"\0", iv)) is None
    assert scalar(direct, q, (b"x", key, iv[:15])) is None
    assert scalar(direct, q, (b"", key, iv)) == b""
    # Literal spellings the proxy may use: X'..' and 0x.. are strings to the UDF.
    lit = f"SELECT cryptdb_rnd_decrypt(X'{b'abc'.hex()}', 0x{key.hex()}, X'{iv.hex()}')"
    assert scalar(direct, lit) == aes_ctr(key, iv, b"abc")


# ---- SEARCH -------------------------------------------------------------------------------


def test_search_vectors(direct: pymysql.Connection) -> None:
    def expected(m: object) -> int | None:
        return None if m is None else int(bool(m))

    vectors = load_vectors_from_file(
        need("search.json"),
        lambda d: [
            (bytes.fromhex(v["stored"]), bytes.fromhex(v["token"]), expected(v["match"]))
            for v in d["vectors"]
        ],
    )
    assert vectors
    with direct.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, s LONGBLOB, tok VARBINARY(64))")
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s, %s)", [(i, s, t) for i, (s, t, _) in enumerate(vectors)]
        )
        cur.execute("SELECT id, cryptdb_search_match(s, tok) FROM t ORDER BY id")
        got = [row[1] for row in cur.fetchall()]
    assert got == [m for _, _, m in vectors]


def search_stored(tokens: list[bytes]) -> bytes:
    """The stored SEARCH format, built independently with the stdlib's HMAC."""
    out = bytearray(b"\x01")
    for tok in tokens:
        salt = secrets.token_bytes(8)
        out += salt + hmac.new(tok, salt, hashlib.sha256).digest()[:16]
    return bytes(out)


def test_search_matches_exactly_the_containing_rows(direct: pymysql.Connection) -> None:
    words = [f"w{i}" for i in range(12)]
    token = {w: secrets.token_bytes(32) for w in words}
    rng = secrets.SystemRandom()
    docs = [rng.sample(words, rng.randint(0, 6)) for _ in range(300)]
    docs[0] = []  # a value with no words: 0x01 alone
    with direct.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, c_search BLOB)")
        rows = [(i, search_stored([token[w] for w in d])) for i, d in enumerate(docs)]
        rows.append((len(docs), None))
        cur.executemany("INSERT INTO t VALUES (%s, %s)", rows)
        for w in words:
            cur.execute(
                "SELECT id FROM t WHERE cryptdb_search_match(c_search, %s) = 1 ORDER BY id",
                (token[w],),
            )
            assert [r[0] for r in cur.fetchall()] == [i for i, d in enumerate(docs) if w in d]
        unknown = secrets.token_bytes(32)
        cur.execute(
            "SELECT COUNT(*) FROM t WHERE cryptdb_search_match(c_search, %s) = 0", (unknown,)
        )
        assert cur.fetchone()[0] == len(docs)
        cur.execute(
            "SELECT cryptdb_search_match(c_search, %s) FROM t WHERE c_search IS NULL", (unknown,)
        )
        assert cur.fetchone()[0] is None


def test_search_malformed_is_null(direct: pymysql.Connection) -> None:
    tok = secrets.token_bytes(32)
    good = search_stored([tok])
    q = "SELECT cryptdb_search_match(%s, %s)"
    assert scalar(direct, q, (good, tok)) == 1
    assert scalar(direct, q, (good, tok[:31])) is None
    assert scalar(direct, q, (good, None)) is None
    for bad in (b"", b"\x02" + good[1:], good[:-1], good + b"\0", b"\x01" + b"\0" * 23):
        assert scalar(direct, q, (bad, tok)) is None, bad.hex()
    # One flipped tag bit is a miss, not an error.
    flipped = bytearray(good)
    flipped[-1] ^= 1
    assert scalar(direct, q, (bytes(flipped), tok)) == 0


# ---- installing ---------------------------------------------------------------------------


def test_install_is_idempotent_and_repairs(backend: DevBackend) -> None:
    with backend.admin() as conn:
        assert udfs.install_udfs(conn) == []
        with conn.cursor() as cur:
            # A stale definition (wrong return type) gets replaced.
            cur.execute("DROP FUNCTION cryptdb_search_match")
            cur.execute(
                f"CREATE FUNCTION cryptdb_search_match RETURNS STRING SONAME '{udfs.SONAME}'"
            )
            cur.execute("DROP FUNCTION cryptdb_hom_add")
        assert sorted(udfs.install_udfs(conn)) == ["cryptdb_hom_add", "cryptdb_search_match"]
        assert udfs.install_udfs(conn) == []
        with conn.cursor() as cur:
            cur.execute("SELECT name, ret, dl, type FROM mysql.func WHERE name LIKE 'cryptdb%'")
            rows = {(n, r, d, t) for n, r, d, t in cur.fetchall()}
        assert rows == {u.mysql_func_row for u in udfs.UDFS}


def test_install_cli_against_dev_backend(
    backend: DevBackend, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The dev backend's @@plugin_dir is udf/build itself: nothing to copy.
    assert udfs.install_cli(backend.service_cnf, None) == 0
    assert "up to date" in capsys.readouterr().out
    # An explicit plugin dir (a mount of the server's) gets an atomic copy, once.
    assert udfs.install_cli(backend.service_cnf, tmp_path) == 0
    assert (tmp_path / udfs.SONAME).read_bytes() == udfs.LIBRARY.read_bytes()
    assert "copied" in capsys.readouterr().out
    assert udfs.install_cli(backend.service_cnf, tmp_path) == 0
    assert "up to date" in capsys.readouterr().out
    assert udfs.install_cli(backend.service_cnf, None, library=tmp_path / "missing.so") == 1
