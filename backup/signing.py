"""Ed25519 manifest signatures in OpenSSH's SSHSIG format.

age authenticates no sender: anyone holding a recipient's public key can write a backup that
decrypts fine. The backup host therefore signs the manifest with its own Ed25519 key, and the
restorer checks it against the public key it trusts. SSHSIG (PROTOCOL.sshsig) keeps that
checkable with stock tools: `ssh-keygen -Y verify -n cryptdb-backup ...`. Keys are OpenSSH
files, so `ssh-keygen -Y sign` can sign too.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_ssh_private_key,
    load_ssh_public_key,
)

from keystore.files import check_private, private_dir, write_private

NAMESPACE = "cryptdb-backup"
_MAGIC = b"SSHSIG"
_BEGIN, _END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"


class SignatureError(Exception):
    """The manifest signature is missing, malformed, or not by the trusted key."""


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _read_strings(blob: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(blob):
        if i + 4 > len(blob):
            raise SignatureError("malformed SSH signature")
        (n,) = struct.unpack(">I", blob[i : i + 4])
        if i + 4 + n > len(blob):
            raise SignatureError("malformed SSH signature")
        out.append(blob[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def _pub_blob(key: Ed25519PublicKey) -> bytes:
    return _string(b"ssh-ed25519") + _string(key.public_bytes_raw())


def public_key_line(key: Ed25519PublicKey, comment: str = "") -> str:
    line = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def fingerprint(key: Ed25519PublicKey) -> str:
    """As `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(_pub_blob(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _signed_data(message: bytes, namespace: str, hash_alg: str = "sha512") -> bytes:
    digest = hashlib.new(hash_alg, message).digest()
    return (
        _MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(hash_alg.encode())
        + _string(digest)
    )


def sign(key: Ed25519PrivateKey, message: bytes, namespace: str = NAMESPACE) -> str:
    sig = key.sign(_signed_data(message, namespace))
    blob = (
        _MAGIC
        + struct.pack(">I", 1)
        + _string(_pub_blob(key.public_key()))
        + _string(namespace.encode())
        + _string(b"")
        + _string(b"sha512")
        + _string(_string(b"ssh-ed25519") + _string(sig))
    )
    b64 = base64.b64encode(blob).decode()
    lines = [b64[i : i + 70] for i in range(0, len(b64), 70)]
    return "\n".join([_BEGIN, *lines, _END]) + "\n"


def signer_of(armored: bytes | str) -> Ed25519PublicKey:
    """The public key a signature claims (not yet verified)."""
    return _parse(armored)[0]


def _parse(armored: bytes | str) -> tuple[Ed25519PublicKey, str, str, bytes]:
    text = armored.decode("ascii", "replace") if isinstance(armored, bytes) else armored
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _BEGIN or lines[-1] != _END:
        raise SignatureError("manifest signature is not an SSH signature")
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError:
        raise SignatureError("manifest signature: malformed base64") from None
    if not blob.startswith(_MAGIC) or blob[6:10] != struct.pack(">I", 1):
        raise SignatureError("manifest signature: unsupported SSHSIG version")
    fields = _read_strings(blob[10:])
    if len(fields) != 5:
        raise SignatureError("malformed SSH signature")
    pub, namespace, _reserved, hash_alg, sig = fields
    pub_fields, sig_fields = _read_strings(pub), _read_strings(sig)
    if pub_fields[:1] != [b"ssh-ed25519"] or len(pub_fields) != 2 or len(pub_fields[1]) != 32:
        raise SignatureError("manifest signature: only ssh-ed25519 keys are accepted")
    if sig_fields[:1] != [b"ssh-ed25519"] or len(sig_fields) != 2:
        raise SignatureError("manifest signature: not an ssh-ed25519 signature")
    key = Ed25519PublicKey.from_public_bytes(pub_fields[1])
    ns, alg = namespace.decode("ascii", "replace"), hash_alg.decode("ascii", "replace")
    return key, ns, alg, sig_fields[1]


def verify(
    trusted: Ed25519PublicKey, message: bytes, armored: bytes | str, namespace: str = NAMESPACE
) -> None:
    """Raise SignatureError unless `armored` is `trusted`'s signature of `message`."""
    key, ns, hash_alg, sig = _parse(armored)
    if key.public_bytes_raw() != trusted.public_bytes_raw():
        raise SignatureError(
            f"manifest is signed by {fingerprint(key)}, not by the trusted backup signing key "
            f"{fingerprint(trusted)}: re-signed or foreign backup"
        )
    if ns != namespace:
        raise SignatureError(f"manifest signature is for namespace {ns!r}, not {namespace!r}")
    if hash_alg not in ("sha512", "sha256"):
        raise SignatureError(f"manifest signature uses unsupported hash {hash_alg!r}")
    try:
        trusted.verify(sig, _signed_data(message, ns, hash_alg))
    except InvalidSignature:
        raise SignatureError("manifest signature does not match the manifest: altered") from None


def generate_signing_key(path: Path, comment: str = "cryptdb-backup") -> Ed25519PrivateKey:
    """Write a new key to `path` (0600, OpenSSH format) and its public half to `path`.pub."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to replace a signing key")
    key = Ed25519PrivateKey.generate()
    private_dir(path.parent)
    write_private(path, key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    # The public half is not secret, but it lives in the same private dir; 0600 is harmless.
    pub_path = path.with_name(path.name + ".pub")
    write_private(pub_path, public_key_line(key.public_key(), comment) + "\n")
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    path = Path(path)
    check_private(path)
    key = load_ssh_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: the backup signing key must be ssh-ed25519")
    return key


def load_public_key(spec: str | Path) -> Ed25519PublicKey:
    """A trusted signer: an `ssh-ed25519 AAAA...` line, or a file holding one (.pub or
    allowed_signers style)."""
    text = str(spec)
    if not text.startswith("ssh-ed25519 "):
        text = Path(spec).read_text()
    for line in text.splitlines():
        words = line.split()
        if "ssh-ed25519" in words:
            i = words.index("ssh-ed25519")
            if i + 1 < len(words):
                key = load_ssh_public_key(f"ssh-ed25519 {words[i + 1]}".encode())
                if isinstance(key, Ed25519PublicKey):
                    return key
    raise SignatureError(f"no ssh-ed25519 public key in {spec}")
