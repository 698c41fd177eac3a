"""onion.search: word normalization, tokens, and matching exactly the containing values."""

from __future__ import annotations

import os

import pytest

from onion import search
from onion.errors import InvalidCiphertext


def test_normalize_words() -> None:
    assert search.normalize_words("The quick, the QUICK!") == ["the", "quick"]
    assert search.normalize_words("Straße STRASSE") == ["strasse"]
    assert search.normalize_words("a_b c-d e.f") == ["a", "b", "c", "d", "e", "f"]
    assert search.normalize_words("cafe\u0301 café") == ["café"]  # NFC
    assert search.normalize_words("😀 東京 x42") == ["東京", "x42"]
    assert search.normalize_words("  ... ") == []


def test_token_names_one_word() -> None:
    s = search.Search(os.urandom(32))
    assert s.token("Fox") == s.token("fox") == s.token(" FOX! ")
    for bad in ("", "two words", "..."):
        with pytest.raises(ValueError):
            s.token(bad)


CORPUS = [
    "The quick brown fox",
    "jumps over the lazy dog",
    "",
    "fox fox fox",
    "foxes are not a fox? yes they are",
    "FOXGLOVE",
    "naïve café 東京",
]


@pytest.mark.parametrize("word", ["fox", "the", "dog", "café", "東京", "cat", "foxes", "a"])
def test_matches_exactly_the_containing_values(word: str) -> None:
    s = search.Search(os.urandom(32))
    stored = [s.encrypt(text) for text in CORPUS]
    token = s.token(word)
    got = [search.match(v, token) for v in stored]
    assert got == [search.normalize_words(word)[0] in search.normalize_words(t) for t in CORPUS]


def test_stored_format() -> None:
    s = search.Search(os.urandom(32))
    a, b = s.encrypt("one two two three"), s.encrypt("one two two three")
    assert a[0] == 0x01 and len(a) == 1 + 3 * 24 and search.entry_count(a) == 3
    assert a != b  # fresh salts: equal texts are unlinkable until a token is tested
    assert len({a[1 + 24 * i : 9 + 24 * i] for i in range(3)}) == 3
    assert s.encrypt("") == b"\x01"


def test_malformed_stored_values() -> None:
    token = search.Search(os.urandom(32)).token("x")
    for bad in (b"", b"\x02", b"\x01" + bytes(23)):
        with pytest.raises(InvalidCiphertext):
            search.match(bad, token)
    with pytest.raises(ValueError):
        search.match(b"\x01", token[:31])
