"""One process against two (DDP on CPU, gloo): validation curves and speed of the MLP
xPDF -> unit-cell experiment.

Builds a CHILI-3K subset (`invdesign data build chili3k --metals ... --radii ...`) in a temporary
folder (or uses `--data DIR`), then trains `configs/experiment/mlp_xpdf_unit_cell.yaml` for a
fixed number of epochs (early stopping off) with the same global batch, through
`invdesign.training.train.train` in this process (the second DDP process is the worker module, as
for `invdesign train`; no evaluation after training, so the runs fit in a few minutes):

- one process, seeds 0, 1, 2 (`data.batch_size=B`): the run-to-run noise;
- two processes, seeds 0 and 1 (`trainer.devices=2 trainer.strategy=ddp data.batch_size=B/2`);
- one process with two threads, seed 0 (the fair speed reference on 2 cores), for
  `--speed-epochs` epochs only;
- one process, seed 0, `data.in_memory=false` (batches read from the files), `--speed-epochs`
  epochs: its curve must equal the in-memory one exactly over those epochs, and its time is the
  cost of not keeping the set in memory.

Memory: in fresh processes, the data module of the task is set up and one training epoch read,
in memory and from the files (`data.in_memory=true|false`), on the set and on the set joined
with `--copies - 1` copies of itself (symlinked folders): the growth of the process's memory with
the number of graphs.

Prints the per-epoch validation loss of every run side by side, the mean absolute difference
between one and two processes (same seed) against the mean absolute difference between seeds of
one process, wall and fit times and the speed ratios; writes
`benchmarks/results/distributed_training.json`.

    python benchmarks/distributed_training.py [--epochs 30] [--batch 32] [--data DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "experiment" / "mlp_xpdf_unit_cell.yaml"
RESULTS = REPO / "benchmarks" / "results" / "distributed_training.json"
INVDESIGN = ([str(Path(sys.executable).parent / "invdesign")]
             if (Path(sys.executable).parent / "invdesign").exists()
             else [sys.executable, "-m", "invdesign.cli.main"])
METALS = ("Mg", "Zn", "Ti", "Fe", "Cu", "Ni")
RADII = ("3", "5", "8")
SPEED_ONLY = ("1proc_2threads_seed0", "1proc_lazy_seed0")


def run(command: list[str], log: Path) -> float:
    """Run `command` (output to `log`); its wall seconds. Exits with the log's tail on failure."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(command)}\n" + log.read_text()[-3000:])
    return seconds


def train(name: str, data: Path, epochs: int, seed: int, extra: list[str]) -> dict:
    """One training run of `CONFIG` with the overrides; its figures."""
    from invdesign.training.config import load_config  # noqa: PLC0415
    from invdesign.training.train import train as fit  # noqa: PLC0415

    overrides = [f"seed={seed}", f"trainer.max_epochs={epochs}",
                 f"trainer.patience={epochs + 1}", "trainer.max_time_minutes=30", *extra]
    start = time.perf_counter()
    info = fit(load_config(CONFIG, overrides, str(data)), evaluate_parts=()).info
    wall = time.perf_counter() - start
    curve = info["val_curve"]
    seconds = curve["seconds"]
    row = {
        "name": name, "seed": seed, "overrides": overrides,
        "processes": info.get("processes", 1), "data_in_memory": info["data_in_memory"],
        "wall_seconds": round(wall, 1), "fit_seconds": info["train_seconds"],
        # the epochs after the first: no process start-up, no first-epoch warm-up
        "seconds_per_epoch": round((seconds[-1] - seconds[0]) / max(len(seconds) - 1, 1), 3),
        "val_loss": curve["val/loss"], "n_train": info["n_train"], "n_val": info["n_val"],
    }
    print(f"  {name}: {row['wall_seconds']} s wall, {row['fit_seconds']} s fit, "
          f"{row['seconds_per_epoch']} s/epoch, final val/loss {row['val_loss'][-1]:.4f}",
          flush=True)
    return row


MEMORY_PROBE = """
import json, resource, sys
from invdesign.core.tasks import TaskSpec
from invdesign.data.datamodule import ChiliTaskDataModule

def status(key):
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

mode, roots = sys.argv[1], sys.argv[2:]
with open('/proc/self/clear_refs', 'w') as f:  # reset the peak (VmHWM) to the current size
    f.write('5')
base = status('VmRSS:')
dm = ChiliTaskDataModule(roots if len(roots) > 1 else roots[0],
                         TaskSpec.parse('xPDF->unit_cell_pos_frac'), batch_size=16,
                         in_memory=mode)
dm.setup()
n = sum(len(batch.target) for batch in dm.train_dataloader())
print(json.dumps({'graphs_read': n,
                  'rss_growth_mb': round((status('VmRSS:') - base) / 2**20, 1),
                  'peak_growth_mb': round((status('VmHWM:') - base) / 2**20, 1)}))
"""


