"""Splits what the user types into statements, as the mysql CLI does.

A statement ends at the delimiter (`;` unless changed with `delimiter`), at `\\g`, or at
`\\G` (vertical output), but not inside quotes or comments. Statements may span lines.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    vertical: bool  # ended with \G
    line: int  # where it started, for "ERROR ... at line N"


class Splitter:
    def __init__(self) -> None:
        self.delimiter = ";"
        self.reset()
        self._line = 0

    def reset(self) -> None:
        """Forget a partly typed statement (Ctrl-C, \\c)."""
        self._buf: list[str] = []
        self._quote: str | None = None  # ', " or ` while inside one
        self._block_comment = False
        self._has_code = False  # the buffer holds more than blanks and comments
        self._start = 0

    @property
    def pending(self) -> bool:
        return self._has_code or self._quote is not None or self._block_comment

    @property
    def state(self) -> str:
        """What the continuation prompt should show: ->, '>, ">, `> or /*>."""
        if self._quote:
            return self._quote + ">"
        return "/*>" if self._block_comment else "->"

    def feed(self, line: str) -> list[Statement]:
        """Consume one input line (without its newline); return the statements it ends."""
        self._line += 1
        if not self.pending and self._set_delimiter(line):
            return []
        out: list[Statement] = []
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if self._quote:
                if c == "\\" and self._quote != "`" and i + 1 < n:
                    self._buf.append(line[i : i + 2])
                    i += 2
                    continue
                if c == self._quote:
                    self._quote = None
                self._buf.append(c)
                i += 1
            elif self._block_comment:
                end = line.find("*/", i)
                if end < 0:
                    self._buf.append(line[i:])
                    break
                self._buf.append(line[i : end + 2])
                self._block_comment = False
                i = end + 2
            elif line.startswith(self.delimiter, i):
                out += self._emit(vertical=False)
                i += len(self.delimiter)
            elif c == "\\" and i + 1 < n and line[i + 1] in "gGc":
                if line[i + 1] == "c":
                    self.reset()
                else:
                    out += self._emit(vertical=line[i + 1] == "G")
                i += 2
            elif c == "#" or (line.startswith("--", i) and (i + 2 == n or line[i + 2].isspace())):
                self._buf.append(line[i:])  # a comment to the end of the line
                break
            elif line.startswith("/*", i):
                self._block_comment = True
                self._buf.append("/*")
                i += 2
            else:
                if c in "'\"`":
                    self._quote = c
                if not c.isspace() and not self._has_code:
                    self._has_code, self._start = True, self._line
                self._buf.append(c)
                i += 1
        if self._buf:
            self._buf.append("\n")
        return out

    def flush(self) -> list[Statement]:
        """End of input: what remains is a statement too (mysql -e "SELECT 1" needs no `;`)."""
        if self._has_code:
            return self._emit(vertical=False)
        self.reset()
        return []

    def _emit(self, *, vertical: bool) -> list[Statement]:
        sql, has_code, start = "".join(self._buf).strip(), self._has_code, self._start
        self.reset()
        return [Statement(sql, vertical, start)] if has_code else []

    def _set_delimiter(self, line: str) -> bool:
        words = line.split(None, 1)
        if len(words) == 2 and words[0].lower() == "delimiter":
            self.delimiter = words[1].split()[0]
            return True
        return False
