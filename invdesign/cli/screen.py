"""`invdesign screen DIR [--checkpoint FILE] [--excess-checkpoint DIR] --out predictions.csv
[--max-ef X] [--check chgnet --top K]`: rank candidate CIF/XYZ files by the predicted formation
energy of their material (eV/atom) and give every particle its predicted excess energy over its
bulk (eV/atom), with a plot beside the CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "screen",
        help="rank candidate structures (CIF/XYZ) by predicted formation energy",
        description="Predict the formation energy (eV/atom) of the material of each CIF/XYZ file "
        "under DIR with a property checkpoint (a unit cell; a particle's source cell or bulk "
        "lattice when known, else the particle minus its excess energy) and the excess energy "
        "(eV/atom above the bulk) of each particle, rank them (lowest E_f first), optionally check "
        "the top K with the CHGNet recipe, and write a CSV plus a plot (same name, .png). "
        "Unreadable files are listed with their reason.",
    )
    parser.add_argument("dir", type=Path, help="folder of candidate files (searched recursively)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="property checkpoint folder (default: checkpoints/property-default)",
    )
    parser.add_argument(
        "--excess-checkpoint",
        type=Path,
        default=None,
        metavar="DIR",
        help="particle-excess checkpoint folder (default: checkpoints/particle-excess; without "
        "it the excess column is empty)",
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV of ranked predictions")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out CSV and its plot")
    parser.add_argument(
        "--max-ef",
        type=float,
        default=None,
        metavar="X",
        help="keep only candidates with predicted E_f <= X eV/atom",
    )
    parser.add_argument(
        "--check",
        choices=("chgnet",),
        default=None,
        help="second opinion on the top candidates (relaxed CHGNet recipe)",
    )
    parser.add_argument("--top", type=int, default=10, metavar="K", help="how many to check (10)")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.core.errors import InvdesignError  # noqa: PLC0415

    # lazy: the CLI imports only what the command needs
    from invdesign.evaluators.property.screen import (  # noqa: PLC0415
        NO_PREDICTION,
        plot_screen,
        screen_folder,
        write_screen_csv,
    )

    # lazy: the CLI imports only what the command needs
    from invdesign.io.outputs import Output  # noqa: PLC0415

    if args.out.suffix.lower() == ".png":
        raise InvdesignError("--out is the CSV; its plot goes beside it as .png", args.out)
    inputs = [args.dir] + [p for p in (args.checkpoint, args.excess_checkpoint) if p is not None]
    # both outputs checked and locked before the screening starts; the plot's Output leaves the
    # signals to the CSV's (committed first, so the handlers are restored in order)
    with Output(args.out, inputs, args.force) as csv_out, \
            Output(args.out.with_suffix(".png"), inputs, args.force,
                   handle_signals=False) as png_out:
        result = screen_folder(
            args.dir, args.checkpoint, args.max_ef, args.check, args.top, args.device,
            excess_checkpoint=args.excess_checkpoint,
        )
        assert csv_out.tmp is not None and png_out.tmp is not None
        write_screen_csv(result, csv_out.tmp)
        plot_screen(result, png_out.tmp)
        png = png_out.commit()
        csv_path = csv_out.commit()
    for name, reason in result.failures:
        print(f"invdesign: skipped {name}: {reason}", file=sys.stderr)
    above = f", {result.n_above_max} above --max-ef" if args.max_ef is not None else ""
    missing = sum(row["status"] == NO_PREDICTION for row in result.rows)
    if missing:
        above += f", {missing} without a prediction (ranked last)"
    print(
        f"ranked {len(result.rows)} candidates ({len(result.failures)} unreadable{above}) -> "
        f"{csv_path}, {png}"
    )
    if result.excess_missing:
        print(f"particle excess energy not predicted: {result.excess_missing}")
    for row in result.rows[:5]:
        excess = row["particle_excess_energy_per_atom"]
        excess_text = "" if excess != excess else f"  excess {excess:6.3f}"  # NaN: none
        print(
            f"  {row['rank']:3d}  {row['formation_energy_per_atom']:8.3f} eV/atom  "
            f"{row['formula']:14s}"
            f"  {row['file']}{excess_text}"
        )
    return 0
