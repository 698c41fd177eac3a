import pytest

from proxy.password_change import mentions_password, own_new_password


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER USER CURRENT_USER() IDENTIFIED BY 'n3w'", "n3w"),
        ("alter user current_user() identified by 'it''s'", "it's"),
        ("ALTER USER 'demo'@'%' IDENTIFIED BY 'x'", "x"),
        ("ALTER USER demo IDENTIFIED BY 'x';", "x"),
        ("SET PASSWORD = 'p'", "p"),
        ("SET PASSWORD = PASSWORD('p')", "p"),
        ("ALTER USER 'other'@'%' IDENTIFIED BY 'x'", None),
        ("SET PASSWORD FOR 'other'@'%' = 'x'", None),
        ("SELECT 'IDENTIFIED BY'", None),
        ("ALTER USER CURRENT_USER() IDENTIFIED VIA ed25519", None),
    ],
)
def test_own_new_password(sql: str, expected: str | None) -> None:
    assert own_new_password(sql, "demo") == expected
    assert mentions_password(sql.encode())
