"""Keystore unlock costs: cold (argon2id at the default cost) vs cached, plus refresh and saves.

Run: `.venv/bin/python -m benchmarks keystore`. Target (issue 4): a reconnect (cached unlock)
costs <= 5 ms p50.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from keystore import DEFAULT_KDF, AccessDenied, Keystore, UnlockCache

COLD_RUNS = 7
WARM_RUNS = 2000


def _measure(fn: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)


def _report(name: str, ms: list[float]) -> None:
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:<44} p50 {statistics.median(ms):9.3f} ms   p99 {p99:9.3f} ms   (n={len(ms)})")


def main() -> None:
    kdf = DEFAULT_KDF
    print(f"argon2id m={kdf.memory_kib} KiB t={kdf.time_cost} p={kdf.parallelism}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = UnlockCache()
        ks = Keystore(Path(tmp) / "ks" / "keystore", cache=cache)
        master = ks.initialize("alice", "bench password")
        ks.save_metadata(master, {"tables": {f"t{i}": {"anon": f"x{i}"} for i in range(200)}}, 0)

        def cold() -> None:
            cache.clear()
            ks.unlock("alice", "bench password")

        _report("unlock, cold (argon2id + AES-GCM)", _measure(cold, COLD_RUNS))
        ks.unlock("alice", "bench password")
        _report("unlock, cached (refresh + HMAC verifier)",
                _measure(lambda: ks.unlock("alice", "bench password"), WARM_RUNS))
        _report("refresh, nothing changed", _measure(ks.refresh, WARM_RUNS))

        def denied(principal: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    ks.unlock(principal, "wrong")
                except AccessDenied:
                    pass
            return run

        _report("unlock, wrong password (never cached)", _measure(denied("alice"), COLD_RUNS))
        _report("unlock, unknown principal (dummy argon2)", _measure(denied("nobody"), COLD_RUNS))
        state = {"v": ks.metadata_version}

        def save() -> None:
            v, meta = ks.load_metadata(master)
            state["v"] = ks.save_metadata(master, meta, v)

        _report("load + save metadata (200 tables, fsync)", _measure(save, 50))


if __name__ == "__main__":
    main()
