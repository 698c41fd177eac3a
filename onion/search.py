"""SEARCH onion: keyword search over the words of a text value (SWP-style, per-word tags).

Stored value: 0x01 || entry*, one 24-byte entry per distinct word, in random order:
    token = HMAC-SHA256(k_search, normalized word)            (32 bytes)
    entry = salt (8 random bytes) || HMAC-SHA256(token, salt)[:16]
A query for word w sends token(w); the server (UDF cryptdb_search_match) tests every entry.

Leaks: the number of distinct words of each value (its length), and, for tokens the proxy
has sent, which values contain that word. Untested entries reveal nothing about their words
(fresh salts make equal words in different rows unlinkable until their token is queried).
There is no decryption: the Eq or Ord onion of the same column returns the text.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Sequence

from onion.errors import InvalidCiphertext

VERSION = 0x01
KEY_SIZE = 32
TOKEN_SIZE = 32
SALT_SIZE = 8
TAG_SIZE = 16
ENTRY_SIZE = SALT_SIZE + TAG_SIZE

# A word is a maximal run of Unicode letters and digits (\w without the underscore).
_WORD = re.compile(r"[^\W_]+")


def normalize_words(text: str) -> list[str]:
    """The distinct normalized words of `text`, in order of first appearance.

    NFC, then full case folding, then NFC again (casefold can denormalize), then split on
    anything that is not a letter or digit. So "Straße" and "STRASSE" are one word."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return list(dict.fromkeys(_WORD.findall(folded)))


class Search:
    """SEARCH under one column key; reuse one instance per key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("SEARCH key must be 32 bytes")
        self._key = bytes(key)

    def _word_token(self, word: str) -> bytes:
        return hmac.digest(self._key, word.encode("utf-8"), hashlib.sha256)

    def token(self, word: str) -> bytes:
        """The 32-byte query token of one word; `word` must normalize to exactly one word."""
        words = normalize_words(word)
        if len(words) != 1:
            raise ValueError("a search token names exactly one word")
        return self._word_token(words[0])

    def encrypt(self, text: str) -> bytes:
        words = normalize_words(text)
        salts = [secrets.token_bytes(SALT_SIZE) for _ in words]
        order = list(range(len(words)))
        secrets.SystemRandom().shuffle(order)  # entry order must not reveal word order
        return self._encrypt_from_parts([words[i] for i in order], [salts[i] for i in order])

    def _encrypt_from_parts(self, words: Sequence[str], salts: Sequence[bytes]) -> bytes:
        """Entries for already-normalized `words` with the given salts, in the given order."""
        out = bytearray([VERSION])
        for word, salt in zip(words, salts, strict=True):
            if len(salt) != SALT_SIZE:
                raise ValueError("salt must be 8 bytes")
            tag = hmac.digest(self._word_token(word), salt, hashlib.sha256)[:TAG_SIZE]
            out += salt + tag
        return bytes(out)


def entry_count(stored: bytes) -> int:
    """Number of entries (distinct words) of a stored value; InvalidCiphertext if malformed."""
    if len(stored) < 1 or stored[0] != VERSION or (len(stored) - 1) % ENTRY_SIZE:
        raise InvalidCiphertext()
    return (len(stored) - 1) // ENTRY_SIZE


def match(stored: bytes, token: bytes) -> bool:
    """What the UDF computes: does some entry's tag equal HMAC-SHA256(token, salt)[:16]?"""
    if len(token) != TOKEN_SIZE:
        raise ValueError("token must be 32 bytes")
    found = False
    for i in range(entry_count(stored)):
        off = 1 + i * ENTRY_SIZE
        salt, tag = stored[off : off + SALT_SIZE], stored[off + SALT_SIZE : off + ENTRY_SIZE]
        expect = hmac.digest(token, salt, hashlib.sha256)[:TAG_SIZE]
        found |= hmac.compare_digest(expect, tag)  # no early exit, as in the UDF
    return found
