"""`invdesign data info DIR [--json FILE]`: CHILI Table 1 statistics of a folder of CHILI files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from invdesign.core.errors import InvdesignError
from invdesign.io.atomic import atomic_write_text


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "info",
        help="print CHILI Table 1 statistics (graphs, nodes, edges, crystal systems) of a folder",
        description="Index a folder of CHILI *.h5 files (cached); print CHILI Table 1 statistics.",
    )
    parser.add_argument("dir", type=Path, help="folder of CHILI HDF5 files (searched recursively)")
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the statistics as JSON"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.data.stats import folder_stats, format_stats  # noqa: PLC0415

    stats = folder_stats(args.dir)
    print(format_stats(stats))
    if args.json is not None:
        _write_json(args.json, stats.to_dict())
    return 0


def _write_json(path: Path, payload: dict) -> None:
    """Atomic JSON write; a bad destination is a user error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(payload, indent=2))
    except OSError as exc:
        raise InvdesignError(f"cannot write here ({exc.strerror})", path) from None
