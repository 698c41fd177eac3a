"""Recognising a statement that changes the current user's own password.

When a user's keystore slot is wrapped under their login password, changing that password
on the backend alone would lock them out of their keys, so the proxy re-wraps the slot in
the same step. Recognition works on sqlglot's MySQL tokens (sqlglot parses ALTER USER only
as an opaque command), after a cheap byte test that keeps other statements off this path.
"""

from __future__ import annotations

from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

_TOKENIZER = MySQL().tokenizer_class()


def mentions_password(sql: bytes) -> bool:
    low = sql.lower()
    return b"identified" in low or b"password" in low


def own_new_password(sql: str, username: str) -> str | None:
    """The new password if `sql` sets the session user's own password, else None."""
    try:
        tokens = [t for t in _TOKENIZER.tokenize(sql) if t.token_type != TokenType.SEMICOLON]
    except TokenError:
        return None
    words = [_word(t) for t in tokens]
    # ALTER USER CURRENT_USER() IDENTIFIED BY 'new'
    if words[:6] == ["ALTER", "USER", "CURRENT_USER", "(", ")", "IDENTIFIED"]:
        return _by_string(tokens[6:])
    # ALTER USER 'name'[@'host'] IDENTIFIED BY 'new'
    if words[:2] == ["ALTER", "USER"] and len(tokens) > 2 and tokens[2].text == username:
        rest = tokens[3:]
        if len(rest) >= 2 and rest[0].text == "@":
            rest = rest[2:]
        if rest and _word(rest[0]) == "IDENTIFIED":
            return _by_string(rest[1:])
    # SET PASSWORD = 'new'   |   SET PASSWORD = PASSWORD('new')
    if words[:3] == ["SET", "PASSWORD", "="]:
        rest = tokens[3:]
        if len(rest) == 1 and rest[0].token_type == TokenType.STRING:
            return rest[0].text
        if [_word(t) for t in rest[:2]] == ["PASSWORD", "("] and len(rest) == 4:
            if rest[2].token_type == TokenType.STRING and rest[3].text == ")":
                return rest[2].text
    return None


def _word(t: Token) -> str:
    return t.text if t.token_type == TokenType.STRING else t.text.upper()


def _by_string(tokens: list[Token]) -> str | None:
    if len(tokens) == 2 and _word(tokens[0]) == "BY" and tokens[1].token_type == TokenType.STRING:
        return tokens[1].text
    return None
