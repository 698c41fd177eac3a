"""Onion encryption for the proxy: pure crypto, no I/O, no SQL.

Formats and what each layer reveals: docs/onion-format.md. The proxy's entry points:

    keys    = KeyCache(master_key)                       # HKDF-derived layer keys, in memory
    ctype   = ColumnType(kind=Kind.DECIMAL, precision=10, scale=2)
    column  = ColumnCrypto.from_keys(keys, ctype, db_id, table_id, column_id,
                                     onions=("eq", "ord", "add"), join_group=None, hom=paillier)
    iv      = new_iv()
    onions  = column.encrypt(value, iv)        # Onions(eq=..., ord=..., add=..., search=...)
    column.det(v) / column.ope(v) / column.search_token(w)  # query constants per layer
    column.eq_decrypt(ct, iv) / column.det_decrypt(ct) / column.hom_decrypt(sum_ct)
"""

from onion.column import ColumnCrypto, Onions, new_iv, ope_domain
from onion.encoding import ColumnType, Kind
from onion.errors import InvalidCiphertext
from onion.hom import PaillierPrivateKey, PaillierPublicKey
from onion.keys import KeyCache, derive_join_key, derive_layer_key, join_label, layer_label

__all__ = [
    "ColumnCrypto",
    "ColumnType",
    "InvalidCiphertext",
    "KeyCache",
    "Kind",
    "Onions",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "derive_join_key",
    "derive_layer_key",
    "join_label",
    "layer_label",
    "new_iv",
    "ope_domain",
]
