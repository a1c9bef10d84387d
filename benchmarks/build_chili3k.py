"""Build the full CHILI-3K (636 unit cells, 3,180 graphs): wall time, s per unit cell, peak memory.

Target on the 2-core machine: under 15 minutes in all and under 6 GB peak (CHILI: 2 h 51 min, 16.2 s
per CIF).

    python benchmarks/build_chili3k.py --out DATA_DIR/chili3k --workers 2

A rerun on the same folder resumes (finished files are skipped; the figures then cover the new files
only).
"""

from __future__ import annotations

import argparse
import resource
import time

from invdesign.data.build.chili3k import CHILI_RADII, build_chili3k


def peak_memory_gb() -> tuple[float, float]:
    """Peak resident memory (GB) of this process and of its largest finished child (ru_maxrss, KB on
    Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    return own, child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--metals", nargs="+", default=None, help="subset of metals (default: all 53)"
    )
    parser.add_argument("--radii", nargs="+", type=float, default=list(CHILI_RADII))
    args = parser.parse_args()

    start = time.perf_counter()
    summary = build_chili3k(args.out, metals=args.metals, radii=args.radii, workers=args.workers)
    wall = time.perf_counter() - start
    written = summary.count("written")
    own, child = peak_memory_gb()
    print(summary.line())
    print(
        f"wall time: {wall:.1f} s ({wall / 60:.1f} min) for {written} new unit cells, "
        f"{args.workers} workers"
    )
    if written:
        print(
            f"mean per unit cell: {wall / written:.2f} s wall, "
            f"{wall * args.workers / written:.2f} s worker time"
        )
    print(
        f"peak memory: main {own:.2f} GB, largest worker {child:.2f} GB, "
        f"bound incl. children {own + args.workers * child:.2f} GB"
    )
    for outcome in summary.outcomes:
        if outcome.status == "failed":
            print(f"FAILED {outcome.name}: {outcome.reason}")


if __name__ == "__main__":
    main()
