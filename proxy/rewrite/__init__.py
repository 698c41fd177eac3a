"""Encrypted query processing, sans I/O: SQL text in, a plan out (proxy.rewrite.plan).

    from proxy.rewrite import Crypto, Rewriter, Execute, PassThrough, PeelFirst, ReadModifyWrite
    rewriter = Rewriter()                               # one per process: the shape cache
    crypto = Crypto(KeyCache(master_key_bytes))          # one per thread
    plan = rewriter.plan(sql, schema=schema, crypto=crypto, database=current_db)

Refusals are proxy.rewrite.errors.Refusal (a proxy.protocol.errors.MysqlError): send them as
an ERR packet, never forward the statement.
"""

from proxy.rewrite.context import Crypto
from proxy.rewrite.decode import Decoder, OutCol
from proxy.rewrite.dispatch import Rewriter
from proxy.rewrite.errors import PolicyRefusal, Refusal, Unsupported
from proxy.rewrite.plan import (
    Derived,
    Evaluate,
    Execute,
    PassThrough,
    Peel,
    PeelFirst,
    Plan,
    ReadModifyWrite,
    SubqueriesFirst,
    UnionOf,
)

__all__ = [
    "Crypto",
    "Decoder",
    "Derived",
    "Evaluate",
    "Execute",
    "OutCol",
    "PassThrough",
    "Peel",
    "PeelFirst",
    "Plan",
    "PolicyRefusal",
    "ReadModifyWrite",
    "Refusal",
    "Rewriter",
    "SubqueriesFirst",
    "UnionOf",
    "Unsupported",
]
