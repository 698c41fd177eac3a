"""`cryptdb keystore ...`: offline administration of a keystore file.

The proxy's CLI mounts these with `add_subcommands(subparsers)`; each command sets
`func(args) -> int` (exit status). Standalone: `python -m keystore.cli COMMAND ...`.

Passwords come from a prompt, `--password-file`/`--password-env` (the `-u` principal's
password) or `--new-password-file`/`--new-password-env` (the password being set by `passwd`
and `add-user`): never from argv.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from keystore import passwords
from keystore.errors import KeystoreError
from keystore.files import InsecurePermissions, strict_umask
from keystore.format import KdfParams
from keystore.store import DEFAULT_KDF, Keystore

ENV_PATH = "CRYPTDB_KEYSTORE"
DEFAULT_PATH = Path(".state") / "keystore" / "keystore"
EXIT_ERROR = 1


def default_path() -> Path:
    return Path(os.environ.get(ENV_PATH) or DEFAULT_PATH)


def _keystore(args: argparse.Namespace) -> Keystore:
    def pick(name: str, default: int) -> int:
        value = getattr(args, name, None)
        return default if value is None else int(value)

    kdf = KdfParams(
        pick("argon2_memory_kib", DEFAULT_KDF.memory_kib),
        pick("argon2_time", DEFAULT_KDF.time_cost),
        pick("argon2_parallelism", DEFAULT_KDF.parallelism),
    )
    return Keystore(args.keystore or default_path(), kdf=kdf)


def _password(args: argparse.Namespace, who: str) -> bytes:
    return passwords.read(args.password_file, args.password_env, f"Password for {who}: ")


def _new_password(args: argparse.Namespace, who: str, *, new: bool = True) -> bytes:
    file, env = (
        (args.new_password_file, args.new_password_env) if new
        else (args.password_file, args.password_env)
    )
    return passwords.read(file, env, f"New password for {who}: ", confirm=True)


def cmd_init(args: argparse.Namespace) -> int:
    ks = _keystore(args)
    ks.initialize(args.user, _new_password(args, args.user, new=False))
    print(f"initialized {ks.path} with principal {args.user}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    ks = _keystore(args)
    old = _password(args, args.user)
    ks.rotate(args.user, old, _new_password(args, args.user))
    print(f"password of {args.user} changed")
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    ks = _keystore(args)
    master = ks.unlock(args.user, _password(args, args.user))
    ks.add_user(master, args.name, _new_password(args, args.name))
    print(f"added principal {args.name}")
    return 0


def cmd_remove_user(args: argparse.Namespace) -> int:
    ks = _keystore(args)
    master = ks.unlock(args.user, _password(args, args.user))
    ks.remove_user(master, args.name)
    print(f"removed principal {args.name}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for principal in _keystore(args).list_principals():
        print(principal)
    return 0


def cmd_escrow(args: argparse.Namespace) -> int:
    ks = _keystore(args)
    master = ks.unlock(args.user, _password(args, args.user))
    blob = ks.escrow(master, args.recipient)
    out = Path(args.output)
    try:
        with strict_umask():  # encrypted, but nobody else needs to read it either
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{out} exists; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    print(f"wrote the escrowed master key to {out}; keep the identity offline. "
          f"It decrypts with: age -d -i IDENTITY {out}")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    ks = _keystore(args)
    try:
        escrowed = Path(args.input).read_bytes()
    except OSError as e:
        raise KeystoreError(f"cannot read {args.input}: {e.strerror}") from None
    ks.recover(escrowed, args.identity, args.user, _new_password(args, args.user, new=False))
    print(f"recovered: {args.user} now opens {ks.path} with the new password")
    return 0


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Expected failures become one line on stderr and exit status 1, never a traceback.
    Our messages name files and principals, never secrets."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (KeystoreError, InsecurePermissions, ValueError) as e:
            print(f"cryptdb keystore: error: {e}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("cryptdb keystore: interrupted", file=sys.stderr)
            return EXIT_ERROR

    return run


def _parents() -> dict[str, argparse.ArgumentParser]:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--keystore", metavar="PATH",
        help=f"keystore file (default: ${ENV_PATH}, else {DEFAULT_PATH})",
    )
    pw = argparse.ArgumentParser(add_help=False)
    pw.add_argument("--password-file", metavar="PATH", help="read -u's password from a file")
    pw.add_argument("--password-env", metavar="VAR", help="read -u's password from $VAR")
    new = argparse.ArgumentParser(add_help=False)
    new.add_argument("--new-password-file", metavar="PATH", help="read the new password from PATH")
    new.add_argument("--new-password-env", metavar="VAR", help="read the new password from $VAR")
    kdf = argparse.ArgumentParser(add_help=False)
    g = kdf.add_argument_group("argon2id cost of new slots (default: 64 MiB, t=3, p=4)")
    g.add_argument("--argon2-memory-kib", type=int, metavar="KIB")
    g.add_argument("--argon2-time", type=int, metavar="T")
    g.add_argument("--argon2-parallelism", type=int, metavar="P")
    return {"common": common, "pw": pw, "new": new, "kdf": kdf}


def _add_commands(parser: argparse.ArgumentParser) -> None:
    p = _parents()
    sub = parser.add_subparsers(dest="keystore_command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str,
                *parents: str) -> argparse.ArgumentParser:
        # No abbreviations: `--password` must be an error, not a guess at `--password-file`.
        cmd = sub.add_parser(name, help=help, description=help, allow_abbrev=False,
                             parents=[p["common"], *(p[x] for x in parents)])
        cmd.set_defaults(func=_guarded(func))
        return cmd

    def user(cmd: argparse.ArgumentParser, what: str) -> None:
        cmd.add_argument("-u", "--user", required=True, metavar="PRINCIPAL", help=what)

    c = command("init", cmd_init, "create a keystore with a fresh master key", "pw", "kdf")
    user(c, "the first principal (its password: --password-file/--password-env or a prompt)")
    c = command("passwd", cmd_passwd, "change a principal's password (re-wraps its slot)",
                "pw", "new", "kdf")
    user(c, "the principal whose password changes")
    c = command("add-user", cmd_add_user, "add a principal (needs an unlocked principal)",
                "pw", "new", "kdf")
    c.add_argument("name", metavar="NAME", help="the new principal")
    user(c, "an existing principal, to unlock the master key")
    c = command("remove-user", cmd_remove_user, "remove a principal's slot", "pw")
    c.add_argument("name", metavar="NAME", help="the principal to remove")
    user(c, "an existing principal, to unlock the master key")
    command("list", cmd_list, "list the principals that have a slot")
    c = command("escrow", cmd_escrow, "encrypt the master key to an age X25519 recipient", "pw")
    user(c, "an existing principal, to unlock the master key")
    c.add_argument("--recipient", required=True, metavar="AGE1...", help="age public key")
    c.add_argument("-o", "--output", required=True, metavar="FILE", help="escrow file to create")
    c = command("recover", cmd_recover, "make a slot from an escrow file and its age identity",
                "pw", "kdf")
    user(c, "the principal to create or reset (its new password: --password-*/prompt)")
    c.add_argument("--identity", required=True, metavar="FILE", help="age-keygen identity file")
    c.add_argument("-i", "--input", required=True, metavar="FILE", help="the escrow file")


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> (
    argparse.ArgumentParser
):
    """Mount `keystore COMMAND ...` on the proxy CLI; dispatch with `args.func(args)`."""
    parser = subparsers.add_parser("keystore", help="manage the keystore (keys and principals)")
    _add_commands(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cryptdb keystore", description=__doc__.splitlines()[0])
    _add_commands(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
