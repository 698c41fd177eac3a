"""The age format and SSHSIG signatures against the stock tools (age, age-keygen, ssh-keygen)
and pyrage, both ways. No database needed."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from backup import signing
from backup.age import CHUNK, AgeError, AgeReader, AgeWriter, Identity, Recipient, open_decrypt

pytestmark = pytest.mark.skipif(not shutil.which("age"), reason="stock age tool not installed")
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 12345]


@pytest.fixture(scope="module")
def stock_identity(tmp_path_factory) -> tuple[Path, Identity, str]:
    path = tmp_path_factory.mktemp("age") / "id.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    text = path.read_text()
    pub = next(ln.split(": ")[1] for ln in text.splitlines() if "public key:" in ln)
    line = next(ln for ln in text.splitlines() if ln.startswith("AGE-SECRET-KEY-1"))
    return path, Identity.parse(line), pub


def _encrypt(data: bytes, recipients: list[Recipient], pieces: int = 3) -> bytes:
    out = io.BytesIO()
    w = AgeWriter(out, recipients)
    step = max(len(data) // pieces, 1)
    for i in range(0, len(data), step):  # odd write sizes straddle chunk boundaries
        w.write(data[i : i + step])
    w.close()
    return out.getvalue()


def test_keys_match_age_keygen(stock_identity) -> None:
    _, ident, pub = stock_identity
    assert str(ident.recipient()) == pub
    assert Recipient.parse(pub) == ident.recipient()
    assert Identity.parse(str(ident)) == ident
    with pytest.raises(AgeError):
        Recipient.parse(pub[:-1] + ("q" if pub[-1] != "q" else "p"))  # checksum


@pytest.mark.parametrize("size", SIZES)
def test_stock_age_decrypts_ours(stock_identity, size: int) -> None:
    path, ident, _ = stock_identity
    data = os.urandom(size)
    other = Identity.generate().recipient()
    blob = _encrypt(data, [other, ident.recipient()])
    got = subprocess.run(["age", "-d", "-i", str(path)], input=blob, capture_output=True)
    assert got.returncode == 0, got.stderr
    assert got.stdout == data


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_stock_age(stock_identity, size: int) -> None:
    _, ident, pub = stock_identity
    data = os.urandom(size)
    blob = subprocess.run(["age", "-r", pub], input=data, capture_output=True, check=True).stdout
    assert open_decrypt(io.BytesIO(blob), [ident]).read() == data


def test_pyrage_both_ways() -> None:
    pyrage = pytest.importorskip("pyrage")
    ident = Identity.generate()
    data = os.urandom(2 * CHUNK + 7)
    theirs = pyrage.x25519.Identity.from_str(str(ident))
    assert pyrage.decrypt(_encrypt(data, [ident.recipient()]), [theirs]) == data
    blob = pyrage.encrypt(data, [theirs.to_public()])
    assert open_decrypt(io.BytesIO(blob), [ident]).read() == data


def test_errors_are_specific() -> None:
    ident = Identity.generate()
    data = os.urandom(3 * CHUNK)
    blob = _encrypt(data, [ident.recipient()])
    with pytest.raises(AgeError, match="no identity matches"):
        AgeReader(io.BytesIO(blob), [Identity.generate()])
    with pytest.raises(AgeError, match="not an age v1 file"):
        AgeReader(io.BytesIO(b"hello\n" + blob), [ident])
    flipped = bytearray(blob)
    flipped[-CHUNK] ^= 1
    with pytest.raises(AgeError, match="chunk 2 failed authentication"):
        open_decrypt(io.BytesIO(bytes(flipped)), [ident]).read()
    body = len(blob) - 3 * (CHUNK + 16)  # header + nonce
    with pytest.raises(AgeError, match="stops after chunk 1 without its final chunk"):
        open_decrypt(io.BytesIO(blob[: body + 2 * (CHUNK + 16)]), [ident]).read()
    with pytest.raises(AgeError, match="truncated"):
        open_decrypt(io.BytesIO(blob[:-5]), [ident]).read()


def test_writer_memory_is_one_chunk() -> None:
    """Whatever is written, at most one chunk of plaintext waits in the writer."""
    w = AgeWriter(io.BytesIO(), [Identity.generate().recipient()])
    for n in (10, CHUNK * 5 + 3, 1, CHUNK, 7 * CHUNK):
        w.write(os.urandom(n))
        assert len(w._buf) <= CHUNK
    w.close()


def test_sshsig_interop_with_ssh_keygen(tmp_path: Path) -> None:
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen not installed")
    key = signing.generate_signing_key(tmp_path / "k" / "signing-key")
    pub = (tmp_path / "k" / "signing-key.pub").read_text()
    msg = tmp_path / "manifest.json"
    msg.write_bytes(b'{"x": 1}\n')
    (tmp_path / "manifest.json.sig").write_text(signing.sign(key, msg.read_bytes()))
    allowed = tmp_path / "allowed"
    allowed.write_text(f"backup {pub}")
    verify = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "backup", "-n",
              signing.NAMESPACE, "-s", str(tmp_path / "manifest.json.sig")]
    subprocess.run(verify, stdin=msg.open("rb"), check=True, capture_output=True)
    # and the other way: ssh-keygen signs, we verify
    (tmp_path / "manifest.json.sig").unlink()
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(tmp_path / "k" / "signing-key"),
                    "-n", signing.NAMESPACE, str(msg)], check=True, capture_output=True)
    sig = (tmp_path / "manifest.json.sig").read_text()
    trusted = signing.load_public_key(tmp_path / "k" / "signing-key.pub")
    signing.verify(trusted, msg.read_bytes(), sig)
    with pytest.raises(signing.SignatureError, match="altered"):
        signing.verify(trusted, msg.read_bytes() + b" ", sig)
    with pytest.raises(signing.SignatureError, match="namespace"):
        signing.verify(trusted, msg.read_bytes(), signing.sign(key, msg.read_bytes(), "file"))
