"""The C UDFs in udf/: their names and SQL signatures, and installing them on a server.

The server loads the shared library from its @@plugin_dir at CREATE FUNCTION time and keeps
it mapped until every function from it is dropped. So replacing the library means: write the
new file under a fresh inode (rename, never rewrite in place), DROP the functions, CREATE
them again. `install_udfs` creates what is missing; `install_cli` also copies the library.
"""

from __future__ import annotations

import filecmp
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
UDF_SRC = REPO / "udf"
SONAME = "cryptdb_udf.so"
LIBRARY = UDF_SRC / "build" / SONAME

ER_UDF_EXISTS = 1125  # "Function '%s' already exists"
ER_SP_DOES_NOT_EXIST = 1305  # DROP FUNCTION of an unknown function


@dataclass(frozen=True)
class Udf:
    name: str
    returns: str  # STRING | INTEGER | REAL
    aggregate: bool = False
    signature: str = ""  # documentation only

    @property
    def create_sql(self) -> str:
        kind = "AGGREGATE FUNCTION" if self.aggregate else "FUNCTION"
        return f"CREATE {kind} {self.name} RETURNS {self.returns} SONAME '{SONAME}'"

    @property
    def mysql_func_row(self) -> tuple[str, int, str, str]:
        """The row mysql.func holds for this UDF: (name, ret, dl, type)."""
        ret = {"STRING": 0, "REAL": 1, "INTEGER": 2}[self.returns]
        return (self.name, ret, SONAME, "aggregate" if self.aggregate else "function")


UDFS: tuple[Udf, ...] = (
    Udf("cryptdb_rnd_decrypt", "STRING", signature="(ct BLOB, key BINARY(32), iv BINARY(16))"),
    Udf("cryptdb_hom_sum", "STRING", aggregate=True, signature="(ct BLOB, n2 BLOB)"),
    Udf("cryptdb_hom_add", "STRING", signature="(a BLOB, b BLOB, n2 BLOB)"),
    Udf("cryptdb_search_match", "INTEGER", signature="(stored BLOB, token BINARY(32))"),
)


class Cursor(Protocol):
    def execute(self, query: str, args: Any = ...) -> Any: ...
    def fetchall(self) -> Any: ...
    def close(self) -> Any: ...


class Connection(Protocol):
    def cursor(self) -> Any: ...


def _errno(exc: Exception) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _installed(conn: Connection) -> dict[str, tuple[str, int, str, str]] | None:
    """Our rows of mysql.func, or None when the table is not readable."""
    names = [u.name for u in UDFS]
    cur = conn.cursor()
    try:
        cur.execute(
            "SELECT name, ret, dl, type FROM mysql.func WHERE name IN ("
            + ", ".join(["%s"] * len(names))
            + ")",
            names,
        )
        rows = cur.fetchall()
    except Exception:  # no privilege or no such table: fall back to trying CREATE
        return None
    finally:
        cur.close()
    out: dict[str, tuple[str, int, str, str]] = {}
    for name, ret, dl, kind in rows:
        name = name.decode() if isinstance(name, bytes) else name
        dl = dl.decode() if isinstance(dl, bytes) else dl
        out[name] = (name, int(ret), dl, kind)
    return out


def drop_udfs(conn: Connection) -> None:
    """Drops our functions (the server unloads the library once none is left)."""
    cur = conn.cursor()
    try:
        for udf in UDFS:
            try:
                cur.execute(f"DROP FUNCTION {udf.name}")
            except Exception as exc:
                if _errno(exc) != ER_SP_DOES_NOT_EXIST:
                    raise
    finally:
        cur.close()


