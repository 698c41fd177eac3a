"""Where the CLI takes passwords from: a prompt, a file, or an environment variable.

Never from argv: command lines are visible to every user in `ps` (seed 001). A password file
must be private like any credential file; one trailing newline is stripped.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from keystore.errors import KeystoreError
from keystore.files import check_private


def from_file(path: str | os.PathLike[str]) -> bytes:
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise KeystoreError(f"cannot open password file {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        check_private(path, os.fstat(f.fileno()))
        data = f.read()
    return data.removesuffix(b"\n").removesuffix(b"\r")


def from_env(name: str) -> bytes:
    value = os.environb.get(name.encode())
    if value is None:
        raise KeystoreError(f"environment variable {name} is not set")
    return value


def from_prompt(prompt: str, *, confirm: bool = False) -> bytes:
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat: ") != first:
        raise KeystoreError("the two passwords differ")
    return first.encode("utf-8")


def read(file: str | None, env: str | None, prompt: str, *, confirm: bool = False) -> bytes:
    if file is not None and env is not None:
        raise KeystoreError("give a password file or an environment variable, not both")
    if file is not None:
        password = from_file(file)
    elif env is not None:
        password = from_env(env)
    else:
        password = from_prompt(prompt, confirm=confirm)
    if not password:
        raise KeystoreError("empty password")
    return password
