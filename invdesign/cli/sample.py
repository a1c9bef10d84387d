"""`invdesign sample --pdf FILE ...`: candidate structures that explain a measured pattern.

Parses the options, reads the patterns (header values, overridden by options), calls
`invdesign.pipeline.sample` and prints what was taken from where and the ranked table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from invdesign.pipeline import defaults


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sample",
        help="candidate structures for a measured PDF/XRD/SAXS, fitted and ranked",
        description="Build one candidate pool (generator samples, metallic packings and "
                    "cluster shapes, structure-type library, your CIFs), collapse duplicates, "
                    "screen every candidate against the measured data (particles with "
                    "DebyeCalculator, crystals as attenuated crystals), optionally refine the "
                    "best, rank (valid first, then Rw) and write them with summaries and fit "
                    "plots. Without --pdf: --xrd ranks crystal candidates (the XRD model's cells, "
                    "library types, --library CIFs) by powder-fit Rwp (--composition needed); "
                    "--saxs gives the particle size (sphere fit) and, with --composition, ranks "
                    "the SAXS model's particles (and a metal's packings) by their Debye I(q).",
    )
    data = parser.add_argument_group("measured data")
    data.add_argument("--pdf", type=Path, metavar="FILE", help="G(r): .gr, .fgr or columns")
    data.add_argument("--xrd", type=Path, metavar="FILE", help="powder XRD I(q) or I(2theta)")
    data.add_argument("--saxs", type=Path, metavar="FILE", help="SAXS I(q)")
    data.add_argument("--composition", help="e.g. Pt, CdSe, 'Au144 S60 C480 H540' "
                      "(default: the header's, else the model's species)")
    data.add_argument("--metal-core", action="store_true",
                      help="model only the metals of the composition (drop ligands)")
    data.add_argument("--qmin", type=float, help="Å^-1 (overrides the header)")
    data.add_argument("--qmax", type=float, help="Å^-1 (overrides the header)")
    data.add_argument("--qdamp", type=float, help="Å^-1 (default 0.04 when not in the header)")
    data.add_argument("--biso", type=float, help="Å^2 isotropic displacement (default 0.3)")
    data.add_argument("--radiation", choices=("xray", "neutron"))
    data.add_argument("--wavelength", type=float, help="Å, for XRD in 2-theta")
    data.add_argument("--x-unit", choices=("q_A", "q_nm", "2theta_deg"),
                      help="x unit of --xrd/--saxs files whose header does not say")
    model = parser.add_argument_group("model")
    which = model.add_mutually_exclusive_group()
    which.add_argument("--model", help=f"shipped model name (default {defaults.DEFAULT_MODEL} "
                       f"with --pdf, {defaults.KIND_MODELS['xrd']} with --xrd alone, "
                       f"{defaults.KIND_MODELS['saxs']} with --saxs alone)")
    which.add_argument("--checkpoint", type=Path, metavar="FILE", help="a checkpoint file/folder")
    run = parser.add_argument_group("run")
    run.add_argument("--n", type=int, default=defaults.DEFAULT_N,
                     help="samples drawn from each generator that applies (default "
                     f"{defaults.DEFAULT_N}); known structures (packings, cluster shapes, library "
                     "types, --library CIFs) are added in full")
    run.add_argument("--seed", type=int, default=defaults.DEFAULT_SEED)
    run.add_argument("--refine", action="store_true",
                     help="refine the best candidates fully (crystals as attenuated crystals, "
                     "particles through DebyeCalculator)")
    run.add_argument("--refine-top", type=int, default=defaults.REFINE_TOP, metavar="K",
                     help="how many of the best candidates (valid first, then screened Rw) are "
                     f"refined (default {defaults.REFINE_TOP})")
    run.add_argument("--library", type=Path, metavar="DIR",
                     help="a folder of CIFs added to the structure-type library (one type each)")
    run.add_argument("--aflow-prototypes", action=argparse.BooleanOptionalAction, default=None,
                     help="add the 288 AFLOW prototypes pymatgen ships to the library "
                          "(default: with --xrd and no --pdf)")
    run.add_argument("--fit-range", type=float, nargs=2, metavar=("RMIN", "RMAX"),
                     help="r range of the Rw in Å (default 1.5 to min(rmax, 30)); --xrd "
                     "without --pdf: the 2-theta range in deg (default: the whole pattern)")
    run.add_argument("--no-energies", action="store_true",
                     help="skip the energy screening (formation energy of each candidate's "
                     "material, excess energy of each particle)")
    run.add_argument("--out", type=Path, help="output folder (default sample_<input name>)")
    run.add_argument("--force", action="store_true", help="replace an existing --out")
    run.add_argument("--device", default="cpu", help="torch device (default cpu)")
    run.add_argument("--sampler", metavar="NAME", help="diffusion models: ddpm, ddim or "
                     "dpmsolver (default: the checkpoint's)")
    run.add_argument("--steps", type=int, metavar="K",
                     help="diffusion models: sampling steps (default: the checkpoint's)")
    run.add_argument("--guidance-scale", type=float, metavar="S",
                     help="diffusion models: forward-model guidance of the samples towards the "
                     "input (Polyak step factor, e.g. 1; 0: off; default: the checkpoint's)")
    run.add_argument("--guidance-start", type=float, metavar="F",
                     help="diffusion models: fraction of the reverse trajectory after which "
                     "guidance acts, 0..1 (default: the checkpoint's, 0.8)")
    run.add_argument("--resample-every", type=int, metavar="K",
                     help="diffusion models with guidance: resample the samples by their misfit "
                     "every K guided steps (sequential Monte Carlo; 0: never, the default)")
    run.add_argument("--resample-temperature", type=float, metavar="T",
                     help="diffusion models: temperature of the resampling weights "
                     "exp(-misfit / T) (default: the checkpoint's, 0.05)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.core.errors import InvdesignError  # noqa: PLC0415

    # lazy: the CLI imports only what the command needs
    from invdesign.io.measured import read_pattern  # noqa: PLC0415

    # lazy: the CLI imports only what the command needs
    from invdesign.pipeline.report import report  # noqa: PLC0415

    # lazy: the CLI imports only what the command needs
    from invdesign.pipeline.run import sample  # noqa: PLC0415

    files = {"pdf": args.pdf, "xrd": args.xrd, "saxs": args.saxs}
    if not any(files.values()):
        raise InvdesignError("give a measured pattern: --pdf FILE, --xrd FILE or --saxs FILE")
    common = {"composition": args.composition, "metal_core": args.metal_core or None,
              "radiation": args.radiation}
    per_kind = {
        "pdf": {"qmin": args.qmin, "qmax": args.qmax, "qdamp": args.qdamp, "biso": args.biso},
        "xrd": {"wavelength": args.wavelength, "x_unit": args.x_unit, "biso": args.biso},
        "saxs": {"wavelength": args.wavelength, "x_unit": args.x_unit, "biso": args.biso},
    }
    patterns = {kind: read_pattern(path, kind=kind, **common, **per_kind[kind])
                for kind, path in files.items() if path is not None}
    first = next(p for p in files.values() if p is not None)
    out = args.out or Path(f"sample_{first.stem}")
    result = sample(
        patterns, model=args.model, checkpoint=args.checkpoint, n=args.n, seed=args.seed,
        refine=args.refine, refine_top=args.refine_top, device=args.device, out=out,
        force=args.force, fit_range=tuple(args.fit_range) if args.fit_range else None,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
        sampler=args.sampler, steps=args.steps, guidance_scale=args.guidance_scale,
        guidance_start=args.guidance_start, resample_every=args.resample_every,
        resample_temperature=args.resample_temperature, library=args.library,
        aflow=args.aflow_prototypes,
        energies=not args.no_energies,
    )
    print(report(result, taken=False))  # the taken values were printed as progress
    return 0
