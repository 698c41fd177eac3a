"""A/B of two source trees' proxies on one MariaDB: proxy CPU per statement and throughput.

    python -m benchmarks.ab --base /tmp/base-tree [--rounds 5] [--cells point-enc-1,mix-enc-4]

Throughput on a shared 2-core machine swings by ±10 % from run to run; the proxy process's own
CPU time (utime + stime from /proc/<pid>/stat) divided by the statements it served moves far
less, so that is the primary figure. Both proxies run at once on the same keystore and tables
and the cells alternate A, B, B, A ... so drift hits both; medians over the rounds are printed.
Workloads are bench_encrypted's (sysbench oltp_read_write; `mix` is one 20-statement
transaction).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_encrypted import _connect, load, make_databases, measure
from proxy.devbackend import DevBackend

HERE = Path(__file__).resolve().parent.parent
STATEMENTS = {"point": 1, "mix": 20, "write": 1}  # client statements per unit of work
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def spawn(
    tree: Path, backend: DevBackend, state: Path, keystore: Path
) -> tuple[subprocess.Popen[bytes], int]:
    sys.path.insert(0, str(HERE))
    from tests.conftest import LOW_KDF, start_proxy

    p = start_proxy(backend, state, extra=f"keystore = {keystore}\n" + LOW_KDF)
    p.process.terminate()  # only wanted its config; now start the tree's own code
    p.process.wait()
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve", "--defaults-file", str(p.config)],
        cwd=tree, env=env, stdin=subprocess.DEVNULL,
        stdout=open(state / "ab.log", "ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            _connect(p.port, "plain").close()
            return proc, p.port
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((state / "ab.log").read_text()) from None
            time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="the baseline source tree")
    ap.add_argument("--new", type=Path, default=HERE)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--cells", default="point-plain-1,point-enc-1,point-plain-4,point-enc-4,"
                    "mix-plain-1,mix-enc-1,mix-plain-4,mix-enc-4")  # fmt: skip
    args = ap.parse_args()
    cells = [(k, db, int(n)) for k, db, n in (c.split("-") for c in args.cells.split(","))]
    with tempfile.TemporaryDirectory() as tmp:
        backend = DevBackend(Path(tmp) / "db")
        backend.start()
        procs = []
        try:
            ks = make_databases(backend, Path(tmp))
            trees = {"A": args.base.resolve(), "B": args.new.resolve()}
            ports = {}
            for name, tree in trees.items():
                (Path(tmp) / name).mkdir(mode=0o700)
                proc, ports[name] = spawn(tree, backend, Path(tmp) / name, ks / "keystore")
                procs.append(proc)
            pids = {name: p.pid for name, p in zip(trees, procs, strict=True)}
            load(_connect(backend.port, "plain"))
            load(_connect(ports["B"], "enc"))
            for name in trees:  # warm-up: peels, plan caches
                measure(ports[name], "enc", "mix", 1, seconds=1.0)
            cpu: dict[tuple[str, tuple[str, str, int]], list[float]] = {}
            rate: dict[tuple[str, tuple[str, str, int]], list[float]] = {}
            direct: dict[tuple[str, int], list[float]] = {}
            for r in range(args.rounds):
                order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
                for cell in cells:
                    kind, db, conns = cell
                    direct.setdefault((kind, conns), []).append(
                        measure(backend.port, "plain", kind, conns, args.seconds)
                    )
                    for name in order:
                        before = cpu_seconds(pids[name])
                        per_s = measure(ports[name], db, kind, conns, args.seconds)
                        used = cpu_seconds(pids[name]) - before
                        statements = per_s * args.seconds * STATEMENTS[kind]
                        cpu.setdefault((name, cell), []).append(used / statements * 1e6)
                        rate.setdefault((name, cell), []).append(per_s)
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
            med = statistics.median
            print(f"A = {trees['A']}\nB = {trees['B']}\nmedians of {args.rounds} rounds, "
                  f"{args.seconds:g} s cells")  # fmt: skip
            print(f"{'cell':<14} {'µs/stmt A':>9} {'B':>7} {'B/A':>5}  {'rate A':>7} {'B':>7} "
                  f"{'B/A':>5}  {'A/dir':>5} {'B/dir':>5}")  # fmt: skip
            for cell in cells:
                ca, cb = med(cpu[("A", cell)]), med(cpu[("B", cell)])
                ra, rb = med(rate[("A", cell)]), med(rate[("B", cell)])
                d = med(direct[(cell[0], cell[2])])
                print(f"{'-'.join(map(str, cell)):<14} {ca:>9.1f} {cb:>7.1f} {cb / ca:>5.2f}  "
                      f"{ra:>7.0f} {rb:>7.0f} {rb / ra:>5.2f}  {ra / d:>5.2f} {rb / d:>5.2f}",
                      flush=True)  # fmt: skip
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=20)
            backend.stop()


if __name__ == "__main__":
    main()
