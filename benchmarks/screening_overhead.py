"""Wall time the energy screening adds to `invdesign sample`: the README's main command on the
shipped Pt example with the screening and with `--no-energies`.

    python benchmarks/screening_overhead.py [--repeat 2] [--pdf examples/Pt_truncoct_2nm.gr]
        [--threads 1]

Each run is a fresh `invdesign sample --pdf FILE --out TMP` process (start-up, model loading,
pool, Debye screening, energies, outputs), alternating with and without the screening so that a
change of the machine's load affects both alike. Prints every run's wall time, the medians and
their difference, and the run's own `energies:` progress line (what was predicted and the
seconds of the energy step itself, loading the checkpoints included: the figure that a shared
machine's load disturbs least). The issue's target: at most 10 s added.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(pdf: Path, out: Path, energies: bool, threads: int) -> tuple[float, str]:
    """Seconds of wall time of one `invdesign sample` process and its `energies:` line."""
    cmd = [sys.executable, "-m", "invdesign.cli.main", "sample", "--pdf", str(pdf), "--out",
           str(out)] + ([] if energies else ["--no-energies"])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    line = next((s for s in done.stderr.splitlines() if s.startswith("energies:")), "")
    return seconds, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, default=ROOT / "examples" / "Pt_truncoct_2nm.gr")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the runs")
    args = parser.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    note, steps = "", []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for energies in (False, True) if i % 2 == 0 else (True, False):
                out = Path(tmp) / f"run_{i}_{int(energies)}"
                seconds, line = run(args.pdf, out, energies, args.threads)
                times[energies].append(seconds)
                note = line or note
                if line:
                    steps.append(float(line.rsplit("; ", 1)[-1].split()[0]))
                print(f"run {i + 1} {'with' if energies else 'without'} screening: "
                      f"{seconds:.1f} s", flush=True)
    with_s, without_s = statistics.median(times[True]), statistics.median(times[False])
    print(f"median without screening: {without_s:.1f} s")
    print(f"median with screening:    {with_s:.1f} s")
    print(f"added by the screening:   {with_s - without_s:.1f} s (target: at most 10 s)")
    print(f"energy step inside the runs: {', '.join(f'{t:.1f}' for t in steps)} s")
    print(note)


if __name__ == "__main__":
    main()
