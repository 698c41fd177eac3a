"""Where `cryptdb shell` gets secrets from: a prompt, a private file or an environment variable.

Never from argv: anything on a command line is visible to other users (ps, /proc) and lands
in shell history. A source names where the secret is, and error messages name the source,
never the secret.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from keystore.files import InsecurePermissions, check_private

MAX_KEY_FILE = 64 * 1024
SOURCES_HELP = "prompt, file:PATH (a file only you can read) or env:NAME"


class SourceError(Exception):
    """A secret could not be obtained; the message is safe to print."""


def can_prompt() -> bool:
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def prompt(text: str) -> str:
    """Read a line from the terminal without echo (never from a redirected stdin)."""
    if not can_prompt():
        raise SourceError(f"cannot ask for it ({text.strip()!r}): no terminal")
    try:
        return getpass.getpass(text)
    except EOFError:
        raise SourceError("no input at the prompt") from None
    except KeyboardInterrupt:
        raise SourceError("interrupted at the prompt") from None


def read_secret(source: str, what: str, *, confirm: bool = False) -> bytes:
    """The secret `source` designates. `confirm`: ask twice at a prompt (a new key)."""
    if source == "prompt":
        value = prompt(f"Enter {what}: ")
        if confirm and prompt(f"Enter {what} again: ") != value:
            raise SourceError(f"the two {what}s differ")
        data = value.encode("utf-8")
    elif source.startswith("file:"):
        data = _read_private_file(Path(source[5:]).expanduser(), what)
    elif source.startswith("env:"):
        name = source[4:]
        if not name:
            raise SourceError(f"{what}: env: needs a variable name")
        raw = os.environb.get(os.fsencode(name))
        if raw is None:
            raise SourceError(f"{what}: environment variable {name} is not set")
        data = raw
    else:
        # Deliberately not echoing `source`: it may well be the secret itself.
        raise SourceError(
            f"{what}: give where to read it from, not the value itself: {SOURCES_HELP}"
        )
    if not data:
        raise SourceError(f"{what} is empty")
    return data


def _read_private_file(path: Path, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise SourceError(f"{what}: cannot open {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        try:
            check_private(path, os.fstat(fd))  # the file we opened, not a swapped-in one
        except InsecurePermissions as e:
            raise SourceError(f"{what}: refusing {e}") from None
        data = f.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise SourceError(f"{what}: {path} is larger than {MAX_KEY_FILE} bytes")
    # One trailing line break is an editor's, not part of the key.
    for ending in (b"\r\n", b"\n"):
        if data.endswith(ending):
            return data[: -len(ending)]
    return data
