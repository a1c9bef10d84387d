"""Entry point of the `invdesign` command.

Subcommands live in their own modules, each with `register(subparsers)` that adds a parser and sets
`func(args) -> int | None`. Only the module of the chosen command is imported (the others get
a placeholder parser with their one-line help), so `invdesign --help` and `invdesign data info DIR`
never pay for torch or the sampling pipeline. User mistakes raise `InvdesignError`; here they become
one line on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from invdesign import __version__
from invdesign.core.errors import InvdesignError

#: Subcommand modules under invdesign.cli with their one-line help, in the order `invdesign --help`
#: lists them. The help must equal the one the module registers (tests/cli/test_main.py checks).
COMMANDS: dict[str, str] = {
    "data": "build CHILI-style datasets and print their statistics",
    "train": "train a generator from an experiment config (configs/experiment/*.yaml)",
    "evaluate": "evaluate a generator checkpoint on a CHILI folder "
    "(CHILI MAE, matched MAE/RMSD, ...)",
    "sample": "candidate structures for a measured PDF/XRD/SAXS, fitted and ranked",
    "screen": "rank candidate structures (CIF/XYZ) by predicted formation energy",
}


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand `argv` names (its first non-option argument), if it is one of ours."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(argv: list[str] | None = None, *, full: bool = False) -> argparse.ArgumentParser:
    """The `invdesign` parser for `argv`: the chosen command's module registers its complete parser,
    every other command gets a placeholder (name and help only). `full=True` imports all modules."""
    parser = argparse.ArgumentParser(
        prog="invdesign",
        description="Generative inverse design of inorganic nanomaterials from scattering data.",
    )
    parser.add_argument("--version", action="version", version=f"invdesign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = chosen_command(sys.argv[1:] if argv is None else argv)
    for name, help_text in COMMANDS.items():
        if full or name == chosen:
            importlib.import_module(f"invdesign.cli.{name}").register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
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
