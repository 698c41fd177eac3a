"""Every file under tests/vectors/onion/ checked against onion/ (pyca's vector-test pattern)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from onion import keys, search
from onion.column import ColumnCrypto, ope_domain
from onion.encoding import ColumnType, Kind
from onion.errors import InvalidCiphertext
from onion.hom import PaillierPrivateKey
from onion.leaky._ope_ref import OpeRef
from onion.rnd import Rnd

VECTORS = Path(__file__).resolve().parent / "vectors" / "onion"
T = TypeVar("T")


def load_vectors_from_file(name: str, loader: Callable[[dict[str, Any]], T]) -> T:
    with (VECTORS / name).open() as f:
        return loader(json.load(f))


def _ctype(doc: dict[str, Any]) -> ColumnType:
    return ColumnType(kind=Kind(doc["kind"]), bits=doc["bits"], precision=doc["precision"],
                      scale=doc["scale"])


def _value(ctype: ColumnType, text: str) -> Any:
    k = ctype.kind
    if k in (Kind.INT, Kind.UINT):
        return int(text)
    if k is Kind.DECIMAL:
        return Decimal(text)
    if k is Kind.DATE:
        return dt.date.fromisoformat(text)
    if k is Kind.DATETIME:
        return dt.datetime.fromisoformat(text)
    return text


def test_rnd_vectors() -> None:
    vectors = load_vectors_from_file("rnd.json", lambda d: d["vectors"])
    assert len(vectors) >= 20
    lengths = {len(v["plaintext"]) // 2 for v in vectors}
    assert {0, 1, 16, 17, 1000} <= lengths
    for v in vectors:
        key, iv, pt, ct = (bytes.fromhex(v[k]) for k in ("key", "iv", "plaintext", "ciphertext"))
        assert Rnd(key).encrypt(iv, pt) == ct
        assert Rnd(key).decrypt(iv, ct) == pt


def test_hom_vectors() -> None:
    doc = load_vectors_from_file("hom.json", lambda d: d)
    key = PaillierPrivateKey.from_bytes(bytes.fromhex(doc["private_key"]))
    pub = key.public_key
    assert int(pub.n) == int(doc["n"], 16) and pub.n2_bytes().hex() == doc["n2"]
    assert pub.width == len(doc["n2"]) // 2 == 512
    for e in doc["encryptions"]:
        ct = key._encrypt_from_parts(int(e["m"]), int(e["alpha"], 16))
        assert ct.hex() == e["ciphertext"]
        assert key.decrypt(ct) == int(e["m"])
    for s in doc["sums"]:
        cts = [bytes.fromhex(c) for c in s["ciphertexts"]]
        assert pub.sum(cts).hex() == s["product"]
        assert key.decrypt(bytes.fromhex(s["product"])) == int(s["plaintext_sum"])
    for a in doc["adds"]:
        res = pub.add(bytes.fromhex(a["a"]), bytes.fromhex(a["b"]))
        assert res.hex() == a["result"]
        assert key.decrypt(res) == int(a["result_plain"])


def test_search_vectors() -> None:
    doc = load_vectors_from_file("search.json", lambda d: d)
    s = search.Search(bytes.fromhex(doc["key"]))
    for v in doc["vectors"]:
        stored, token = bytes.fromhex(v["stored"]), bytes.fromhex(v["token"])
        if v["match"] is None:
            with pytest.raises((InvalidCiphertext, ValueError)):
                search.match(stored, token)
            continue
        assert search.match(stored, token) is v["match"]
        assert s.token(v["word"]) == token
        words = search.normalize_words(v["text"])
        assert search.entry_count(stored) == len(words)
        assert v["match"] == (search.normalize_words(v["word"])[0] in words)


def test_keys_vectors() -> None:
    doc = load_vectors_from_file("keys.json", lambda d: d)
    master = bytes.fromhex(doc["master"])
    cache = keys.KeyCache(master)
    for v in doc["layers"]:
        ids = (v["database_id"], v["table_id"], v["column_id"], v["onion"], v["layer"])
        assert keys.layer_label(*ids).decode() == v["label"]
        assert keys.derive_layer_key(master, *ids).hex() == v["key"]
        assert cache.layer_key(*ids).hex() == v["key"]
    for v in doc["joins"]:
        assert keys.join_label(v["group_id"]).decode() == v["label"]
        assert cache.join_key(v["group_id"]).hex() == v["key"]


def test_det_vectors() -> None:
    doc = load_vectors_from_file("det.json", lambda d: d)
    key = bytes.fromhex(doc["key"])
    kinds = set()
    for v in doc["vectors"]:
        ctype = _ctype(v["type"])
        kinds.add(ctype.kind)
        col = ColumnCrypto(ctype, det=key)
        value = _value(ctype, v["value"])
        assert col.det(value).hex() == v["ciphertext"]
        assert col.det_decrypt(bytes.fromhex(v["ciphertext"])) == value
    assert kinds == set(Kind)


def test_ope_raw_vectors() -> None:
    doc = load_vectors_from_file("ope.json", lambda d: d)
    key = bytes.fromhex(doc["key"])
    for group in doc["raw"]:
        ref = OpeRef(key, group["d"], group["r"])
        width = (group["r"] + 7) // 8
        cts = []
        for v in group["vectors"]:
            ct = bytes.fromhex(v["ciphertext"])
            assert len(ct) == width
            assert ref.encrypt(int(v["plaintext"])).to_bytes(width, "big") == ct
            assert ref.decrypt(int.from_bytes(ct, "big")) == int(v["plaintext"])
            cts.append(ct)
        assert cts == sorted(cts)


def test_ope_typed_vectors() -> None:
    doc = load_vectors_from_file("ope.json", lambda d: d)
    key = bytes.fromhex(doc["key"])
    for v in doc["typed"]:
        ctype = _ctype(v["type"])
        col = ColumnCrypto(ctype, ope=key, ope_cache=0)
        value = _value(ctype, v["value"])
        assert str(col.ope_plain(value)) == v["domain_point"]
        ct = col.ope(value)
        assert ct.hex() == v["ciphertext"]
        assert len(ct) == (ope_domain(ctype)[1] + 7) // 8
        if ctype.kind is not Kind.STRING:
            assert col.ope_decrypt(ct) == value


def test_generator_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rerunning the generator rewrites byte-identical files (cheap ones; hom takes seconds)."""
    from tests.vectors.onion import generate

    monkeypatch.setattr(generate, "HERE", tmp_path)
    monkeypatch.setattr(generate, "_write", lambda name, doc: (tmp_path / name).write_text(
        json.dumps(doc, indent=1, sort_keys=False) + "\n"))
    generate.main(["rnd", "search", "keys", "det", "ope"])
    for name in ("rnd.json", "search.json", "keys.json", "det.json", "ope.json"):
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), name
