"""`cryptdb shell`: placeholder until the HR42 client lands."""

from __future__ import annotations

import argparse


def add_subcommand(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pass
