"""Proxy configuration from a my.cnf-style file.

    [client]            # the backend, read like any MySQL client's option file
    host = 127.0.0.1
    port = 3306
    user = cryptdb_service      # service account (health checks, server version)
    password = ...

    [cryptdb]
    listen = 127.0.0.1:3307
    tls-cert = /path/cert.pem
    tls-key = /path/key.pem     # must be 0600
    keystore = /path/keystore
    audit-log = /path/audit.log # onion adjustments (default: <keystore>.audit)
    workers = 2                 # proxy processes sharing the listening socket (default 1)

Passwords are never taken from argv; a file holding one must not be readable by others.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from keystore.files import check_private
from proxy.backend import BackendAddress


class ConfigError(Exception):
    pass


@dataclass(frozen=True, kw_only=True)
class ServiceCredentials:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"ServiceCredentials(user={self.user!r})"


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 3307
    backend: BackendAddress = BackendAddress()
    service: ServiceCredentials | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    keystore: Path | None = None
    audit_log: Path | None = None  # onion adjustments, JSON lines; default <keystore>.audit
    # argon2id cost for new slots as "memory_kib,time_cost,parallelism" (tests lower it)
    keystore_kdf: tuple[int, int, int] | None = None
    max_connections: int = 1000  # per worker
    handshake_timeout: float = 10.0  # MariaDB's connect_timeout default
    # Processes accepting on one socket: one event loop is one core, and the workers already
    # coordinate like separate proxies on one keystore (DDL flock, peel locks, write guards).
    workers: int = 1


def read_option_file(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None, strict=False)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    parser.read_string(text, source=str(path))
    for section in parser.sections():
        if parser.has_option(section, "password"):
            check_private(Path(path))
    return parser


def load_config(path: Path, **overrides: object) -> ProxyConfig:
    p = read_option_file(path)
    client = p["client"] if p.has_section("client") else {}
    own = p["cryptdb"] if p.has_section("cryptdb") else {}
    base = Path(path).resolve().parent

    def opt_path(key: str) -> Path | None:
        value = own.get(key)
        return (base / value) if value else None

    host, _, port = (own.get("listen") or "127.0.0.1:3307").rpartition(":")
    service = None
    if client.get("user"):
        service = ServiceCredentials(user=client["user"], password=client.get("password") or "")
    cfg = ProxyConfig(
        listen_host=host or "127.0.0.1",
        listen_port=int(port),
        backend=BackendAddress(
            host=client.get("host") or "127.0.0.1",
            port=int(client.get("port") or 3306),
            unix_socket=client.get("socket") or None,
        ),
        service=service,
        tls_cert=opt_path("tls-cert"),
        tls_key=opt_path("tls-key"),
        keystore=opt_path("keystore"),
        audit_log=opt_path("audit-log"),
        keystore_kdf=_kdf(own.get("keystore-kdf")),
        workers=_workers(own.get("workers")),
    )
    if cfg.tls_key is not None:
        check_private(cfg.tls_key)
    return cfg if not overrides else _replace(cfg, overrides)


def _kdf(value: str | None) -> tuple[int, int, int] | None:
    if not value:
        return None
    try:
        m, t, p = (int(x) for x in value.split(","))
    except ValueError:
        raise ConfigError("keystore-kdf must be memory_kib,time_cost,parallelism") from None
    return m, t, p


MAX_WORKERS = 64


def _workers(value: str | None) -> int:
    try:
        n = int(value) if value else 1
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_WORKERS:
        raise ConfigError(f"workers must be a number from 1 to {MAX_WORKERS}")
    return n


def _replace(cfg: ProxyConfig, overrides: dict[str, object]) -> ProxyConfig:
    from dataclasses import replace

    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
