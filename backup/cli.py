"""`cryptdb backup`, `cryptdb backup verify`, `cryptdb backup keygen`, `cryptdb restore`.

Wiring: `add_subcommands(subparsers)` adds the `backup` and `restore` parsers; each parsed
namespace carries `func(args) -> int`. `python -m backup ...` runs them standalone.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from backup import signing
from backup.age import AgeError, Identity, Recipient, parse_keys_text
from backup.compress import KINDS, default_kind
from backup.create import BackupError, create_backup
from backup.mysql import BackendError
from backup.progress import human
from backup.reader import BackupInvalid, Verified
from backup.restore import RestoreError, restore_backup, verify_backup
from keystore.files import InsecurePermissions, check_private

ERRORS = (
    AgeError, BackendError, BackupError, BackupInvalid, FileExistsError, FileNotFoundError,
    InsecurePermissions, RestoreError, RuntimeError, signing.SignatureError,
)


def state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir or os.environ.get("CRYPTDB_STATE_DIR") or ".state")


def default_signing_key(args: argparse.Namespace) -> Path:
    return state_dir(args) / "backup" / "signing-key"


def _recipients(args: argparse.Namespace) -> list[Recipient]:
    texts = list(args.recipient or [])
    for f in args.recipients_file or []:
        texts += parse_keys_text(Path(f).read_text())
    return [Recipient.parse(t) for t in texts]


def _identities(files: list[str]) -> list[Identity]:
    out = []
    for f in files:
        check_private(Path(f))  # a private key: refuse it if others can read it
        keys = [k for k in parse_keys_text(Path(f).read_text()) if k.startswith("AGE-SECRET-KEY-")]
        if not keys:
            raise AgeError(f"{f} holds no AGE-SECRET-KEY-1... identity")
        out += [Identity.parse(k) for k in keys]
    return out


def _trusted(args: argparse.Namespace) -> signing.Ed25519PublicKey:
    if args.signer:
        return signing.load_public_key(args.signer)
    pub = Path(str(args.signing_key or default_signing_key(args)) + ".pub")
    if pub.exists():
        return signing.load_public_key(pub)
    raise signing.SignatureError(
        "no trusted signer: pass --signer with the backup host's signing public key "
        f"(ssh-ed25519 AAAA... or its .pub file; {pub} does not exist)"
    )


def _summary(v: Verified) -> str:
    m = v.manifest.data
    dbs = v.manifest.databases
    tables = sum(len(d["tables"]) for d in dbs)
    rows = sum(t.get("rows", 0) for d in dbs for t in d["tables"])
    return (
        f"backup {m['backup_id']} of {m['created']}: signature by {v.signer} good, "
        f"{len(v.manifest.entries)} members match; {len(dbs)} database(s) "
        f"({', '.join(d['name'] for d in dbs)}), {tables} tables, {rows} rows, "
        f"keystore {'included' if v.manifest.keystore else 'absent'}"
    )


def cmd_backup(args: argparse.Namespace) -> int:
    if not args.output:
        raise BackupError("-o FILE is required")
    if not args.defaults_file:
        raise BackupError("--defaults-file CNF is required (credentials never go on argv)")
    key_path = Path(args.signing_key) if args.signing_key else default_signing_key(args)
    if not key_path.exists() and not args.signing_key:
        signing.generate_signing_key(key_path)
        print(f"created backup signing key {key_path}; give {key_path}.pub to whoever "
              "verifies or restores backups", file=sys.stderr)
    result = create_backup(
        Path(args.output), _recipients(args), Path(args.defaults_file),
        signing.load_signing_key(key_path), databases=args.database, keystore=args.keystore,
        compression=args.compress,
    )
    rate = result.dump_bytes / max(result.seconds, 1e-9)
    print(f"{result.path}: {human(result.file_bytes)} encrypted, {human(result.dump_bytes)} "
          f"dumped in {result.seconds:.1f} s ({human(rate)}/s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    verified = verify_backup(Path(args.file), _identities(args.identity), _trusted(args))
    print(f"OK {args.file}: {_summary(verified)}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    key_path = Path(args.signing_key) if args.signing_key else default_signing_key(args)
    key = signing.generate_signing_key(key_path)
    print(f"{key_path}.pub: {signing.public_key_line(key.public_key())}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    keystore_out = Path(args.keystore_out) if args.keystore_out else None
    result = restore_backup(
        Path(args.file), _identities(args.identity), _trusted(args), Path(args.defaults_file),
        databases=args.database, keystore_out=keystore_out,
    )
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    targets = ", ".join(f"{s} -> {d}" for s, d in result.databases.items())
    print(f"restored {targets} in {result.seconds:.1f} s; {_summary(result.verified)}")
    if result.keystore:
        print(f"keystore written to {result.keystore} (0600)")
    return 0


def _guard(func):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except ERRORS as e:
            print(f"cryptdb: error: {e}", file=sys.stderr)
            return 1

    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", help="default: $CRYPTDB_STATE_DIR or .state")
    p.add_argument("--signing-key", help="Ed25519 signing key (default: STATE/backup/signing-key)")


def _verifying(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the encrypted backup (.age)")
    p.add_argument("--identity", "-i", action="append", required=True,
                   help="age identity file (AGE-SECRET-KEY-1...), 0600")
    p.add_argument("--signer", help="trusted signing public key (ssh-ed25519 ... or a .pub file; "
                   "default: the signing key's .pub)")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = subparsers.add_parser("backup", help="encrypted, signed backup of the backend and keystore")
    _common(b)
    b.add_argument("--defaults-file", help="my.cnf with backend credentials (0600)")
    b.add_argument("--database", action="append", help="database to dump (default: all)")
    b.add_argument("--recipient", "-r", action="append", help="age recipient (age1...)")
    b.add_argument("--recipients-file", "-R", action="append", help="file of age recipients")
    b.add_argument("--keystore", help="the proxy's keystore file, included as is")
    b.add_argument("--compress", choices=KINDS, default=default_kind(),
                   help="before encryption (default: zstd if installed, else gzip)")
    b.add_argument("-o", "--output", help="new backup file (created 0400)")
    b.set_defaults(func=_guard(cmd_backup))
    sub = b.add_subparsers(dest="backup_command")
    v = sub.add_parser("verify", help="decrypt and check signature and checksums; restore nothing")
    _common(v)
    _verifying(v)
    v.set_defaults(func=_guard(cmd_verify))
    k = sub.add_parser("keygen", help="create the backup signing key pair")
    _common(k)
    k.set_defaults(func=_guard(cmd_keygen))

    r = subparsers.add_parser("restore", help="verify a backup, then load it into empty databases")
    _common(r)
    _verifying(r)
    r.add_argument("--defaults-file", required=True, help="my.cnf with target credentials (0600)")
    r.add_argument("--database", action="append",
                   help="NAME, or SRC=TARGET (default: every database, same names)")
    r.add_argument("--keystore-out", help="where to write the keystore (new file, 0600)")
    r.set_defaults(func=_guard(cmd_restore))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cryptdb")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
