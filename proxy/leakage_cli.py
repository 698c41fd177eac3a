"""`cryptdb leakage`: per column, each onion's current layer, what the server can learn from
it, and the policy minimum (data: proxy.leakage). Reads the keystore's encrypted metadata, so
it needs a principal's key: from --password-file, --password-env or a prompt, never argv."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keystore import Keystore, KeystoreError, passwords
from keystore.cli import ENV_PATH, default_path
from keystore.files import InsecurePermissions
from proxy.leakage import leakage
from proxy.schema import Schema

COLUMNS = ("database", "table", "column", "onions", "learns", "minimum")


def add_subcommand(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser("leakage", help=__doc__.splitlines()[0].split(": ", 1)[1],
                       allow_abbrev=False)  # fmt: skip
    c.add_argument("--keystore", type=Path, metavar="PATH",
                   help=f"keystore file (default: ${ENV_PATH}, else .state/keystore/keystore)")
    c.add_argument("--defaults-file", type=Path, metavar="CNF",
                   help="take the keystore path from a proxy config's [cryptdb] section")
    c.add_argument("-u", "--user", required=True, metavar="PRINCIPAL")
    c.add_argument("--password-file", metavar="PATH", help="read the key from a file")
    c.add_argument("--password-env", metavar="VAR", help="read the key from $VAR")
    c.add_argument("--json", action="store_true", help="JSON instead of a table")
    c.set_defaults(func=run)


def render(rows: list[dict[str, str]]) -> str:
    widths = [max([len(h)] + [len(r[h]) for r in rows]) for h in COLUMNS]
    lines = ["  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(r[h].ljust(w) for h, w in zip(COLUMNS, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    path = args.keystore
    if path is None and args.defaults_file is not None:
        from proxy.config import load_config

        path = load_config(args.defaults_file).keystore
    try:
        ks = Keystore(path or default_path())
        key = passwords.read(args.password_file, args.password_env, f"Key for {args.user}: ")
        master = ks.unlock(args.user, key)
        _, meta = ks.load_metadata(master)
    except (KeystoreError, InsecurePermissions, ValueError) as e:
        print(f"cryptdb leakage: error: {e}", file=sys.stderr)
        return 1
    rows = leakage(Schema.from_json(meta.get("schema")))
    print(json.dumps(rows, indent=2) if args.json else render(rows))
    return 0
