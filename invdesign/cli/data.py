"""`invdesign data build ...` and `invdesign data info DIR` (filled in by the data/builder work)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="build CHILI-style datasets and print their statistics")
    parser.add_subparsers(dest="data_command", metavar="ACTION").required = True
