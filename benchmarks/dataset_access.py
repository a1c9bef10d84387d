"""Index and access speed of `ChiliDataset` on a folder of CHILI files (e.g. a full CHILI-3K).

Prints: fresh index time (every file opened), cached index time (no file opened), random access in
graphs/s, and the task-array cache (cold read, then .npz reload) for the pos_abs task, plus peak
memory.

    python benchmarks/dataset_access.py DATA_DIR/chili3k [--n-random 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from invdesign.data.dataset import ChiliDataset


class Clock:
    """Wall and process-CPU seconds of a block (on a shared machine CPU time shows the cost)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU"

    def rate(self, n: int) -> str:
        return f"{n / self.wall:.1f}/s wall, {n / self.cpu:.1f}/s CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder of CHILI *.h5 files")
    parser.add_argument("--n-random", type=int, default=500, help="random graphs to read")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:  # a private index cache: the first build is fresh
        with Clock() as fresh:
            ds = ChiliDataset(args.dir, cache_dir=cache)
        with Clock() as cached:
            again = ChiliDataset(args.dir, cache_dir=cache)
    n_files = ds.index_report.indexed
    print(f"dataset: {args.dir}  files: {n_files}  graphs: {len(ds)}")
    print(f"index, fresh (every file opened): {fresh}  ({fresh.rate(n_files)} files)")
    print(f"index, cached (no file opened):   {cached}  (reused {again.index_report.reused})")

    rng = np.random.default_rng(args.seed)
    picks = [int(i) for i in rng.integers(0, len(ds), size=args.n_random)]
    with Clock() as clock:
        nodes = sum(ds[i].num_nodes for i in picks)
    print(
        f"random access, all graphs: {clock.rate(len(picks))} graphs "
        f"(mean {nodes / len(picks):.0f} atoms/graph)"
    )

    small = ds.task_indices("pos_abs")
    picks = [int(i) for i in rng.choice(small, size=min(args.n_random, len(small)), replace=False)]
    with Clock() as clock:
        nodes = sum(ds[i].num_nodes for i in picks)
    print(
        f"random access, pos_abs task graphs (<= 200 atoms): {clock.rate(len(picks))} graphs "
        f"(mean {nodes / len(picks):.0f} atoms/graph)"
    )

    fields = ["xPDF", "xrd", "saxs", "pos_abs", "x", "unit_cell_pos_frac", "cell_params"]
    with Clock() as cold:
        ds.cache_task_arrays(small, fields, cache=False)
    ds.cache_task_arrays(small, fields)  # writes the .npz
    with Clock() as warm:
        ds.cache_task_arrays(small, fields)
    print(
        f"task arrays, {len(small)} pos_abs graphs x {len(fields)} fields: from HDF5 {cold}; "
        f"from the .npz cache {warm}"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS): {peak:.0f} MB")


if __name__ == "__main__":
    main()
