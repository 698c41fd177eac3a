"""The order MariaDB itself sees on OPE ciphertexts (BINARY columns) is the plaintext order."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onion import ColumnCrypto, ColumnType, KeyCache, Kind

INT64 = st.integers(-(2**63), 2**63 - 1)
CRYPTO = ColumnCrypto.from_keys(
    KeyCache(os.urandom(32)), ColumnType(kind=Kind.INT), 1, 1, 1, onions=("eq", "ord")
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(INT64, min_size=2, max_size=40, unique=True))
def test_order_by_ciphertext_is_plaintext_order(direct, values: list[int]) -> None:
    width = CRYPTO.ope_width
    with direct.cursor() as cur:
        cur.execute(f"CREATE OR REPLACE TABLE o (v BIGINT, c BINARY({width}), KEY (c))")
        cur.executemany("INSERT INTO o VALUES (%s, %s)", [(v, CRYPTO.ope(v)) for v in values])
        cur.execute("SELECT v FROM o ORDER BY c")
        assert [r[0] for r in cur.fetchall()] == sorted(values)
        lo, hi = sorted(values)[0], sorted(values)[-1]
        cur.execute(
            "SELECT COUNT(*) FROM o WHERE c BETWEEN %s AND %s", (CRYPTO.ope(lo), CRYPTO.ope(hi))
        )
        assert cur.fetchone() == (len(values),)