def install_udfs(conn: Connection, *, replace: bool = False) -> list[str]:
    """Creates every UDF that is missing or defined differently; returns the names created.

    Idempotent. With `replace`, drops them all first so the server loads the library anew
    (needed after the .so file changed).
    """
    if replace:
        drop_udfs(conn)
    current = _installed(conn) or {}
    created: list[str] = []
    cur = conn.cursor()
    try:
        for udf in UDFS:
            row = current.get(udf.name)
            if row == udf.mysql_func_row:
                continue
            if row is not None:  # same name, other return type / library / kind
                cur.execute(f"DROP FUNCTION {udf.name}")
            try:
                cur.execute(udf.create_sql)
            except Exception as exc:
                if _errno(exc) == ER_UDF_EXISTS:  # mysql.func unreadable; it is there
                    continue
                raise
            created.append(udf.name)
    finally:
        cur.close()
    return created


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def build(quiet: bool = True) -> bool:
    """Runs `make -C udf` (a no-op when up to date); True when the library file changed.

    After a change, a server that already loaded the old library needs
    `install_udfs(conn, replace=True)` to load the new one.
    """
    before = _identity(LIBRARY)
    done = subprocess.run(
        ["make", "-s", "-C", str(UDF_SRC)], capture_output=quiet, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"make -C udf failed ({done.returncode}):\n{done.stderr or ''}")
    return _identity(LIBRARY) != before


def _is_local(conn: Any) -> bool:
    """Is the server on this machine (unix socket, loopback, or this host's own name)?"""
    if getattr(conn, "unix_socket", None):
        return True
    host = getattr(conn, "host", "") or "localhost"
    try:
        addr = socket.gethostbyname(host)
        own = {socket.gethostbyname(socket.gethostname())}
    except OSError:
        return False
    return ipaddress.ip_address(addr).is_loopback or addr in own


def copy_library(library: Path, plugin_dir: Path) -> bool:
    """Puts `library` into `plugin_dir` atomically; False when it was already identical."""
    dest = plugin_dir / SONAME
    if dest.exists() and (dest.samefile(library) or filecmp.cmp(dest, library, shallow=False)):
        return False
    # A new inode via rename: a server that has the old file mapped must not see it change.
    fd, tmp = tempfile.mkstemp(prefix=f".{SONAME}.", dir=plugin_dir)
    try:
        with os.fdopen(fd, "wb") as out, library.open("rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def install_cli(defaults_file: Path, plugin_dir: Path | None, *, library: Path = LIBRARY) -> int:
    """`cryptdb udf install`: copy the library into the server's plugin dir, create the UDFs.

    `defaults_file` is a my.cnf-style file with a [client] section (the service account needs
    INSERT on mysql.func, which CREATE FUNCTION requires). `plugin_dir` is where the server's
    plugin dir is reachable from here, when it differs from @@plugin_dir (a container mount);
    by default @@plugin_dir itself is used when the server is local and it is writable.
    Otherwise the library must already be there, and we say how to put it there.
    """
    import pymysql  # the CLI's dependency, not needed to import the UDF list

    if not library.is_file():
        print(f"{library} not found: run `make udf` first", file=sys.stderr)
        return 1
    try:
        conn = pymysql.connect(
            read_default_file=str(defaults_file), read_default_group="client", autocommit=True
        )
    except pymysql.MySQLError as exc:
        print(f"cannot connect with {defaults_file}: {exc}", file=sys.stderr)
        return 1
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@plugin_dir")
            (server_dir,) = cur.fetchone()
        server_dir = server_dir.decode() if isinstance(server_dir, bytes) else server_dir
        target = plugin_dir or (Path(server_dir) if _is_local(conn) else None)
        changed = False
        if target is not None and target.is_dir() and os.access(target, os.W_OK):
            changed = copy_library(library, target)
            print(f"{'copied' if changed else 'up to date'}: {target / SONAME}")
        else:
            print(
                f"cannot write the server's plugin dir ({target or server_dir} on the server): "
                f"copy {library} to {server_dir}/{SONAME} there, then run this again",
                file=sys.stderr,
            )
        try:
            created = install_udfs(conn, replace=changed)
        except pymysql.MySQLError as exc:
            print(f"CREATE FUNCTION failed: {exc}", file=sys.stderr)
            return 1
        print("created: " + ", ".join(created) if created else "all UDFs already installed")
        return 0
    finally:
        conn.close()
