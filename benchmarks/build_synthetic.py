"""Synthetic CHILI-100K-like build: cost per cell, cells/hour on 1 and 2 workers, memory, rejects.

    python benchmarks/build_synthetic.py --out WORK/bench_synthetic [--n 2000] [--n1 200]
        [--radii 5 10 15 20 25] [--patterns xrd xPDF ...] [--profile-n 20]

1. Per-cell cost (`--profile-n` cells, serially in this process, after the builds): placing and
   relaxing, cutting the particles, and simulating the patterns of each particle radius, so the cost
   of a build with fewer radii is read off (relax + cut + the chosen radii's simulations).
2. Scaling: `--n` cells built with 2 workers into OUT/w2, the first `--n1` of them with 1 worker
   into OUT/w1 (the 1-worker case is timed on that subset; say so when quoting). Cells per hour
   count every processed task (written or rejected) and, separately, the written ones.
3. Peak memory: this process and its largest finished worker (ru_maxrss); CPU seconds per cell
   (this process and its workers), a figure that holds on a machine shared with other jobs.
4. Rejection reasons with counts (`reason_kind`: up to the first ':', formulas and numbers masked).
5. Extrapolation to a CHILI-100K-size build (100,000 cells) on 2 cores (the 2-worker rate) and on a
   64-core cluster (the 1-worker rate x 64 x the measured 2-worker efficiency), and from the CPU
   seconds per cell on dedicated cores.
Figures go to benchmarks/results/build_synthetic.json, also after each build with
"complete": false, so a run stopped later keeps what it measured. Folders are built fresh (an
existing OUT/w1 or OUT/w2 is refused) unless `--resume`: then a folder a stopped run left is
continued and its rates count only the tasks this run processed (not the files already there nor
the refusals an earlier run remembered); say so when quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import time
from collections import Counter
from pathlib import Path

import numpy as np

from invdesign.core.patterns import PATTERNS
from invdesign.data.build.chili3k import CHILI_RADII
from invdesign.data.build.synthetic import (
    RELAX_STEPS,
    build_synthetic,
    source_cell,
    synthetic_sources,
)

RESULTS = Path(__file__).parent / "results" / "build_synthetic.json"
CHILI100K_CELLS = 100_000


def peak_memory_gb() -> tuple[float, float]:
    """Peak resident memory (GB) of this process and of its largest finished child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    return own, child


def profile(n: int, seed: int, radii: list[float], patterns: tuple[str, ...]) -> dict:
    """Mean seconds per cell of each phase over the first `n` planned cells (accepted ones)."""
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    from invdesign.data.build.cifs import LIGAND_NUMBERS, METAL_NUMBERS  # noqa: PLC0415
    from invdesign.physics.calculator import simulate_all  # noqa: PLC0415
    from invdesign.physics.cutter import cut_particles  # noqa: PLC0415

    tasks = synthetic_sources(n, seed, ["synthetic"], radii=radii)
    relax_s, cut_s, rejected = [], [], 0
    sim_s: dict[float, list[float]] = {r: [] for r in radii}
    atoms: dict[float, list[int]] = {r: [] for r in radii}
    with threadpool_limits(limits=1):
        source_cell(tasks[0])  # load CHGNet once outside the timing
        for task in tasks:
            start = time.perf_counter()
            try:
                cell = source_cell(task)
            except Exception:  # noqa: BLE001 - a rejection still cost its relaxation
                relax_s.append(time.perf_counter() - start)
                rejected += 1
                continue
            relax_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            particles = cut_particles(cell, radii, metals=METAL_NUMBERS, ligands=LIGAND_NUMBERS)
            cut_s.append(time.perf_counter() - start)
            for particle in particles:
                r = float(particle.info.get("radius", np.nan))
                start = time.perf_counter()
                if patterns:
                    simulate_all(particle, patterns)
                if r in sim_s:
                    sim_s[r].append(time.perf_counter() - start)
                    atoms[r].append(particle.n_atoms)
    out = {
        "cells": n, "rejected": rejected,
        "relax_s_per_cell": float(np.mean(relax_s)),
        "cut_s_per_cell_all_radii": float(np.mean(cut_s)) if cut_s else None,
        "simulate_s_per_particle": {f"{r:g}": float(np.mean(v)) if v else None
                                    for r, v in sim_s.items()},
        "mean_atoms_per_particle": {f"{r:g}": float(np.mean(v)) if v else None
                                    for r, v in atoms.items()},
    }
    sims = out["simulate_s_per_particle"]
    for label, subset in (("all radii", radii), ("smallest radius", radii[:1]),
                          ("two smallest radii", radii[:2])):
        cost = out["relax_s_per_cell"] + (out["cut_s_per_cell_all_radii"] or 0.0)
        cost += sum(sims[f"{r:g}"] or 0.0 for r in subset)
        out[f"s_per_cell_{label.replace(' ', '_')}"] = cost
    return out


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (s)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + child.ru_utime + child.ru_stime


