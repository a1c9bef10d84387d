"""`invdesign data ...`: the dataset command group (`build`, `info`)."""

from __future__ import annotations

import argparse

from invdesign.cli import data_build, data_info


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="build CHILI-style datasets and print their statistics")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True
    data_build.register(actions)
    data_info.register(actions)
