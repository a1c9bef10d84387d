"""Entry point of the `invdesign` command.

Subcommands live in their own modules, each with `register(subparsers)` that adds a parser and sets
`func(args) -> int | None`. User mistakes raise `InvdesignError`; here they become one line on stderr and exit
code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from invdesign import __version__
from invdesign.errors import InvdesignError

# Subcommand modules under invdesign.cli, in the order `invdesign --help` lists them.
COMMANDS: tuple[str, ...] = ("data", "train", "evaluate", "sample", "screen")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invdesign",
        description="Generative inverse design of inorganic nanomaterials from scattering data.",
    )
    parser.add_argument("--version", action="version", version=f"invdesign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"invdesign.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except InvdesignError as exc:
        print(f"invdesign: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("invdesign: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
