"""Clients that speak HandshakeResponse42: a Python helper and `cryptdb shell`.

    import client
    conn = client.connect("127.0.0.1", 3307, "demo", "demo", "mydb", cryptdb_key=key)
    conn = await client.connect_async(..., cryptdb_key=key)   # aiomysql

See docs/client.md. Imports are lazy so that `cryptdb serve` does not load client drivers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from client.aio import AsyncHR42Connection, connect_async
    from client.connection import HR42Connection, connect

__all__ = ["AsyncHR42Connection", "HR42Connection", "connect", "connect_async"]

_WHERE = {
    "connect": "client.connection",
    "HR42Connection": "client.connection",
    "connect_async": "client.aio",
    "AsyncHR42Connection": "client.aio",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
