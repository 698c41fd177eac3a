"""Format vectors (tests/vectors/keystore/): rebuilt byte for byte by keystore/, and opened by an
independent reader that follows docs/keystore-format.md and shares no code with keystore/."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keystore import AccessDenied, Keystore
from tests.vectors.keystore.generate import build

VECTORS = Path(__file__).resolve().parent / "vectors" / "keystore"


def load_vector(name: str) -> tuple[bytes, dict[str, Any]]:
    doc = json.loads((VECTORS / f"{name}.json").read_text())
    return (VECTORS / doc["file"]).read_bytes(), doc


@pytest.fixture(scope="module")
def vector() -> tuple[bytes, dict[str, Any]]:
    return load_vector("v1-two-slots")


def test_rebuilt_byte_for_byte(vector: tuple[bytes, dict[str, Any]]) -> None:
    data, doc = vector
    rebuilt, expected = build(doc["inputs"])
    assert rebuilt == data
    assert expected == doc["expected"]


def test_opens_with_keystore(vector: tuple[bytes, dict[str, Any]], tmp_path: Path) -> None:
    data, doc = vector
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    shutil.copyfile(VECTORS / doc["file"], d / "ks")
    (d / "ks").chmod(0o600)
    ks = Keystore(d / "ks")
    inputs = doc["inputs"]
    for slot in inputs["slots"]:
        master = ks.unlock(slot["principal"], slot["password"])
        assert master.raw.hex() == inputs["master_key"]
    with pytest.raises(AccessDenied):
        ks.unlock("alice", inputs["slots"][1]["password"])
    assert ks.load_metadata(master) == (inputs["metadata_version"], inputs["metadata"])
    assert ks.generation == inputs["generation"]


# ---- independent reader: written from docs/keystore-format.md ----

def hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=salt, info=info).derive(key)


def independent_open(data: bytes, principal: str, password: str) -> dict[str, Any]:
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    magic, version, flags, dep, gen, mver, kcv, count = struct.unpack_from(">8sHH16sQQ32sH", data)
    assert (magic, version, flags) == (b"\x89CDBKEY\n", 1, 0)
    pos = 78
    master = None
    for _ in range(count):
        start = pos
        n = data[pos]
        name = data[pos + 1 : pos + 1 + n].decode()
        pos += 1 + n
        kdf_id, mem, t, p = struct.unpack_from(">BIIB", data, pos)
        salt = data[pos + 10 : pos + 26]
        nonce = data[pos + 26 : pos + 38]
        wrapped = data[pos + 38 : pos + 86]
        header = data[start : pos + 38]
        pos += 86
        if name == principal:
            assert kdf_id == 1
            kek = hash_secret_raw(password.encode(), salt, t, mem, p, 32, Type.ID)
            aad = magic + struct.pack(">H", version) + dep + header
            master = AESGCM(kek).decrypt(nonce, wrapped, aad)
    assert master is not None
    assert hkdf(master, dep, b"cryptdb keystore v1 key check") == kcv
    meta_nonce, ct_len = struct.unpack_from(">12sI", data, pos)
    pos += 16
    ct = data[pos : pos + ct_len]
    assert pos + ct_len == len(data) - 32
    key = hkdf(master, dep, b"cryptdb keystore v1 metadata key")
    plain = AESGCM(key).decrypt(meta_nonce, ct, data[:pos])
    return {"master": master.hex(), "metadata_key": key.hex(), "generation": gen,
            "metadata_version": mver, "metadata": json.loads(plain), "plaintext": plain}


def test_independent_reader(vector: tuple[bytes, dict[str, Any]]) -> None:
    data, doc = vector
    inputs, expected = doc["inputs"], doc["expected"]
    for slot in inputs["slots"]:
        got = independent_open(data, slot["principal"], slot["password"])
        assert got["master"] == inputs["master_key"]
        assert got["metadata_key"] == expected["metadata_key"]
        assert got["metadata"] == inputs["metadata"]
        assert got["plaintext"].decode() == expected["metadata_plaintext"]
        assert (got["generation"], got["metadata_version"]) == (
            inputs["generation"], inputs["metadata_version"]
        )
        kdf = slot["kdf"]
        kek = hash_secret_raw(
            slot["password"].encode(), bytes.fromhex(slot["salt"]), kdf["time_cost"],
            kdf["memory_kib"], kdf["parallelism"], 32, Type.ID,
        )
        assert kek.hex() == expected["slot_keks"][slot["principal"]]
