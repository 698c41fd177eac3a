"""A private MariaDB server for development and tests.

One machinery serves `cryptdb serve --dev` and the pytest fixtures: a data dir of its own,
a private port and socket, `--no-defaults` (Debian's config loads compression plugins that
our plugin dir lacks, and the server would abort) and `--plugin-dir` pointing at udf/build.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from keystore.files import private_dir, write_private
from proxy.udfs import SONAME, install_udfs

REPO = Path(__file__).resolve().parent.parent
UDF_DIR = REPO / "udf" / "build"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 - documented dev-mode account, never used outside --dev
SERVICE_USER = "cryptdb_service"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find(binary: str) -> str:
    for candidate in (shutil.which(binary), f"/usr/sbin/{binary}", f"/usr/bin/{binary}"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError(f"{binary} not found: run `make deps` (installs mariadb-server)")


@dataclass
class DevBackend:
    """A MariaDB server living entirely under `base` (data, socket, logs, credentials)."""

    base: Path
    port: int = 0
    plugin_dir: Path = UDF_DIR
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.base = Path(self.base).resolve()
        if not self.port:
            self.port = free_port()

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> Path:
        return self.base / "mysqld.sock"

    @property
    def service_cnf(self) -> Path:
        """my.cnf-style file with the proxy's service credentials (0600)."""
        return self.base / "service.cnf"

    @property
    def log(self) -> Path:
        return self.base / "mariadbd.log"

    @property
    def pid_file(self) -> Path:
        return self.base / "mariadbd.pid"

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def start(self, timeout: float = 60.0) -> None:
        private_dir(self.base)
        if (pid := self._running_pid()) is not None:
            raise RuntimeError(
                f"a MariaDB server (pid {pid}) already runs on {self.datadir}; stop it first"
            )
        if not (self.datadir / "mysql").is_dir():
            self._install()
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        args = [
            _find("mariadbd"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--plugin-dir={self.plugin_dir}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log}",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=500",
            "--max-allowed-packet=64M",
            "--innodb-buffer-pool-size=256M",
            "--innodb-log-file-size=64M",
            "--innodb-flush-log-at-trx-commit=2",
            "--skip-name-resolve",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"mariadbd exited with {code}; see {self.log}")
            try:
                self.admin().close()
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mariadbd did not come up; see {self.log}") from None
                time.sleep(0.1)
        self._provision()

    def _install(self) -> None:
        args = [
            _find("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            # Its own words say why (a datadir in use, a full disk); it prints no secret.
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
            raise RuntimeError(
                f"mariadb-install-db failed ({done.returncode}): " + " | ".join(tail)
            )

    def admin(self) -> pymysql.Connection:
        """Superuser connection over the private socket (unix_socket authentication)."""
        user = "root" if os.geteuid() == 0 else getpass.getuser()
        return pymysql.connect(
            unix_socket=str(self.socket), user=user, autocommit=True, connect_timeout=5
        )

    def _provision(self) -> None:
        """The dev accounts: `demo`/`demo` for people, a service account for the proxy."""
        service_password = secrets.token_urlsafe(24)
        with self.admin() as conn, conn.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):
                cur.execute(
                    f"CREATE USER IF NOT EXISTS '{DEMO_USER}'@'{host}' IDENTIFIED BY %s",
                    (DEMO_PASSWORD,),
                )
                cur.execute(f"GRANT ALL ON *.* TO '{DEMO_USER}'@'{host}'")
                cur.execute(
                    f"CREATE OR REPLACE USER '{SERVICE_USER}'@'{host}' IDENTIFIED BY %s",
                    (service_password,),
                )
                cur.execute(f"GRANT ALL ON *.* TO '{SERVICE_USER}'@'{host}' WITH GRANT OPTION")
            if (self.plugin_dir / SONAME).exists():  # `make udf` builds it
                install_udfs(conn)
        write_private(
            self.service_cnf,
            "[client]\n"
            "host=127.0.0.1\n"
            f"port={self.port}\n"
            f"socket={self.socket}\n"
            f"user={SERVICE_USER}\n"
            f"password={service_password}\n",
        )

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> DevBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
