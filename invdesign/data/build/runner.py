"""Run builder tasks (one source -> one HDF5 file) in a process pool: resumable, atomic, repeatable.

A task is a small frozen, picklable object with a `name`; a work function is a top-level function
`work(task, out_dir) -> Outcome` that writes `out_dir/<name>.h5` (atomically, via
`write_chili_file`) and depends on nothing but its inputs, so the same pair can be fanned out to any
cluster engine. The runner locks the output folder (`invdesign.io.outputs.locked_folder`: resolved,
not an input, one build at a time), skips tasks whose file exists and opens as a complete CHILI file
(a truncated or corrupt one is rebuilt, and the report says so), removes temporary `.part` files an
interrupted run left, shows a progress bar, and writes a report (`build_report.tsv`: name, status,
reason) in task order.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
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


def _init_worker() -> None:
    import torch  # noqa: PLC0415 - lazy: only worker processes need torch

    torch.set_num_threads(1)  # one core per worker process; the pool provides the parallelism
    _die_with_parent()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the parent build dies, so an interrupted build leaves
    no orphan workers writing files later (their writes are atomic, so at most a `.part` stays)."""

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


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
        workers: processes; 1 runs in this process.
        desc: progress-bar label.
        progress: show a tqdm progress bar.
        inputs: source files or folders `out_dir` must not be, hold or lie inside.
        scheduler: address of a running Dask scheduler (`tcp://HOST:PORT`) to send the tasks
        to; None runs them here (`workers` processes).
    """
    if scheduler is not None:
        raise NotImplementedError("--scheduler: Dask builds are not implemented yet")
    workers = check_workers(workers)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise InvdesignError("builder tasks must have unique names")
    with locked_folder(out_dir, inputs) as out:
        return _run_locked(tasks, work, out, workers, desc, progress)


def _run_locked(tasks: Sequence[Any], work: Callable[[Any, Path], Outcome], out_dir: Path,
                workers: int, desc: str, progress: bool) -> BuildSummary:

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
    if workers == 1 or len(todo) <= 1:
        for task in todo:
            results[task.name] = _safe(work, task, out_dir, task.name in broken)
            bar.update(1)
    else:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker
        ) as pool:
            futures = {pool.submit(_safe, work, task, out_dir, task.name in broken): task.name
                       for task in todo}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
    bar.close()
    for name, reason in broken.items():
        if results[name].status == "written":
            results[name] = Outcome(name, "written", f"{REBUILT}{reason}")
    outcomes = [results[n] for n in names]
    report = write_report(out_dir / REPORT_NAME, outcomes)
    return BuildSummary(outcomes, report)


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
