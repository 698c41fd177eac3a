"""Escrow of the master key to an age X25519 recipient (seed 000: the user keeps the private key
offline; the server only ever sees the public one).

The output is a plain binary age file, so the stock tool can open it: `age -d -i key.txt`.
Its plaintext is `ESCROW_MAGIC || deployment id (16) || master key (32)`; the deployment id lets
`recover` refuse an escrow file made for another keystore before touching any slot.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyrage

from keystore.crypto import MASTER_KEY_BYTES, MasterKey
from keystore.errors import EscrowError
from keystore.files import check_private
from keystore.format import DEPLOYMENT_ID_BYTES

ESCROW_MAGIC = b"cryptdb-keystore-escrow/v1\n"
_LEN = len(ESCROW_MAGIC) + DEPLOYMENT_ID_BYTES + MASTER_KEY_BYTES


def parse_recipient(recipient: str) -> pyrage.x25519.Recipient:
    try:
        return pyrage.x25519.Recipient.from_str(recipient.strip())
    except Exception as e:  # pyrage.RecipientError and friends: the input is public, say why
        raise EscrowError(f"not an age X25519 recipient (age1...): {e}") from None


def seal(master: MasterKey, deployment_id: bytes, recipient: str) -> bytes:
    plaintext = ESCROW_MAGIC + deployment_id + master.raw
    return bytes(pyrage.encrypt(plaintext, [parse_recipient(recipient)]))


def load_identities(identity_file: Path) -> list[pyrage.x25519.Identity]:
    """Read an age-keygen identity file (comments, then AGE-SECRET-KEY-1... lines).

    Like any private key file it must not be readable by other users.
    """
    identity_file = Path(identity_file)
    try:
        fd = os.open(identity_file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise EscrowError(f"cannot open identity file {identity_file}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        check_private(identity_file, os.fstat(f.fileno()))
        text = f.read().decode("utf-8", errors="replace")
    identities = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except Exception:
            # never echo the line: it is a secret key, possibly mistyped
            raise EscrowError(f"{identity_file}:{n}: not an age X25519 identity") from None
    if not identities:
        raise EscrowError(f"{identity_file}: no AGE-SECRET-KEY-1 identity found")
    return identities


def open_escrow(
    escrowed: bytes, identities: list[pyrage.x25519.Identity]
) -> tuple[bytes, MasterKey]:
    """(deployment id, master key) from an escrow file, or EscrowError."""
    try:
        plaintext = bytes(pyrage.decrypt(escrowed, identities))
    except Exception:
        raise EscrowError("cannot decrypt the escrow file with this identity") from None
    if len(plaintext) != _LEN or not plaintext.startswith(ESCROW_MAGIC):
        raise EscrowError("the decrypted escrow file is not a cryptdb keystore escrow")
    body = plaintext[len(ESCROW_MAGIC) :]
    return body[:DEPLOYMENT_ID_BYTES], MasterKey(body[DEPLOYMENT_ID_BYTES:])
