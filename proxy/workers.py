"""`workers = N`: N proxy processes accepting on one listening socket, supervised.

One asyncio event loop runs on one core, and an encrypting proxy is CPU-bound (decryption,
planning, packet codecs), so a busy proxy needs processes, not threads. Workers share nothing
in memory: each is a proxy of its own on the shared keystore, coordinated as separate proxies
already are (the DDL flock, the backend's peel locks, the writes' layer guards). The parent
binds the socket and makes the RSA key pair before forking (a client may cache the public key
and reconnect to another worker), then only waits: a worker that dies is replaced, and
SIGINT / SIGTERM stop them all.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from proxy import auth
from proxy.config import ProxyConfig

log = logging.getLogger(__name__)
# A worker that keeps dying at start-up (a bad certificate, the port gone) is not restarted
# for ever: after this many quick deaths in a row the proxy stops.
QUICK_DEATH = 2.0  # seconds
MAX_QUICK_DEATHS = 5

Worker = Callable[[socket.socket, auth.RsaKeyPair, int], int]


def supervise(cfg: ProxyConfig, run: Worker, banner: Callable[[int], None]) -> int:
    sock = socket.create_server((cfg.listen_host, cfg.listen_port), backlog=1024)
    sock.setblocking(False)
    rsa = auth.RsaKeyPair()
    children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, start time)
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for i in range(cfg.workers):
        children[_spawn(sock, rsa, i, run)] = (i, time.monotonic())
    banner(int(sock.getsockname()[1]))
    quick = 0
    try:
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            entry = children.pop(pid, None)
            if entry is None or stopping:
                continue
            index, started = entry
            quick = quick + 1 if time.monotonic() - started < QUICK_DEATH else 0
            log.error("worker %d exited with %s", index, os.waitstatus_to_exitcode(status))
            if quick >= MAX_QUICK_DEATHS:
                log.error("workers keep dying at start-up; stopping the proxy")
                stop(signal.SIGTERM, None)
                continue
            children[_spawn(sock, rsa, index, run)] = (index, time.monotonic())
    finally:
        sock.close()
    return 1 if quick >= MAX_QUICK_DEATHS else 0


def _spawn(sock: socket.socket, rsa: auth.RsaKeyPair, index: int, run: Worker) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = run(sock, rsa, index)
    except KeyboardInterrupt:
        code = 0
    except BaseException as e:  # never back into the parent's code
        log.error("worker %d failed: %s", index, type(e).__name__)
    finally:
        logging.shutdown()
        os._exit(code)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