def memory(data: Path, work: Path, copies: int) -> list[dict]:
    """Memory growth of setting up the data and reading one training epoch, in memory and from
    the files, on the set and on `copies` copies of it."""
    folders = [data]
    for k in range(1, copies):
        folder = work / f"copy{k}"
        folder.mkdir()
        for path in sorted(data.rglob("*.h5")):
            target = folder / path.relative_to(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())
        folders.append(folder)
    rows = []
    for n in sorted({1, copies}):
        for mode in ("true", "false"):
            out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, mode,
                                  *map(str, folders[:n])], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"memory probe failed:\n{out.stderr[-3000:]}")
            row = {"copies": n, "in_memory": mode == "true",
                   **json.loads(out.stdout.strip().splitlines()[-1])}
            print(f"  {n} x the set, in_memory={mode}: {row['graphs_read']} graphs read, "
                  f"memory +{row['rss_growth_mb']} MB after the epoch, peak "
                  f"+{row['peak_growth_mb']} MB", flush=True)
            rows.append(row)
    return rows


def mean_abs(a: list[float], b: list[float]) -> float:
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--speed-epochs", type=int, default=5,
                        help="epochs of the 2-thread and the lazy run (speed only)")
    parser.add_argument("--batch", type=int, default=32, help="global batch size (even)")
    parser.add_argument("--data", type=Path, help="an existing CHILI folder (skips the build)")
    parser.add_argument("--metals", nargs="+", default=list(METALS))
    parser.add_argument("--radii", nargs="+", default=list(RADII))
    parser.add_argument("--workers", type=int, default=2, help="build processes")
    parser.add_argument("--copies", type=int, default=4,
                        help="largest number of copies of the set in the memory measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.batch % 2:
        parser.error("--batch must be even (two processes share it)")

    work = Path(tempfile.mkdtemp(prefix="distributed_training_"))
    try:
        build_seconds = None
        data = args.data
        if data is None:
            data = work / "data"
            print(f"building CHILI-3K subset: {len(args.metals)} metals x 12 types, radii "
                  f"{' '.join(args.radii)} Å", flush=True)
            build_seconds = round(run(
                [*INVDESIGN, "data", "build", "chili3k", "--out", str(data), "--metals",
                 *args.metals, "--radii", *args.radii, "--workers", str(args.workers),
                 "--no-progress"], work / "build.log"), 1)
            print(f"  built in {build_seconds} s", flush=True)
        one = [f"data.batch_size={args.batch}"]
        two = [f"data.batch_size={args.batch // 2}", "trainer.devices=2", "trainer.strategy=ddp"]
        runs = {}
        print(f"training {args.epochs} epochs, global batch {args.batch}:", flush=True)
        for name, seed, extra in [
            ("1proc_seed0", 0, one), ("2proc_seed0", 0, two),
            ("1proc_seed1", 1, one), ("2proc_seed1", 1, two),
            ("1proc_seed2", 2, one),
            ("1proc_2threads_seed0", 0, [*one, "trainer.num_threads=2"]),
            ("1proc_lazy_seed0", 0, [*one, "data.in_memory=false"]),
        ]:
            epochs = args.speed_epochs if name in SPEED_ONLY else args.epochs
            runs[name] = train(name, data, epochs, seed, extra)
        print("memory of the data (set up, one training epoch read):", flush=True)
        memory_rows = memory(data, work, args.copies)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    curves = {name: r["val_loss"] for name, r in runs.items()}
    names = ["1proc_seed0", "1proc_seed1", "1proc_seed2", "2proc_seed0", "2proc_seed1"]
    print("\nvalidation loss per epoch")
    print("epoch " + " ".join(f"{n:>12}" for n in names))
    for e in range(args.epochs):
        print(f"{e:5d} " + " ".join(f"{curves[n][e]:12.4f}" for n in names))

    seed_pairs = list(itertools.combinations(["1proc_seed0", "1proc_seed1", "1proc_seed2"], 2))
    between_seeds = float(np.mean([mean_abs(curves[a], curves[b]) for a, b in seed_pairs]))
    ddp_vs_one = float(np.mean([mean_abs(curves[f"2proc_seed{s}"], curves[f"1proc_seed{s}"])
                                for s in (0, 1)]))
    final_one = [curves[f"1proc_seed{s}"][-1] for s in (0, 1, 2)]
    final_two = [curves[f"2proc_seed{s}"][-1] for s in (0, 1)]
    lazy = curves["1proc_lazy_seed0"]
    lazy_diff = float(np.max(np.abs(np.asarray(lazy) - np.asarray(curves["1proc_seed0"][
        :len(lazy)]))))
    t = {name: r for name, r in runs.items()}
    # medians over the seeds: the machine is shared, a single run's speed is noisy
    epoch_one = float(np.median([t[f"1proc_seed{s}"]["seconds_per_epoch"] for s in (0, 1, 2)]))
    epoch_two = float(np.median([t[f"2proc_seed{s}"]["seconds_per_epoch"] for s in (0, 1)]))
    summary = {
        "mean_abs_val_loss_diff_2proc_vs_1proc_same_seed": round(ddp_vs_one, 5),
        "mean_abs_val_loss_diff_between_1proc_seeds": round(between_seeds, 5),
        "ratio_2proc_diff_to_seed_noise": round(ddp_vs_one / between_seeds, 3),
        "final_val_loss_1proc_mean_std": [round(float(np.mean(final_one)), 5),
                                          round(float(np.std(final_one)), 5)],
        "final_val_loss_2proc_mean_std": [round(float(np.mean(final_two)), 5),
                                          round(float(np.std(final_two)), 5)],
        "lazy_vs_in_memory_max_abs_val_loss_diff": lazy_diff,
        "seconds_per_epoch_1proc_median": epoch_one,
        "seconds_per_epoch_2proc_median": epoch_two,
        "speed_ratio_fit_1proc1thread_over_2proc": round(
            t["1proc_seed0"]["fit_seconds"] / t["2proc_seed0"]["fit_seconds"], 3),
        "speed_ratio_epoch_1proc1thread_over_2proc": round(epoch_one / epoch_two, 3),
        "speed_ratio_epoch_1proc2threads_over_2proc": round(
            t["1proc_2threads_seed0"]["seconds_per_epoch"] / epoch_two, 3),
        "lazy_over_in_memory_epoch_time": round(
            t["1proc_lazy_seed0"]["seconds_per_epoch"] / epoch_one, 3),
    }
    print("\nmean |val loss difference| over epochs:")
    print(f"  2 processes vs 1 process, same seed (mean of seeds 0, 1): {ddp_vs_one:.5f}")
    print(f"  1 process, between seeds (mean of 3 pairs):               {between_seeds:.5f}")
    print(f"  ratio: {summary['ratio_2proc_diff_to_seed_noise']}")
    print(f"final val loss: 1 process {summary['final_val_loss_1proc_mean_std'][0]:.4f} "
          f"+- {summary['final_val_loss_1proc_mean_std'][1]:.4f} (3 seeds), 2 processes "
          f"{summary['final_val_loss_2proc_mean_std'][0]:.4f} "
          f"+- {summary['final_val_loss_2proc_mean_std'][1]:.4f} (2 seeds)")
    print(f"lazy (in_memory=false) vs in-memory curve, first {len(lazy)} epochs, max |diff|: "
          f"{lazy_diff:.3g}")
    print("\nrun                      procs  wall s   fit s  s/epoch (epochs 2..)"
          "  [wall: data, model, fit; fit: with the worker's start]")
    for name, r in runs.items():
        print(f"{name:24s} {r['processes']:5d} {r['wall_seconds']:7.1f} {r['fit_seconds']:7.1f} "
              f"{r['seconds_per_epoch']:8.3f}")
    print(f"s/epoch, medians: 1 process {epoch_one:.3f} (3 seeds), 2 processes {epoch_two:.3f} "
          "(2 seeds)")
    print(f"speed ratio (1 process 1 thread / 2 processes): per epoch "
          f"{summary['speed_ratio_epoch_1proc1thread_over_2proc']} (medians), whole fit "
          f"{summary['speed_ratio_fit_1proc1thread_over_2proc']} (seed 0, with the worker's "
          f"start); per epoch, 1 process with 2 threads / 2 processes: "
          f"{summary['speed_ratio_epoch_1proc2threads_over_2proc']}")
    print(f"lazy / in-memory epoch time: {summary['lazy_over_in_memory_epoch_time']}")

    result = {
        "benchmark": "benchmarks/distributed_training.py",
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "config": str(CONFIG.relative_to(REPO)),
        "data": {"metals": args.metals, "radii": args.radii, "build_seconds": build_seconds,
                 "given": None if args.data is None else str(args.data),
                 "n_train": runs["1proc_seed0"]["n_train"],
                 "n_val": runs["1proc_seed0"]["n_val"]},
        "epochs": args.epochs, "speed_epochs": args.speed_epochs, "global_batch": args.batch,
        "cpu_count": os.cpu_count(),
        "summary": summary,
        "memory": memory_rows,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
