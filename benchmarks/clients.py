"""Client processes for the throughput benchmarks: one process per connection, so the
client's GIL is not what is measured."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from typing import Any


def _run(target: Callable[..., float], args: tuple[Any, ...], out: mp.Queue) -> None:
    try:
        out.put(target(*args))
    except Exception as e:  # the parent must not wait forever on a dead client
        out.put(e)


def run_clients(target: Callable[..., float], per_client: list[tuple[Any, ...]]) -> float:
    """Run `target(*args)` in one process per args tuple; the sum of the rates they return."""
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_run, args=(target, args, out)) for args in per_client]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    for r in results:
        if isinstance(r, Exception):
            raise r
    return float(sum(results))
