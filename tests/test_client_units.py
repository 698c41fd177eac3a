"""Pure parts of the client: statement splitting, output formats, secret sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from client import output
from client.keys import Secret, is_loopback, make_trailer
from client.sources import SourceError, read_secret
from client.splitter import Splitter
from proxy.protocol.handshake import hr42_trailer


def split(*lines: str) -> list[tuple[str, bool, int]]:
    s = Splitter()
    out = [st for line in lines for st in s.feed(line)] + s.flush()
    return [(st.sql, st.vertical, st.line) for st in out]


def test_splitter_quotes_comments_and_terminators() -> None:
    assert split("SELECT 1; SELECT 'a;b', \"c;d\", `e;f`;") == [
        ("SELECT 1", False, 1), ("SELECT 'a;b', \"c;d\", `e;f`", False, 1),
    ]
    assert split("SELECT 'it\\'s;' -- no end;", "/* ; */ ;") == [
        ("SELECT 'it\\'s;' -- no end;\n/* ; */", False, 1),
    ]
    assert split("SELECT 1\\G SELECT 2\\g") == [("SELECT 1", True, 1), ("SELECT 2", False, 1)]
    assert split("", "  # comment only", "SELECT", "  3") == [
        ("# comment only\nSELECT\n  3", False, 3),
    ]
    assert split("SELECT 1 \\c", "SELECT 2;") == [("SELECT 2", False, 2)]
    assert split("SELECT 5--1;") == [("SELECT 5--1", False, 1)]  # a comment needs "-- "


def test_splitter_delimiter_and_prompt_state() -> None:
    assert split("delimiter //", "CREATE PROCEDURE p() BEGIN SELECT 1; END//") == [
        ("CREATE PROCEDURE p() BEGIN SELECT 1; END", False, 2),
    ]
    s = Splitter()
    assert not s.pending
    s.feed("SELECT 'abc")
    assert (s.pending, s.state) == (True, "'>")
    s.feed("' /* x")
    assert s.state == "/*>"
    s.reset()
    assert not s.pending


def test_table_and_vertical_like_mysql() -> None:
    rs = output.ResultSet(["id", "name"], [True, False], [(1, "alice"), (22, None)])
    assert output.table(rs).splitlines() == [
        "+----+-------+", "| id | name  |", "+----+-------+",
        "|  1 | alice |", "| 22 | NULL  |", "+----+-------+",
    ]
    assert output.vertical(rs).splitlines()[:3] == [
        "*************************** 1. row ***************************",
        "  id: 1", "name: alice",
    ]
    wide = output.ResultSet(["w"], [False], [("日本",), ("ab",)])
    assert output.table(wide).splitlines()[3:5] == ["| 日本 |", "| ab   |"]


def test_batch_escapes_and_binary() -> None:
    rs = output.ResultSet(["a\tb"], [False], [("x\ty\nz\\",), (None,), (b"\x00\xff",)])
    assert output.batch(rs).splitlines() == ["a\\tb", "x\\ty\\nz\\\\", "NULL", "0x00FF"]
    assert output.batch(rs, headers=False).splitlines()[0] == "x\\ty\\nz\\\\"


def test_summaries() -> None:
    assert output.summary(output.Ok(1, 0, ""), 0.004) == "Query OK, 1 row affected (0.00 sec)"
    assert output.summary(output.Ok(2, 1, "Records: 2"), 0) == (
        "Query OK, 2 rows affected, 1 warning (0.00 sec)\nRecords: 2"
    )
    assert output.summary(output.ResultSet(["a"], [False], []), 0) == "Empty set (0.00 sec)"


def test_trailer_is_the_proxys_and_hidden() -> None:
    t = make_trailer("new", b"old")
    assert isinstance(t, Secret) and t.reveal() == hr42_trailer(b"new", b"old")
    assert "new" not in repr(t) + str(t)
    assert make_trailer(None, None) is None


def test_loopback() -> None:
    assert is_loopback(("127.0.0.1", 1)) and is_loopback(("::1", 1, 0, 0))
    assert is_loopback("/run/mysqld.sock")
    assert not is_loopback(("10.0.0.1", 1)) and not is_loopback(None)


def test_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "k"
    f.write_bytes(b"key\r\n")
    f.chmod(0o600)
    assert read_secret(f"file:{f}", "k") == b"key"
    f.chmod(0o640)
    with pytest.raises(SourceError, match="chmod 0600"):
        read_secret(f"file:{f}", "k")
    link = tmp_path / "link"
    f.chmod(0o600)
    os.symlink(f, link)
    with pytest.raises(SourceError, match="cannot open"):  # O_NOFOLLOW
        read_secret(f"file:{link}", "k")
    monkeypatch.setenv("K", "v")
    assert read_secret("env:K", "k") == b"v"
    monkeypatch.setenv("EMPTY", "")
    with pytest.raises(SourceError, match="empty"):
        read_secret("env:EMPTY", "k")
    with pytest.raises(SourceError) as e:
        read_secret("s3cret", "k")
    assert "s3cret" not in str(e.value)
