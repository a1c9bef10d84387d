"""`invdesign data build {chili3k,cifs,clusters,synthetic}`: parse arguments, call the builders."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("build", help="build CHILI-style datasets (one HDF5 file per source)")
    actions = parser.add_subparsers(dest="build_command", metavar="SOURCE")
    actions.required = True

    chili = actions.add_parser(
        "chili3k", help="regenerate CHILI-3K (12 crystal types x 53 metal oxides)"
    )
    _common(chili)
    chili.add_argument("--metals", nargs="+", metavar="M", help="metal symbols (default: all 53)")
    chili.add_argument(
        "--crystal-types", nargs="+", metavar="T", help="crystal types (default: all 12)"
    )
    chili.set_defaults(func=_chili3k)

    cifs = actions.add_parser(
        "cifs", help="build from a folder of CIFs with CHILI's cleaning rules"
    )
    cifs.add_argument("--cif-dir", required=True, help="folder of *.cif files")
    _common(cifs)
    cifs.set_defaults(func=_cifs)

    clusters = actions.add_parser(
        "clusters", help="mono-metallic spheres and ase.cluster particles"
    )
    _common(clusters, radii_default=None)
    clusters.add_argument(
        "--metals", nargs="+", metavar="M", help="metal symbols (default: the built-in set)"
    )
    clusters.set_defaults(func=_clusters)

    synthetic = actions.add_parser(
        "synthetic",
        help="CHILI-100K-like set made here: pyxtal crystals relaxed with CHGNet, the "
        "structure-type library, perov5 cells",
    )
    _common(synthetic)
    synthetic.add_argument("--n", type=int, default=0, help="synthetic cells to plan")
    synthetic.add_argument("--seed", type=int, default=0, help="plan seed (default: 0)")
    synthetic.add_argument(
        "--sources",
        nargs="+",
        default=["synthetic", "library"],
        metavar="S",
        help="synthetic, library, perov5 (default: synthetic library)",
    )
    synthetic.add_argument("--perov5-csv", help="perov5 CSV with a 'cif' column (--sources perov5)")
    synthetic.add_argument(
        "--patterns",
        nargs="+",
        metavar="P",
        help="patterns to simulate: saxs sans xrd nd xPDF nPDF, or none (default: all six)",
    )
    synthetic.add_argument(
        "--relax-steps", type=int, default=30, help="CHGNet relaxation steps cap (default: 30)"
    )
    synthetic.add_argument(
        "--retry-rejected",
        action="store_true",
        help="try again the cells an earlier run refused (they are skipped on resume otherwise)",
    )
    synthetic.set_defaults(func=_synthetic)


def _common(
    parser: argparse.ArgumentParser, radii_default: tuple | None = (5, 10, 15, 20, 25)
) -> None:
    parser.add_argument("--out", required=True, help="output folder (reruns resume)")
    parser.add_argument(
        "--radii",
        nargs="+",
        type=float,
        default=radii_default,
        metavar="R",
        help=f"particle radii in Å (default: {radii_default or 'the built-in set'})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes of a local Dask cluster, one thread each (default: 1, in this process)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on this running Dask cluster (`dask scheduler`, `dask worker`); its workers "
        "must see --out at the same path",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run_options(args: argparse.Namespace) -> dict:
    """The options every builder takes: where and how the units run."""
    return dict(workers=args.workers, device=args.device, progress=not args.no_progress,
                scheduler=args.scheduler)


def _finish(summary) -> int:
    print(summary.line())
    return 1 if summary.count("failed") else 0


def _chili3k(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.data.build.chili3k import build_chili3k  # noqa: PLC0415

    return _finish(
        build_chili3k(
            args.out,
            metals=args.metals,
            radii=args.radii,
            crystal_types=args.crystal_types,
            **_run_options(args),
        )
    )


def _cifs(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.data.build.cifs import build_cifs  # noqa: PLC0415

    return _finish(
        build_cifs(
            args.cif_dir,
            args.out,
            radii=args.radii,
            **_run_options(args),
        )
    )


def _clusters(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.data.build.clusters import build_clusters  # noqa: PLC0415

    return _finish(
        build_clusters(
            args.out,
            metals=args.metals,
            radii=args.radii,
            **_run_options(args),
        )
    )


def _synthetic(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.data.build.synthetic import build_synthetic  # noqa: PLC0415

    return _finish(
        build_synthetic(
            args.out,
            n=args.n,
            seed=args.seed,
            sources=args.sources,
            perov5_csv=args.perov5_csv,
            radii=args.radii,
            patterns=args.patterns,
            relax_steps=args.relax_steps,
            retry_rejected=args.retry_rejected,
            **_run_options(args),
        )
    )
