"""`cryptdb` command line: serve, shell, and the keystore / udf / backup tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from proxy.config import MAX_WORKERS, ConfigError, ProxyConfig, load_config

REPO = Path(__file__).resolve().parent.parent
DEV_STATE = REPO / ".state" / "dev"


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # every file we create is private from the moment it exists
    parser = argparse.ArgumentParser(prog="cryptdb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument(
        "--defaults-file", type=Path, help="my.cnf-style config ([client], [cryptdb])"
    )
    serve.add_argument("--dev", action="store_true", help="start a private dev MariaDB too")
    serve.add_argument("--listen", help="host:port to listen on (default 127.0.0.1:3307)")
    serve.add_argument("--log-level", default="INFO")
    serve.add_argument(
        "--workers", type=int, help="proxy processes sharing the listening socket (default 1)"
    )
    serve.set_defaults(func=_serve)

    from client.shell import add_subcommand as add_shell

    add_shell(sub)
    _optional_subcommands(sub)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"cryptdb: {e}", file=sys.stderr)
        return 2


def _optional_subcommands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Tool groups that live in their own packages."""
    udf = sub.add_parser("udf", help="manage the C UDFs on a backend server")
    udf_sub = udf.add_subparsers(dest="udf_command", required=True)
    install = udf_sub.add_parser("install", help="copy the UDF library and CREATE FUNCTION")
    install.add_argument("--defaults-file", type=Path, required=True, help="[client] credentials")
    install.add_argument("--plugin-dir", type=Path, help="the server's plugin dir as seen here")
    install.set_defaults(func=_udf_install)
    from proxy.leakage_cli import add_subcommand as add_leakage

    add_leakage(sub)
    from backup.cli import add_subcommands as add_backup
    from keystore.cli import add_subcommands as add_keystore

    add_keystore(sub)
    add_backup(sub)


def _udf_install(args: argparse.Namespace) -> int:
    from proxy.udfs import install_cli

    return install_cli(args.defaults_file, args.plugin_dir)


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from keystore.files import InsecurePermissions

    dev = None
    try:
        cfg, dev = _config(args)
        if cfg.workers == 1:
            return asyncio.run(_run(cfg, dev is not None))
        from proxy.workers import supervise

        def worker(sock: Any, rsa: Any, index: int) -> int:
            return asyncio.run(_run(cfg, False, sock=sock, rsa=rsa, worker=index))

        return supervise(cfg, worker, lambda port: _print_banner(cfg, port, dev is not None))
    except InsecurePermissions as e:
        print(f"cryptdb: refusing to start: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if dev is not None:
            dev.stop()


def _config(args: argparse.Namespace) -> tuple[ProxyConfig, Any]:
    """The configuration, and the dev MariaDB it points at (started here) with --dev."""
    from dataclasses import replace

    dev = None
    if args.dev:
        from keystore.files import private_dir
        from proxy.devbackend import DevBackend
        from proxy.tls import ensure_self_signed

        dev = DevBackend(DEV_STATE / "mariadb", port=3406)
        dev.start()
        cert, key = ensure_self_signed(DEV_STATE / "tls")
        keystore_dir = private_dir(DEV_STATE / "keystore")
        cfg = load_config(
            dev.service_cnf, tls_cert=cert, tls_key=key, keystore=keystore_dir / "keystore"
        )
    elif args.defaults_file:
        cfg = load_config(args.defaults_file)
    else:
        raise ConfigError("give --defaults-file PATH (backend and proxy settings) or --dev")
    if args.listen:
        host, _, port = args.listen.rpartition(":")
        cfg = replace(cfg, listen_host=host or cfg.listen_host, listen_port=int(port))
    if args.workers is not None:
        if not 1 <= args.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers must be a number from 1 to {MAX_WORKERS}")
        cfg = replace(cfg, workers=args.workers)
    return cfg, dev


async def _run(
    cfg: ProxyConfig, dev: bool, *, sock: Any = None, rsa: Any = None, worker: int = 0
) -> int:
    from proxy.server import ProxyServer
    from proxy.tls import server_context

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tls = server_context(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert and cfg.tls_key else None
    server = ProxyServer(cfg, tls, sock=sock, rsa=rsa, worker=worker)
    try:
        await server.start()
        if sock is None:
            _print_banner(cfg, server.port, dev)
        serving = asyncio.create_task(server.serve_forever())
        await stop.wait()
        serving.cancel()
    finally:
        await server.close()
    return 0


def _print_banner(cfg: ProxyConfig, port: int, dev: bool) -> None:
    host = cfg.listen_host
    workers = f", {cfg.workers} workers" if cfg.workers > 1 else ""
    lines = [
        f"cryptdb proxy listening on {host}:{port} (TLS {'on' if cfg.tls_cert else 'off'}"
        f"{workers})"
    ]
    if dev:
        lines += [
            f"dev MariaDB on {cfg.backend.host}:{cfg.backend.port} (data under {DEV_STATE})",
            "connect with:",
            f"  mariadb -h {host} -P {port} -u demo -p        (password: demo)",
            f"  .venv/bin/cryptdb shell -h {host} -P {port} -u demo",
            "Ctrl-C stops the proxy and the dev MariaDB.",
        ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
