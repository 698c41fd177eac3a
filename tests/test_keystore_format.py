"""Damaged and hostile files: always a clear CorruptKeystore or AccessDenied, never a wrong key,
never an internal exception, never an absurd argon2 allocation."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keystore import AccessDenied, CorruptKeystore, KdfParams, Keystore, MasterKey
from keystore.format import HEADER_BYTES, MAGIC, decode

FAST = KdfParams(memory_kib=32, time_cost=1, parallelism=1)


def resum(body_and_sum: bytes) -> bytes:
    """Recompute the unkeyed trailer, as a deliberate attacker would."""
    body = body_and_sum[:-32]
    return body + hashlib.sha256(body).digest()


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, MasterKey]:
    path = tmp_path_factory.mktemp("orig") / "d" / "ks"
    ks = Keystore(path, kdf=FAST)
    master = ks.initialize("alice", "pw", metadata={"t": {"c": "x"}})
    ks.add_user(master, "bob", "pw2")
    return path.read_bytes(), master


@pytest.fixture
def place(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    path = d / "ks"

    def write(data: bytes) -> Keystore:
        path.write_bytes(data)
        path.chmod(0o600)
        return Keystore(path)

    return write


def outcome(ks: Keystore, master: MasterKey) -> str:
    """What a damaged file does to unlock and to load_metadata; fails on anything unexpected."""
    results = []
    try:
        got = ks.unlock("alice", "pw")
        assert got == master, "a damaged file yielded a different key"
        results.append("unlocked")
    except AccessDenied:
        results.append("denied")
    except CorruptKeystore as e:
        assert str(ks.path) in str(e)
        results.append("corrupt")
    try:
        ks.load_metadata(master)
        results.append("metadata")
    except (AccessDenied, CorruptKeystore):
        results.append("no-metadata")
    return "/".join(results)


def test_truncation_at_every_length(original: tuple[bytes, MasterKey], place) -> None:  # type: ignore[no-untyped-def]
    data, master = original
    for n in range(len(data)):
        ks = place(data[:n])
        with pytest.raises(CorruptKeystore) as e:
            ks.unlock("alice", "pw")
        assert str(ks.path) in str(e.value)
        assert any(w in str(e.value) for w in ("truncated", "magic", "checksum")), str(e.value)


def test_bit_flips_caught_by_checksum(original: tuple[bytes, MasterKey], place) -> None:  # type: ignore[no-untyped-def]
    data, master = original
    for i in range(len(data)):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            ks = place(bytes(bad))
            with pytest.raises(CorruptKeystore):
                ks.unlock("alice", "pw")


def test_bit_flips_with_forged_checksum(original: tuple[bytes, MasterKey], place) -> None:  # type: ignore[no-untyped-def]
    """The authenticated layers (slot GCM, metadata GCM over everything) catch every change."""
    data, master = original
    seen = set()
    for i in range(len(data) - 32):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            result = outcome(place(resum(bytes(bad))), master)
            assert "metadata" not in result.split("/"), (i, bit, result)
            seen.add(result)
    assert seen <= {"denied/no-metadata", "corrupt/no-metadata"}


def test_untouched_file_opens(original: tuple[bytes, MasterKey], place) -> None:  # type: ignore[no-untyped-def]
    data, master = original
    assert outcome(place(data), master) == "unlocked/metadata"


def _slot_kdf_offset(data: bytes) -> int:
    name_len = data[HEADER_BYTES]
    return HEADER_BYTES + 1 + name_len + 1  # after the kdf id byte


@pytest.mark.parametrize(
    ("memory", "time_cost", "parallelism", "message"),
    [
        (1 << 30, 1, 1, "argon2 memory"),  # 1 TiB
        (2**32 - 1, 1, 1, "argon2 memory"),
        (4, 1, 1, "argon2 memory"),
        (32, 0, 1, "time cost"),
        (32, 2**32 - 1, 1, "time cost"),
        (64, 1, 0, "parallelism"),
        (4096, 1, 255, "parallelism"),
    ],
)
def test_absurd_kdf_parameters_refused(
    original: tuple[bytes, MasterKey], place, memory: int, time_cost: int,  # type: ignore[no-untyped-def]
    parallelism: int, message: str,
) -> None:
    data, _ = original
    at = _slot_kdf_offset(data)
    bad = data[:at] + struct.pack(">IIB", memory, time_cost, parallelism) + data[at + 9 :]
    with pytest.raises(CorruptKeystore, match=message):
        place(resum(bad)).unlock("alice", "pw")


def test_header_fields(original: tuple[bytes, MasterKey], place) -> None:  # type: ignore[no-untyped-def]
    data, _ = original
    cases = {
        "bad magic": b"NOTAKEYS" + data[8:],
        "format version 2": data[:8] + b"\x00\x02" + data[10:],
        "unknown flags": data[:10] + b"\x00\x01" + data[12:],
        "slot count 0 ": data[: HEADER_BYTES - 2] + b"\x00\x00" + data[HEADER_BYTES:],
        "slot count 65535": data[: HEADER_BYTES - 2] + b"\xff\xff" + data[HEADER_BYTES:],
    }
    for expected, bad in cases.items():
        with pytest.raises(CorruptKeystore) as e:
            place(resum(bad)).list_principals()
        assert expected in str(e.value), e.value


def test_metadata_length_bounds(original: tuple[bytes, MasterKey]) -> None:
    data, _ = original
    file = decode(data)
    at = len(data) - 32 - len(file.metadata_ct) - 4
    for n in (0, 2**32 - 1):
        bad = data[:at] + struct.pack(">I", n) + data[at + 4 :]
        with pytest.raises(CorruptKeystore, match="metadata length|truncated|trailing"):
            decode(resum(bad))


def test_duplicate_principal_refused(original: tuple[bytes, MasterKey]) -> None:
    file = decode(original[0])
    twin = dataclasses.replace(file.slots[1], principal="alice")
    hostile = dataclasses.replace(file, slots=(file.slots[0], twin))
    with pytest.raises(CorruptKeystore, match="duplicate principal"):
        decode(hostile.encode())


def test_not_a_regular_file(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    (d / "ks").mkdir(mode=0o700)
    with pytest.raises(CorruptKeystore, match="regular file|magic"):
        Keystore(d / "ks").list_principals()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decode_never_crashes(blob: bytes) -> None:
    for data in (blob, MAGIC + blob, resum(MAGIC + blob + bytes(32))):
        try:
            decode(data)
        except CorruptKeystore:
            pass
