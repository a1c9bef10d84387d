"""Run builder tasks (one source -> one HDF5 file) on Dask: resumable, atomic, repeatable.

A task is a small frozen, picklable object with a `name`; a work function is a top-level function
`work(task, out_dir) -> Outcome` that writes `out_dir/<name>.h5` (atomically, via
`write_chili_file`) and depends on nothing but its inputs, so the same pair runs anywhere. With
`scheduler` the tasks go to a running Dask cluster (whose workers must share the output folder's
file system); else with `workers` > 1 to a local Dask cluster of that many processes, one thread
each; else they run in this process. Every way writes the same files.

The runner locks the output folder (`invdesign.io.outputs.locked_folder`: resolved, not an input,
one build at a time), skips tasks whose file exists and opens as a complete CHILI file (a truncated
or corrupt one is rebuilt, and the report says so), removes temporary `.part` files an interrupted
run left, shows a progress bar, and writes a report (`build_report.tsv`: name, status, reason) in
task order. A task that raises, or whose worker dies, is 'failed' (or 'rejected' for an
`InvdesignError`) and the others go on.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from tqdm.auto import tqdm

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.data.hdf5_io import open_h5, require
from invdesign.io.atomic import atomic_write_text
from invdesign.io.outputs import locked_folder

REPORT_NAME = "build_report.tsv"
Status = Literal["written", "exists", "rejected", "failed"]


class Task(Protocol):
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Outcome:
    """What happened to one task: 'written', 'exists' (skipped on resume), 'rejected' (bad source,
    with the reason) or 'failed' (an unexpected error, with its message)."""

    name: str
    status: Status
    reason: str = ""


@dataclass
class BuildSummary:
    """Outcomes of a build in task order, and the report path."""

    outcomes: list[Outcome]
    report: Path

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)

    def line(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("written", "exists", "rejected", "failed")]
        rebuilt = sum(o.reason.startswith(REBUILT) for o in self.outcomes)
        if rebuilt:
            parts[0] += f" ({rebuilt} rebuilt over a broken file)"
        return ", ".join(parts) + f" (report: {self.report})"


def output_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.h5"


REBUILT = "rebuilt: "
_GLOBAL_KEYS = ("CellParameters", "CrystalType", "SpaceGroupSymbol", "SpaceGroupNumber",
                "CrystalSystem", "ElementsPresent")
_GRAPH_KEYS = ("NodeFeatures", "EdgeFeatures", "EdgeDirections", "FractionalCoordinates",
               "AbsoluteCoordinates")


def broken_reason(path: Path) -> str | None:
    """None if `path` opens as a complete CHILI file (the groups and datasets of the official
    layout, see `invdesign.data.hdf5_io`), else why not (truncated, corrupt, groups missing)."""
    try:
        with open_h5(path) as h5:
            labels = require(h5, "GlobalLabels", path)
            for key in _GLOBAL_KEYS:
                require(labels, key, path)
            graphs = [require(h5, "UnitCellGraph", path)]
            graphs += list(require(h5, "DiscreteParticleGraphs", path).values())
            require(h5, "ScatteringData", path)
            for graph in graphs:
                for key in _GRAPH_KEYS:
                    require(graph, key, path)
    except DataFormatError as exc:
        return exc.message
    except (OSError, KeyError, ValueError, RuntimeError) as exc:  # h5py's errors on a bad file
        return f"unreadable ({type(exc).__name__}: {exc})".replace("\n", " ")
    return None


def _is_done(path: Path) -> bool:
    """`path` exists and is a complete CHILI file."""
    return path.exists() and broken_reason(path) is None


def _unit(work: Callable[[Any, Path], Outcome], task: Any, out_dir: Path,
          broken: bool) -> Outcome:
    """One task on a Dask worker: one torch thread (the cluster's processes are the parallelism;
    a worker started with several threads runs that many tasks at once), errors become outcomes."""
    import torch  # noqa: PLC0415 - lazy: only workers need torch here, and `work` imports it anyway

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    _keep_freed_memory()
    return _safe(work, task, out_dir, broken)


_MALLOC_TUNED: list[bool] = []


def _keep_freed_memory() -> None:
    """Undo, once per worker process, the `MALLOC_TRIM_THRESHOLD_=65536` a Dask nanny gives its
    workers: it switches off glibc's adaptive mmap threshold, so every array above 128 KiB is
    mmapped and its pages faulted in again on each allocation (measured on CHILI-3K units: 71,000
    minor page faults and 0.16 s of system time per unit against 1,500 and 0.005 s serially, i.e.
    +75 % CPU). Fixed thresholds like the adaptive ones' ceiling (32 MiB mmap, 64 MiB trim) keep
    freed memory for reuse."""
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED.append(True)
    if os.environ.get("MALLOC_TRIM_THRESHOLD_") is None:
        return  # glibc's adaptive defaults are in force
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc (musl): no such variable to undo
    libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD


def _remove_partials(out_dir: Path) -> None:
    for part in out_dir.glob(".*.part"):
        part.unlink(missing_ok=True)


def check_workers(workers: int) -> int:
    if int(workers) < 1:
        raise InvdesignError(f"--workers must be at least 1, got {workers}")
    return int(workers)


def run_tasks(
    tasks: Sequence[Any],
    work: Callable[[Any, Path], Outcome],
    out_dir: str | os.PathLike,
    workers: int = 1,
    desc: str = "build",
    progress: bool = True,
    inputs: Sequence[str | os.PathLike] = (),
    scheduler: str | None = None,
) -> BuildSummary:
    """Run `work(task, out_dir)` for every task without an output file yet.

    Args:
        tasks: objects with a unique `name` (the output file stem).
        work: a top-level (picklable) function writing `out_dir/<name>.h5` and returning an
        `Outcome`.
        out_dir: output folder (created).
        workers: processes of a local Dask cluster; 1 runs in this process.
        desc: progress-bar label.
        progress: show a tqdm progress bar.
        inputs: source files or folders `out_dir` must not be, hold or lie inside.
        scheduler: address of a running Dask scheduler (`tcp://HOST:PORT`) whose workers run
        the tasks (they must see `out_dir` at the same path); None: `workers` decides.
    """
    workers = check_workers(workers)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise InvdesignError("builder tasks must have unique names")
    if scheduler is None:
        with locked_folder(out_dir, inputs) as out:
            return _run_locked(tasks, work, out, workers, desc, progress, None)
    if workers != 1:
        raise InvdesignError("--workers sizes a local cluster; with --scheduler the cluster's own "
                             "workers run the build (add some with `dask worker`)")
    from invdesign.data.build import dask_cluster  # noqa: PLC0415 - lazy: distributed takes 1 s

    client = dask_cluster.connect(scheduler)  # before the lock: an unreachable one writes nothing
    try:
        with locked_folder(out_dir, inputs) as out:
            dask_cluster.check_workers_see(client, out)
            return _run_locked(tasks, work, out, workers, desc, progress, client)
    finally:
        client.close()


def _run_locked(tasks: Sequence[Any], work: Callable[[Any, Path], Outcome], out_dir: Path,
                workers: int, desc: str, progress: bool, client: Any) -> BuildSummary:
    _remove_partials(out_dir)
    names = [t.name for t in tasks]
    results: dict[str, Outcome] = {}
    todo, broken = [], {}
    for task in tasks:
        path = output_path(out_dir, task.name)
        reason = broken_reason(path) if path.exists() else "absent"
        if reason is None:
            results[task.name] = Outcome(task.name, "exists")
        else:
            todo.append(task)
            if reason != "absent":
                broken[task.name] = reason
    bar = tqdm(total=len(todo), desc=desc, disable=not progress or not todo, smoothing=0.05)
    try:
        if client is None and (workers == 1 or len(todo) <= 1):
            for task in todo:
                results[task.name] = _safe(work, task, out_dir, task.name in broken)
                bar.update(1)
        elif todo:
            _run_dask(client, todo, work, out_dir, broken, workers, results, bar)
    finally:
        bar.close()
    for name, reason in broken.items():
        if results[name].status == "written":
            results[name] = Outcome(name, "written", f"{REBUILT}{reason}")
    outcomes = [results[n] for n in names]
    report = write_report(out_dir / REPORT_NAME, outcomes)
    return BuildSummary(outcomes, report)


def _run_dask(client: Any, todo: Sequence[Any], work: Callable[[Any, Path], Outcome],
              out_dir: Path, broken: dict[str, str], workers: int,
              results: dict[str, Outcome], bar: tqdm) -> None:
    """Run `todo` on `client`'s cluster, or on a local cluster of `workers` processes if None."""
    from invdesign.data.build import dask_cluster  # noqa: PLC0415 - lazy: distributed takes 1 s

    def done(name: str, outcome: Outcome | None, error: BaseException | None) -> None:
        if error is not None:  # the worker died or the unit could not be run at all
            outcome = Outcome(name, "failed",
                              f"{type(error).__name__}: {error}".replace("\n", " "))
        results[name] = outcome
        bar.update(1)

    calls = [(t.name, (work, t, out_dir, t.name in broken)) for t in todo]
    if client is not None:
        dask_cluster.run_units(client, _unit, calls, done)
        return
    with dask_cluster.local_client(min(workers, len(todo))) as local:
        dask_cluster.run_units(local, _unit, calls, done)


def _safe(work: Callable[[Any, Path], Outcome], task: Any, out_dir: Path,
          broken: bool = False) -> Outcome:
    """Run one task; an unexpected error becomes a 'failed' outcome instead of ending the build.

    A file that appeared since the task was queued (a moved folder) is not rebuilt; with `broken`
    (the file was found broken when queued) only a complete file counts.
    """
    path = output_path(out_dir, task.name)
    if _is_done(path) if broken else path.exists():
        return Outcome(task.name, "exists")
    try:
        return work(task, out_dir)
    except InvdesignError as exc:
        return Outcome(task.name, "rejected", str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad source must not stop a 600-source build
        return Outcome(task.name, "failed", f"{type(exc).__name__}: {exc}".replace("\n", " "))


def write_report(path: Path, outcomes: Sequence[Outcome]) -> Path:
    """Write `name<TAB>status<TAB>reason` lines atomically."""
    lines = ["name\tstatus\treason"]
    lines += [f"{o.name}\t{o.status}\t{o.reason}".replace("\n", " ") for o in outcomes]
    return atomic_write_text(path, "\n".join(lines) + "\n")