def reason_kind(reason: str) -> str:
    """A rejection reason without its cell: up to its first ':', formulas and numbers masked
    ('pyxtal could not place # in space group # within # coordinate trials')."""
    return re.sub(r"\S*\d\S*", "#", reason.split(":")[0])


def timed_build(out: Path, n: int, workers: int, seed: int, radii: list[float],
                patterns: tuple[str, ...], resume: bool = False) -> dict:
    if out.exists() and not resume:
        raise SystemExit(f"{out} exists; give a fresh --out so no file is skipped, or --resume")
    # files already there and refusals remembered by an earlier run are not this run's work
    there = {p.stem for p in [*out.glob("*.h5"), *out.glob(".rejected/*.tsv")]}
    load = os.getloadavg()[0]
    start, cpu = time.perf_counter(), cpu_seconds()
    summary = build_synthetic(out, n=n, seed=seed, sources=["synthetic"], radii=radii,
                              patterns=patterns, workers=workers, progress=False)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    # this run's work: a duplicate found among files already there is not
    new = [o for o in summary.outcomes if o.status != "exists" and o.name not in there]
    written = sum(o.status == "written" for o in new)
    done = sum(o.status in ("written", "rejected") for o in new)
    reasons = Counter(reason_kind(o.reason) for o in new if o.status == "rejected")
    return {
        "workers": workers, "cells": n, "already_there": len(there), "processed": done,
        "wall_s": wall, "written": written,
        "rejected": sum(o.status == "rejected" for o in new),
        "failed": sum(o.status == "failed" for o in new),
        "cells_per_hour": 3600.0 * done / wall, "written_per_hour": 3600.0 * written / wall,
        "rejection_reasons": dict(reasons.most_common()),
        "cpu_s": cpu, "cpu_s_per_cell": cpu / max(done, 1),
        "load_average_1min": [load, os.getloadavg()[0]],
        "line": summary.line().replace(str(out.parent), "OUT"),  # no machine path in results
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="scratch folder (w1/ and w2/ are made in it)")
    parser.add_argument("--n", type=int, default=2000, help="cells of the 2-worker build")
    parser.add_argument("--n1", type=int, default=200,
                        help="cells of the 1-worker build (the first of the same plan)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radii", nargs="+", type=float, default=list(CHILI_RADII))
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS))
    parser.add_argument("--profile-n", type=int, default=20, help="cells for the per-cell cost")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--resume", action="store_true",
                        help="continue OUT/w1 and OUT/w2 if a stopped run left them")
    args = parser.parse_args()
    patterns = tuple(p for p in args.patterns if p != "none")
    out = Path(args.out)
    result: dict = {"command": "python benchmarks/build_synthetic.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if k not in ("out", "skip_profile", "resume"))
        + (" --resume" if args.resume else ""),
        "radii": args.radii, "patterns": list(patterns), "relax_steps": RELAX_STEPS,
        "cpus": os.cpu_count(), "load_average_start": os.getloadavg()}

    # builds first, both cold (the 1-worker build loads CHGNet in this process, the 2-worker one
    # starts a local Dask cluster whose workers load it), then the per-phase profile
    runs: list[dict] = []
    result["runs"] = runs
    if args.n1 > 0:
        runs.append(timed_build(out / "w1", min(args.n1, args.n), 1, args.seed, args.radii,
                                patterns, args.resume))
        save(result, complete=False)  # a long run stopped later still leaves the 1-worker figures
    if args.n > 0:
        runs.append(timed_build(out / "w2", args.n, 2, args.seed, args.radii, patterns,
                                args.resume))
        save(result, complete=False)
    if not args.skip_profile:
        prof = profile(args.profile_n, args.seed, args.radii, patterns)
        result["per_cell_cost"] = prof
        print(f"per-cell cost over {prof['cells']} cells ({prof['rejected']} rejected): "
              f"place+relax {prof['relax_s_per_cell']:.2f} s, cut (all radii) "
              f"{prof['cut_s_per_cell_all_radii'] or 0:.2f} s")
        for r, s in prof["simulate_s_per_particle"].items():
            if s is not None:
                print(f"  simulate radius {r} Å ({prof['mean_atoms_per_particle'][r]:.0f} atoms): "
                      f"{s:.2f} s")
        print(f"  s per accepted cell: all radii {prof['s_per_cell_all_radii']:.2f}, two smallest "
              f"{prof['s_per_cell_two_smallest_radii']:.2f}, smallest "
              f"{prof['s_per_cell_smallest_radius']:.2f}")

    own, child = peak_memory_gb()
    result.update({"peak_memory_gb": {"main": own, "largest_worker": child},
                   "load_average_end": os.getloadavg()})
    for run in runs:
        print(f"{run['workers']} worker(s), {run['cells']} cells ({run['processed']} processed "
              f"in this run, {run['already_there']} files already there): {run['wall_s']:.0f} s, "
              f"{run['cells_per_hour']:.0f} cells/h processed, {run['written_per_hour']:.0f} "
              f"written/h; {run['line']}")
        print(f"  CPU {run['cpu_s_per_cell']:.1f} s per cell; load average "
              f"{run['load_average_1min'][0]:.1f} -> {run['load_average_1min'][1]:.1f}; "
              f"rejections: {run['rejection_reasons']}")
    print(f"peak memory: main {own:.2f} GB, largest worker {child:.2f} GB")
    by_workers = {r["workers"]: r for r in runs}
    if 1 in by_workers and 2 in by_workers:
        rate1, rate2 = by_workers[1]["cells_per_hour"], by_workers[2]["cells_per_hour"]
        ratio = rate2 / rate1
        efficiency = ratio / 2.0
        hours_2 = CHILI100K_CELLS / rate2
        hours_64 = CHILI100K_CELLS / (rate1 * 64 * efficiency)
        cpu_cell = by_workers[1]["cpu_s_per_cell"]
        result["scaling"] = {"ratio_2_over_1": ratio, "efficiency": efficiency,
                             "chili100k_hours_2_cores": hours_2,
                             "chili100k_hours_64_cores": hours_64,
                             "cpu_s_per_cell_1_worker": cpu_cell,
                             "chili100k_hours_by_cpu_2_cores":
                                 CHILI100K_CELLS * cpu_cell / 2 / 3600,
                             "chili100k_hours_by_cpu_64_cores":
                                 CHILI100K_CELLS * cpu_cell / 64 / 3600,
                             "note": "1-worker rate timed on the first --n1 cells; 64 cores "
                                     "assume the 2-worker efficiency holds"}
        print(f"scaling 2/1 workers: {ratio:.2f}x (efficiency {efficiency:.0%}); "
              f"CHILI-100K size ({CHILI100K_CELLS:,} cells): {hours_2:.0f} h on 2 cores, "
              f"{hours_64:.1f} h on 64 cores (measured wall rates)")
        print(f"by CPU time ({cpu_cell:.1f} CPU s per cell, 1 worker), on dedicated cores: "
              f"{CHILI100K_CELLS * cpu_cell / 2 / 3600:.0f} h on 2, "
              f"{CHILI100K_CELLS * cpu_cell / 64 / 3600:.1f} h on 64")
    save(result, complete=True)
    print(f"wrote {RESULTS}")


def save(result: dict, complete: bool) -> None:
    """Write the figures so far to `RESULTS` (`complete` False after each finished build)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**result, "complete": complete}, indent=2) + "\n")


if __name__ == "__main__":
    main()
