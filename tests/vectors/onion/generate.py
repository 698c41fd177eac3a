"""Regenerate the onion vectors: `.venv/bin/python -m tests.vectors.onion.generate [name...]`.

Deterministic: every key, IV, salt and Paillier exponent comes from a seeded generator, so
rerunning gives byte-identical files. Each vector is also checked here with an independent
implementation (pycryptodome's AES-CTR, plain Python integers for Paillier, pyca's HMAC for
SEARCH) before it is written. rnd.json, hom.json and search.json are also read by the C UDF
tests (tests/test_udf*.py); their schemas are fixed: only add fields.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES as CryptoAES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF as CryptoHKDF
from Crypto.Util import Counter
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as pyca_hmac

from onion import hom, keys, search
from onion.column import ColumnCrypto, ope_domain
from onion.encoding import ColumnType, Kind
from onion.leaky import ope as ope_mod
from onion.leaky._ope_ref import OpeRef
from onion.rnd import Rnd

HERE = Path(__file__).resolve().parent


def _rng(name: str) -> random.Random:
    return random.Random(f"cryptdb-onion-vectors/{name}")


def _bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "big") if n else b""


def _write(name: str, doc: dict[str, Any]) -> None:
    path = HERE / name
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"wrote {path.relative_to(HERE.parents[2])}")


# ---- RND -------------------------------------------------------------------------------------


def _check_rnd(key: bytes, iv: bytes, pt: bytes, ct: bytes) -> None:
    ctr = Counter.new(128, initial_value=int.from_bytes(iv, "big"), allow_wraparound=True)
    assert CryptoAES.new(key, CryptoAES.MODE_CTR, counter=ctr).encrypt(pt) == ct


def rnd_cases(rng: random.Random) -> list[tuple[str, bytes, bytes, bytes]]:
    """(note, key, iv, plaintext); DET/OPE-shaped inputs are added by later generators."""
    cases = []
    for n in (0, 1, 15, 16, 17, 31, 32, 33, 64, 100, 1000):
        cases.append((f"{n} bytes", _bytes(rng, 32), _bytes(rng, 16), _bytes(rng, n)))
    cases.append(("counter wraps after block 1", _bytes(rng, 32), b"\xff" * 16, _bytes(rng, 40)))
    cases.append(("counter wraps after block 2", _bytes(rng, 32), b"\xff" * 15 + b"\xfe",
                  _bytes(rng, 48)))
    cases.append(("low 64 bits carry into high 64", _bytes(rng, 32),
                  b"\x00" * 7 + b"\x01" + b"\xff" * 8, _bytes(rng, 40)))
    cases.append(("zero key and IV", b"\x00" * 32, b"\x00" * 16, b"\x00" * 32))
    cases.append(("600 bytes (CTR-context path)", _bytes(rng, 32), _bytes(rng, 16),
                  _bytes(rng, 600)))
    return cases


def shaped_cases(rng: random.Random) -> list[tuple[str, bytes, bytes, bytes]]:
    """RND over real inner ciphertexts: what the peeling UDF must return byte for byte."""
    out = []
    for note, ctype, value in [
        ("DET of BIGINT -1 (16 bytes)", ColumnType(kind=Kind.INT), -1),
        ("DET of VARCHAR 'hello' (22 bytes)", ColumnType(kind=Kind.STRING), "hello"),
        ("DET of VARCHAR '' (17 bytes)", ColumnType(kind=Kind.STRING), ""),
        ("DET of DECIMAL(65,30) (46 bytes)", ColumnType(kind=Kind.DECIMAL, precision=65,
                                                        scale=30), Decimal("-1e34")),
    ]:
        col = ColumnCrypto(ctype, det=_bytes(rng, 64))
        out.append((note, _bytes(rng, 32), _bytes(rng, 16), col.det(value)))
    for note, ctype, value in [
        ("OPE of BIGINT 42 (16 bytes)", ColumnType(kind=Kind.INT), 42),
        ("OPE of DECIMAL(65,30) (36 bytes)", ColumnType(kind=Kind.DECIMAL, precision=65,
                                                        scale=30), Decimal("12.5")),
    ]:
        col = ColumnCrypto(ctype, ope=_bytes(rng, 64), ope_cache=0)
        out.append((note, _bytes(rng, 32), _bytes(rng, 16), col.ope(value)))
    return out


def gen_rnd(extra: list[tuple[str, bytes, bytes, bytes]] | None = None) -> None:
    rng = _rng("rnd")
    vectors = []
    for note, key, iv, pt in rnd_cases(rng) + shaped_cases(rng) + (extra or []):
        ct = Rnd(key).encrypt(iv, pt)
        _check_rnd(key, iv, pt, ct)
        vectors.append({"note": note, "key": key.hex(), "iv": iv.hex(), "plaintext": pt.hex(),
                        "ciphertext": ct.hex()})
    _write("rnd.json", {"layer": "RND = AES-256-CTR, IV = initial 128-bit counter block",
                        "vectors": vectors})


# ---- HOM -------------------------------------------------------------------------------------


def hom_key() -> hom.PaillierPrivateKey:
    return hom.PaillierPrivateKey._generate_from_rng(2048, _rng("hom-key").getrandbits)


def _check_hom(key: hom.PaillierPrivateKey, m: int, alpha: int, ct: bytes) -> None:
    """Plain-int textbook Paillier: (1 + m n) * (h**alpha)**n mod n**2."""
    p, q, h = int(key.p), int(key.q), int(key.h)
    n = p * q
    r = pow(h, alpha, n)
    c = (1 + (m % n) * n) * pow(r, n, n * n) % (n * n)
    assert c == int.from_bytes(ct, "big") and len(ct) == (n * n).bit_length() // 8 + (
        (n * n).bit_length() % 8 > 0
    )


def gen_hom() -> None:
    rng = _rng("hom")
    key = hom_key()
    pub = key.public_key
    n, n2 = int(pub.n), int(pub.n2)
    width = pub.width
    encryptions = []

    def enc(m: int) -> str:
        alpha = rng.getrandbits(hom.ALPHA_BITS)
        ct = key._encrypt_from_parts(m, alpha)
        _check_hom(key, m, alpha, ct)
        assert key.decrypt(ct) == m
        encryptions.append({"m": str(m), "alpha": f"{alpha:x}", "ciphertext": ct.hex()})
        return ct.hex()

    groups: list[list[int]] = [
        [5],
        [1, 2, 3],
        [-1, 1],
        [-7, -8, 2],
        [2**63 - 1, 2**63 - 1, 2**63 - 1],
        [-(2**63), -(2**63), 5],
        [2**64 - 1, 1],
        [10**65 - 1, -(10**64), 12345678901234567890],
        [0, 0, 0, 0],
        [n // 2, -(n // 2)],
        [rng.randrange(-(10**12), 10**12) for _ in range(20)],
    ]
    sums = []
    for g in groups:
        cts = [enc(m) for m in g]
        prod = 1
        for c in cts:
            prod = prod * int(c, 16) % n2
        product = prod.to_bytes(width, "big")
        assert product == pub.sum(bytes.fromhex(c) for c in cts)
        assert key.decrypt(product) == sum(g)
        sums.append({"values": [str(m) for m in g], "ciphertexts": cts,
                     "plaintext_sum": str(sum(g)), "product": product.hex()})
    adds = []
    for a, b in [(10, 1), (10, -1), (-5, -5), (0, 0), (2**63 - 1, 1), (-(2**63), -1),
                 (123456789, -123456789)]:
        ca, cb = enc(a), enc(b)
        res = (int(ca, 16) * int(cb, 16) % n2).to_bytes(width, "big")
        assert res == pub.add(bytes.fromhex(ca), bytes.fromhex(cb))
        assert key.decrypt(res) == a + b
        adds.append({"a_plain": str(a), "b_plain": str(b), "a": ca, "b": cb,
                     "result": res.hex(), "result_plain": str(a + b)})
    _write("hom.json", {
        "note": "Paillier g = n+1, test key only; ciphertexts big-endian, fixed width = "
                "byte length of n2; negatives encoded as n - |m|",
        "n": f"{n:x}", "n2": n2.to_bytes(width, "big").hex(), "width": width,
        "private_key": key.to_bytes().hex(), "alpha_bits": hom.ALPHA_BITS,
        "sums": sums, "adds": adds, "encryptions": encryptions,
    })


# ---- SEARCH ----------------------------------------------------------------------------------


def _pyca_hmac(key: bytes, msg: bytes) -> bytes:
    h = pyca_hmac.HMAC(key, hashes.SHA256())
    h.update(msg)
    return h.finalize()


def gen_search() -> None:
    rng = _rng("search")
    key = _bytes(rng, 32)
    s = search.Search(key)
    texts = [
        "The quick brown fox",
        "jumps over the lazy dog; the dog sleeps",
        "",
        "   ...   ",
        "Straße STRASSE strasse",
        "naïve café — 東京 タワー",
        "emoji 😀 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 4-byte",
        "a_b c-d e.f 42 x42",
        " ".join(f"w{i}" for i in range(40)),
    ]
    queries = ["the", "fox", "dog", "cat", "strasse", "café", "東京", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a", "42",
               "w0", "w39", "w40", "quick"]
    vectors = []
    for text in texts:
        words = search.normalize_words(text)
        rng.shuffle(words)
        salts = [_bytes(rng, 8) for _ in words]
        stored = s._encrypt_from_parts(words, salts)
        for i, (w, salt) in enumerate(zip(words, salts, strict=True)):
            token = _pyca_hmac(key, w.encode())
            assert stored[1 + 24 * i : 25 + 24 * i] == salt + _pyca_hmac(token, salt)[:16]
        for q in queries:
            token = s.token(q)
            m = search.match(stored, token)
            assert m == (search.normalize_words(q)[0] in words)
            vectors.append({"text": text, "word": q, "stored": stored.hex(),
                            "token": token.hex(), "match": m})
    good = bytes.fromhex(vectors[0]["stored"])
    tok = bytes.fromhex(vectors[0]["token"])
    for note, stored, token in [
        ("version byte 0x02", b"\x02" + good[1:], tok),
        ("empty stored value", b"", tok),
        ("length not 1 + 24k", good[:-1], tok),
        ("token of 31 bytes", good, tok[:31]),
        ("token of 33 bytes", good, tok + b"\x00"),
    ]:
        vectors.append({"note": note, "stored": stored.hex(), "token": token.hex(),
                        "match": None})
    _write("search.json", {
        "note": "stored = 0x01 || (salt8 || HMAC-SHA256(token, salt)[:16])*; token = "
                "HMAC-SHA256(k_search, normalized word); match null = malformed input",
        "key": key.hex(), "vectors": vectors,
    })


# ---- keys ------------------------------------------------------------------------------------


def gen_keys() -> None:
    rng = _rng("keys")
    master = _bytes(rng, 32)
    layers = []
    for ids in [(0, 0, 0), (1, 7, 3), (1, 7, 4), (2, 7, 3), (2**64 - 1, 2**32, 12345)]:
        for onion, layer_names in keys.LAYERS_OF.items():
            for layer in layer_names:
                label = keys.layer_label(*ids, onion, layer)
                key = keys.derive_layer_key(master, *ids, onion, layer)
                assert key == CryptoHKDF(master, len(key), b"", SHA256, context=label)
                layers.append({"database_id": ids[0], "table_id": ids[1], "column_id": ids[2],
                               "onion": onion, "layer": layer, "label": label.decode(),
                               "key": key.hex()})
    joins = []
    for group in (0, 1, 99, 2**64 - 1):
        label = keys.join_label(group)
        key = keys.derive_join_key(master, group)
        assert key == CryptoHKDF(master, 64, b"", SHA256, context=label)
        joins.append({"group_id": group, "label": label.decode(), "key": key.hex()})
    _write("keys.json", {"note": "HKDF-SHA256(master, salt=none, info=label)",
                         "master": master.hex(), "layers": layers, "joins": joins})


# ---- DET -------------------------------------------------------------------------------------


def _ctype_doc(ctype: ColumnType) -> dict[str, Any]:
    return {"kind": ctype.kind.value, "bits": ctype.bits, "precision": ctype.precision,
            "scale": ctype.scale}


def _value_doc(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _check_det(key: bytes, ct: bytes) -> None:
    """pycryptodome: the block form decrypts to a well-formed block, the SIV form verifies."""
    if len(ct) == 16:
        block_key = hmac.digest(key, b"cryptdb-onion/v1/det/block", hashlib.sha256)
        block = CryptoAES.new(block_key, CryptoAES.MODE_ECB).decrypt(ct)
        assert block[0] == 0xD1 and block[3:7] == bytes(4)
    else:
        assert ct[0] == 0x01
        siv = CryptoAES.new(key, CryptoAES.MODE_SIV)
        if len(ct) == 46:
            siv.update(b"cryptdb-onion/v1/det/decimal")
        siv.decrypt_and_verify(ct[17:], ct[1:17])


DET_CASES: list[tuple[ColumnType, list[Any]]] = [
    (ColumnType(kind=Kind.INT), [0, 1, -1, 2**63 - 1, -(2**63)]),
    (ColumnType(kind=Kind.INT, bits=32), [7, -(2**31)]),
    (ColumnType(kind=Kind.UINT), [0, 7, 2**64 - 1]),
    (ColumnType(kind=Kind.DECIMAL, precision=10, scale=2), [Decimal("0.00"), Decimal("-1.5"),
                                                           Decimal("99999999.99")]),
    (ColumnType(kind=Kind.DECIMAL, precision=65, scale=30),
     [Decimal("1.5"), Decimal("9" * 35 + "." + "9" * 30), Decimal("-" + "9" * 35)]),
    (ColumnType(kind=Kind.STRING), ["", "a", "hello world", "😀 4-byte", "Ünïcödé" * 10]),
    (ColumnType(kind=Kind.DATE), [dt.date(1, 1, 1), dt.date(1000, 1, 1), dt.date(9999, 12, 31)]),
    (ColumnType(kind=Kind.DATETIME), [dt.datetime(2024, 2, 29, 12, 34, 56, 789012),
                                      dt.datetime(9999, 12, 31, 23, 59, 59, 999999)]),
]


def gen_det() -> None:
    rng = _rng("det")
    key = _bytes(rng, 64)
    vectors = []
    for ctype, values in DET_CASES:
        col = ColumnCrypto(ctype, det=key)
        for v in values:
            ct = col.det(v)
            assert ct is not None and col.det_decrypt(ct) == v
            _check_det(key, ct)
            vectors.append({"type": _ctype_doc(ctype), "value": _value_doc(v),
                            "ciphertext": ct.hex()})
    _write("det.json", {"note": "DET: 16-byte AES block or 0x01 || AES-SIV; see "
                                "docs/onion-format.md", "key": key.hex(), "vectors": vectors})


# ---- OPE -------------------------------------------------------------------------------------

OPE_CASES: list[tuple[ColumnType, list[Any]]] = [
    (ColumnType(kind=Kind.INT), [-(2**63), -1, 0, 1, 2**63 - 1]),
    (ColumnType(kind=Kind.UINT), [0, 1, 2**63, 2**64 - 1]),
    (ColumnType(kind=Kind.DECIMAL, precision=10, scale=2), [Decimal("-99999999.99"),
                                                           Decimal("0"), Decimal("0.01")]),
    (ColumnType(kind=Kind.DECIMAL, precision=65, scale=30),
     [Decimal("-" + "9" * 35), Decimal("0"), Decimal("1e-30")]),
    (ColumnType(kind=Kind.STRING), ["", "a", "A", "abc", "abcdefgh", "abcdefghz", "b",
                                    "\t", "a\t", "a ", "😀"]),
    (ColumnType(kind=Kind.DATE), [dt.date(1, 1, 1), dt.date(2000, 1, 1),
                                  dt.date(9999, 12, 31)]),
    (ColumnType(kind=Kind.DATETIME), [dt.datetime(2000, 1, 1, 0, 0, 0, 1)]),
]


def gen_ope() -> None:
    rng = _rng("ope")
    key = _bytes(rng, 64)
    raw = []
    for d, r in [(64, 128), (8, 16), (16, 24), (1, 1), (32, 96)]:
        ref = OpeRef(key, d, r)
        native = ope_mod.Ope(key, d, r, cache_size=0) if ope_mod.NATIVE else None
        pts = sorted({0, (1 << d) - 1} | {rng.getrandbits(d) for _ in range(12)})
        cts = []
        for m in pts:
            c = ref.encrypt(m)
            assert native is None or native.encrypt_int(m) == c
            assert ref.decrypt(c) == m
            cts.append(c)
        assert cts == sorted(cts) and len(set(cts)) == len(cts)
        width = (r + 7) // 8
        raw.append({"d": d, "r": r, "vectors": [
            {"plaintext": str(m), "ciphertext": c.to_bytes(width, "big").hex()}
            for m, c in zip(pts, cts, strict=True)]})
    typed = []
    for ctype, values in OPE_CASES:
        col = ColumnCrypto(ctype, ope=key, ope_cache=0)
        d, r = ope_domain(ctype)
        for v in values:
            ct = col.ope(v)
            assert ct is not None and len(ct) == (r + 7) // 8
            typed.append({"type": _ctype_doc(ctype), "value": _value_doc(v),
                          "domain_point": str(col.ope_plain(v)), "ciphertext": ct.hex()})
    _write("ope.json", {"note": "OPE (BCLO with exact Binomial(M, 1/2) splits); ciphertexts "
                                "fixed-width big-endian", "key": key.hex(), "raw": raw,
                        "typed": typed})


GENERATORS: dict[str, Callable[[], None]] = {"rnd": gen_rnd, "hom": gen_hom,
                                              "search": gen_search, "keys": gen_keys,
                                              "det": gen_det, "ope": gen_ope}


def main(argv: list[str]) -> int:
    for name in argv or list(GENERATORS):
        GENERATORS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
