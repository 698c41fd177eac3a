"""Regenerate the keystore format vectors: `.venv/bin/python -m tests.vectors.keystore.generate`.

Every random input (master key, deployment id, salts, nonces) is fixed here, and argon2 runs
at a tiny cost so the vectors check fast. tests/test_keystore_vectors.py rebuilds the file from
the JSON with keystore/ and, separately, opens it with an independent reader written from
docs/keystore-format.md alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from keystore import crypto
from keystore.crypto import MasterKey
from keystore.format import KdfParams

HERE = Path(__file__).resolve().parent

INPUTS = {
    "master_key": bytes(range(0x00, 0x20)).hex(),
    "deployment_id": bytes.fromhex("d0" * 8 + "0123456789abcdef").hex(),
    "generation": 3,
    "metadata_version": 2,
    "metadata": {
        "tables": {"patients": {"anon": "table_1", "columns": {"name": {"anon": "c1",
                   "type": "VARCHAR(64)", "onions": {"eq": "DET", "ord": "RND"}}}}},
        "join_groups": {"g1": ["patients.name"]},
    },
    "metadata_nonce": ("a0" * 12),
    "slots": [
        {"principal": "alice", "password": "correct horse battery staple",
         "kdf": {"memory_kib": 64, "time_cost": 1, "parallelism": 1},
         "salt": "11" * 16, "nonce": "21" * 12},
        {"principal": "böb@%", "password": "pässwörd",
         "kdf": {"memory_kib": 128, "time_cost": 2, "parallelism": 2},
         "salt": "12" * 16, "nonce": "22" * 12},
    ],
}


def build(inputs: dict) -> tuple[bytes, dict]:  # type: ignore[type-arg]
    master = MasterKey(bytes.fromhex(inputs["master_key"]))
    dep = bytes.fromhex(inputs["deployment_id"])
    slots = []
    keks = {}
    for s in inputs["slots"]:
        kdf = KdfParams(**s["kdf"])
        salt, nonce = bytes.fromhex(s["salt"]), bytes.fromhex(s["nonce"])
        slots.append(crypto.make_slot(s["principal"], s["password"], master, dep, kdf,
                                      salt=salt, nonce=nonce))
        keks[s["principal"]] = crypto.derive_kek(s["password"], salt, kdf).hex()
    plaintext = crypto.encode_metadata(inputs["metadata"])
    file = crypto.seal(
        master, dep, generation=inputs["generation"],
        metadata_version=inputs["metadata_version"], slots=tuple(slots), metadata=plaintext,
        nonce=bytes.fromhex(inputs["metadata_nonce"]),
    )
    expected = {
        "slot_keks": keks,
        "metadata_key": crypto.derive(master, dep, crypto.LABEL_METADATA).hex(),
        "key_check": crypto.key_check(master, dep).hex(),
        "metadata_plaintext": plaintext.decode("utf-8"),
    }
    return file.encode(), expected


def main() -> None:
    data, expected = build(INPUTS)
    (HERE / "v1-two-slots.keystore").write_bytes(data)
    doc = {"description": "keystore format v1: two slots, fixed randomness, low argon2 cost",
           "file": "v1-two-slots.keystore", "inputs": INPUTS, "expected": expected}
    (HERE / "v1-two-slots.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
