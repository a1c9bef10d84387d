"""Benchmark of `invdesign sample` on measured data (issue 4): Pt nanoparticle and Ni (X-ray).

    python benchmarks/sample_measured.py [--checkpoint FILE] [--n 16] [--seed 0]

For each dataset: `sample` with 16 candidates + forward simulation, then again with --refine;
prints the best Rw before and after refinement, the best candidate's nearest-neighbour distance
against the known value (Pt 2.775 Å, Ni 2.492 Å) and the wall time (targets: < 30 s without,
< 60 s with refinement, on 2 cores), plus the process CPU time and the load average, because the
machine may be shared. Fit range 1.5-20 Å (the Ni data end at 20 Å). Data: ../shared/data/measured.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from invdesign.io.measured import read_pattern
from invdesign.pipeline import sample
from invdesign.pipeline.result import nn_distance

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "measured"
CASES = (("Pt nanoparticle", "Pt-nanoparticle-JQ_S1.gr", 2.775, 0.19),
         ("Ni (X-ray)", "Ni-xray.gr", 2.492, None))
FIT_RANGE = (1.5, 20.0)


def run(path: Path, refine: bool, args: argparse.Namespace):
    pattern = read_pattern(path)
    wall, cpu = time.perf_counter(), time.process_time()
    result = sample({"pdf": pattern}, checkpoint=args.checkpoint, model=args.model, n=args.n,
                    seed=args.seed, refine=refine, fit_range=FIT_RANGE, device=args.device)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    print(f"sample benchmark: n={args.n}, seed={args.seed}, fit range {FIT_RANGE[0]}-"
          f"{FIT_RANGE[1]} Å, device {args.device}, cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    header = (f"{'data':<16} {'route':<10} {'best Rw':>8} {'refined':>8} {'target':>7} "
              f"{'NN (Å)':>7} {'known':>6} {'err %':>6} {'t (s)':>7} {'cpu (s)':>8} "
              f"{'t ref (s)':>9} {'cpu ref':>8}  best candidate")
    print(header)
    for label, name, known, target in CASES:
        path = args.data / name
        if not path.is_file():
            print(f"{label:<16} skipped: {path} not found")
            continue
        plain, t0, c0 = run(path, False, args)
        refined, t1, c1 = run(path, True, args)
        best = refined.best
        nn = nn_distance(best.final)
        route = "packings" if plain.model == "packings" else plain.model[:10]
        shape = best.final.info.get("shape", best.final.info.get("source", ""))
        print(f"{label:<16} {route:<10} {plain.best.rw:>8.4f} {best.final_rw:>8.4f} "
              f"{target if target else '-':>7} {nn:>7.4f} {known:>6.3f} "
              f"{100 * (nn - known) / known:>6.2f} {t0:>7.1f} {c0:>8.1f} {t1:>9.1f} {c1:>8.1f}"
              f"  {shape} {best.final.n_atoms} atoms, {best.params}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
