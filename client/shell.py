"""`cryptdb shell`: a mysql-like SQL client that sends the cryptdb key (HandshakeResponse42).

Secrets never come from argv: `-p` takes no value (it means "ask"), and the keys are given
as sources (`prompt`, `file:PATH`, `env:NAME`). See docs/client.md.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.sources import SOURCES_HELP, SourceError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3307
REFUSAL = (
    "-p/--password takes no value: a password on the command line is visible to other "
    "users (ps, /proc) and stays in shell history. Give -p alone to be asked for it, or put "
    "it in a --defaults-file (mode 0600) or the MYSQL_PWD environment variable."
)


class _PasswordFlag(argparse.Action):
    """`-p` alone means "prompt"; `-pSECRET`, `-p SECRET`, `--password=SECRET` are refused.

    `nargs="?"` makes argparse hand us a glued or following value instead of misreading it
    (as `-p -S -E ...`) and then echoing it in an error message.
    """

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if values is not None:
            parser.exit(2, f"cryptdb shell: {REFUSAL}\n")
        setattr(ns, self.dest, True)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        # -p's optional value exists only to be refused: do not advertise it.
        if isinstance(action, _PasswordFlag):
            return ""
        return super()._format_args(action, default_metavar)

    def _format_usage(self, *args: Any) -> str:
        return super()._format_usage(*args).replace("[-p ]", "[-p]")

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, _PasswordFlag):
            return ", ".join(action.option_strings)
        return super()._format_action_invocation(action)


def add_subcommand(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "shell",
        help="SQL shell that sends the cryptdb key to the proxy (like the mysql CLI)",
        description=__doc__,
        add_help=False,  # -h is --host, as in mysql
        allow_abbrev=False,  # no accidental prefixes of the key options
        formatter_class=_Formatter,
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-h", "--host", help=f"proxy host (default {DEFAULT_HOST})")
    p.add_argument("-P", "--port", type=int, help=f"proxy port (default {DEFAULT_PORT})")
    p.add_argument("-u", "--user", help="user name (default: your login name)")
    p.add_argument("-D", "--database", help="database to use")
    p.add_argument("-p", "--password", nargs="?", action=_PasswordFlag, default=False,
                   help="ask for the password (takes no value)")
    p.add_argument("--defaults-file", type=Path, metavar="PATH",
                   help="my.cnf-style file ([client], [cryptdb-shell]): user, password, host, "
                   "port, database, ssl, ssl-ca; must be readable by you only")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--ssl", action="store_true", default=None,
                     help="require TLS (server certificate not checked)")
    tls.add_argument("--skip-ssl", dest="ssl", action="store_false",
                     help="no TLS (default: TLS if the server offers it)")
    p.add_argument("--ssl-ca", type=Path, metavar="PATH",
                   help="require TLS and verify the server certificate against this CA")
    p.add_argument("--cryptdb-key", "--cryptdb_key", metavar="SOURCE",
                   help=f"send the cryptdb key, read from: {SOURCES_HELP}")
    p.add_argument("--old-cryptdb-key", "--old-cryptdbkey", "--old_cryptdbkey",
                   metavar="SOURCE", help="the key being replaced (with --cryptdb-key "
                   "giving the new one); same sources")
    p.add_argument("-e", "--execute", metavar="SQL", help="run SQL, print tab-separated, exit")
    p.add_argument("-t", "--table", action="store_true", help="boxed tables in batch mode too")
    p.add_argument("-N", "--skip-column-names", action="store_true",
                   help="no header line in batch output")
    p.add_argument("-f", "--force", action="store_true", help="go on after an error (batch)")
    p.set_defaults(func=main)


@dataclass(repr=False)
class Settings:
    host: str
    port: int
    user: str
    database: str | None
    ssl: dict[str, Any] = field(default_factory=dict)
    password: str = ""
    cryptdb_key: bytes | None = None
    old_cryptdb_key: bytes | None = None


def settings_from(args: argparse.Namespace, *, can_prompt: bool) -> Settings:
    from client.options import read_defaults
    from client.sources import prompt, read_secret

    conf = read_defaults(args.defaults_file) if args.defaults_file else {}
    port = args.port or conf.get("port") or DEFAULT_PORT
    try:
        port = int(port)
    except ValueError:
        raise SourceError(f"port must be a number, not {port!r}") from None
    s = Settings(
        host=args.host or conf.get("host") or DEFAULT_HOST,
        port=port,
        user=args.user or conf.get("user") or getpass.getuser(),
        database=args.database or conf.get("database") or None,
        ssl=_tls_options(args, conf),
    )
    if args.password:
        s.password = prompt("Enter password: ")
    elif "password" in conf:
        s.password = conf["password"]
    elif "MYSQL_PWD" in os.environ:
        s.password = os.environ["MYSQL_PWD"]
    elif can_prompt:
        s.password = prompt("Enter password: ")
    else:
        raise SourceError(
            "no password: no terminal to ask on; put it in a --defaults-file or MYSQL_PWD"
        )
    if args.old_cryptdb_key and not args.cryptdb_key:
        raise SourceError("--old-cryptdb-key needs --cryptdb-key (the new key)")
    if args.old_cryptdb_key:
        s.old_cryptdb_key = read_secret(args.old_cryptdb_key, "old cryptdb key")
        s.cryptdb_key = read_secret(args.cryptdb_key, "new cryptdb key", confirm=True)
    elif args.cryptdb_key:
        s.cryptdb_key = read_secret(args.cryptdb_key, "cryptdb key")
    return s


def _tls_options(args: argparse.Namespace, conf: dict[str, str]) -> dict[str, Any]:
    import ssl

    ca = args.ssl_ca or (Path(conf["ssl-ca"]).expanduser() if conf.get("ssl-ca") else None)
    want = args.ssl
    if want is None and "ssl" in conf:
        want = conf["ssl"].lower() not in ("0", "off", "false", "no")
    if want is False:
        return {"ssl_disabled": True}
    if ca is not None:
        try:
            return {"ssl": ssl.create_default_context(cafile=str(ca))}  # chain and host name
        except (OSError, ssl.SSLError) as e:
            raise SourceError(f"--ssl-ca {ca}: {e}") from None
    if want:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return {"ssl": ctx}
    return {}  # PyMySQL's default: TLS when the server offers it


def main(args: argparse.Namespace) -> int:
    from client import repl
    from client.connection import connect
    from client.splitter import Splitter

    interactive = args.execute is None and sys.stdin.isatty()
    try:
        s = settings_from(args, can_prompt=_can_prompt())
    except SourceError as e:
        print(f"cryptdb shell: {e}", file=sys.stderr)
        return 2

    import pymysql.converters

    # Values as the server sent them (text), not as Python objects: printed like mysql does.
    text_only = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}

    def open_connection() -> Any:
        return connect(
            s.host, s.port, s.user, s.password, s.database,
            cryptdb_key=s.cryptdb_key, old_cryptdb_key=s.old_cryptdb_key,
            autocommit=None,  # the server's default (on), as the mysql CLI leaves it
            conv=text_only, program_name="cryptdb-shell", **s.ssl,
        )

    runner = repl.Runner(
        open_connection,
        interactive=interactive,
        table=interactive or args.table,
        headers=not args.skip_column_names,
        force=args.force,
    )
    try:
        conn = runner.open()
    except Exception as e:  # every way of failing to connect ends the same way
        print(repl.error_line(e) + _hint(e), file=sys.stderr)
        return 1
    try:
        if interactive:
            return repl.interactive(runner, _banner(s, conn))
        lines = args.execute.splitlines() if args.execute is not None else sys.stdin
        runner.feed_lines(lines, Splitter())
        return 1 if runner.failed else 0
    except BrokenPipeError:  # `cryptdb shell -e ... | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        runner.close()


def _can_prompt() -> bool:
    from client.sources import can_prompt

    return can_prompt()


def _hint(e: BaseException) -> str:
    if "refusing to send the cryptdb key" in str(e):
        return "\n(the shell: give --ssl-ca with the proxy's CA certificate)"
    return ""


def _banner(s: Settings, conn: Any) -> str:
    tls = "TLS" if conn._secure else "no TLS"
    key = "sent" if s.cryptdb_key else "not sent"
    return (
        f"Connected to {s.host}:{s.port} as {s.user} ({tls}; server {conn.get_server_info()};"
        f" cryptdb key {key}).\n"
        "End statements with ; or \\G. Type 'help' for help, 'quit' or Ctrl-D to leave.\n"
    )
