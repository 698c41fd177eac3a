"""my.cnf-style defaults for `cryptdb shell`: the [client] group, then [cryptdb-shell]."""

from __future__ import annotations

import configparser
from pathlib import Path

from client.sources import SourceError
from keystore.files import InsecurePermissions, check_private

GROUPS = ("client", "cryptdb-shell")
KNOWN = frozenset({"user", "password", "host", "port", "database", "ssl", "ssl-ca"})


def read_defaults(path: Path) -> dict[str, str]:
    """Options from the file's groups, later groups winning; refuses a file others can read."""
    path = Path(path).expanduser()
    try:
        check_private(path)
        text = path.read_text()
    except InsecurePermissions as e:
        raise SourceError(f"refusing defaults file: {e}") from None
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror}") from None
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None, strict=False)
    parser.optionxform = lambda name: name.strip().replace("_", "-")  # type: ignore[method-assign]
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as e:
        raise SourceError(f"{path}: not a my.cnf-style file ({type(e).__name__})") from None
    found: dict[str, str] = {}
    for group in GROUPS:
        if parser.has_section(group):
            for name, value in parser.items(group):
                if name in KNOWN:
                    found[name] = _unquote(value if value is not None else "")
    return found


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
