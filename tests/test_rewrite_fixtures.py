"""SQL-pair fixtures (tests/fixtures/rewrite/*.sql): plaintext in, backend SQL shape out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from proxy.rewrite import Execute, PassThrough, ReadModifyWrite, Refusal
from tests.rewrite_support import DryRunner

FIXTURES = Path(__file__).parent / "fixtures" / "rewrite"
_HEX = re.compile(r"X'[0-9a-fA-F]*'")


def load(path: Path) -> list[dict[str, Any]]:
    """Blocks separated by blank lines: '# setup' pairs and '# title:' cases."""
    cases = []
    for block in path.read_text().split("\n\n"):
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        meta = {
            ln[2:].split(":", 1)[0].strip(): ln.split(":", 1)[-1].strip()
            for ln in lines
            if ln.startswith("#")
        }
        sql = [ln.rstrip(";") for ln in lines if not ln.startswith("#")]
        if not sql:
            continue
        assert len(sql) == 2, block
        cases.append(
            {
                "setup": "setup" in meta,
                "title": meta.get("title", ""),
                "peels": meta.get("peels"),
                "input": sql[0],
                "output": sql[1],
            }
        )
    return cases


def outcome(plan: Any) -> str:
    if isinstance(plan, PassThrough):
        return "PASS"
    if isinstance(plan, ReadModifyWrite):
        return "RMW " + _HEX.sub("X'?'", plan.select_sql)
    assert isinstance(plan, Execute)
    return _HEX.sub("X'?'", plan.sql or "")


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.sql")), ids=lambda p: p.stem)
def test_fixtures(path: Path) -> None:
    runner = DryRunner()
    for case in load(path):
        before = len(runner.peels)
        try:
            got = outcome(runner.plan(case["input"]))
        except Refusal as e:
            got = f"REFUSED {e.code}"
        assert got == case["output"], case["title"]
        peels = "; ".join(runner.peels[before:]) or None
        assert peels == case["peels"], case["title"]
