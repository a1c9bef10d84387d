"""Run builder tasks (one source -> one HDF5 file) in a process pool: resumable, atomic, repeatable.

A task is a small frozen, picklable object with a `name`; a work function is a top-level function
`work(task, out_dir) -> Outcome` that writes `out_dir/<name>.h5` (atomically, via
`write_chili_file`) and depends on nothing but its inputs, so the same pair can be fanned out to any
cluster engine. The runner skips tasks whose file exists, removes temporary `.part` files an
interrupted run left, shows a progress bar, and writes a report (`build_report.tsv`: name, status,
reason) in task order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal, Protocol

from invdesign.core.errors import InvdesignError
from invdesign.io.atomic import atomic_write_text

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
        return ", ".join(parts) + f" (report: {self.report})"


def output_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.h5"


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker process; the pool provides the parallelism
    _die_with_parent()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the parent build dies, so an interrupted build leaves
    no orphan workers writing files later (their writes are atomic, so at most a `.part` stays)."""
    import ctypes
    import signal
    import sys

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
    """
    from tqdm.auto import tqdm

    workers = check_workers(workers)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_partials(out_dir)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise InvdesignError("builder tasks must have unique names")
    results: dict[str, Outcome] = {}
    todo = []
    for task in tasks:
        if output_path(out_dir, task.name).exists():
            results[task.name] = Outcome(task.name, "exists")
        else:
            todo.append(task)
    bar = tqdm(total=len(todo), desc=desc, disable=not progress or not todo, smoothing=0.05)
    if workers == 1 or len(todo) <= 1:
        for task in todo:
            results[task.name] = _safe(work, task, out_dir)
            bar.update(1)
    else:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker
        ) as pool:
            futures = {pool.submit(_safe, work, task, out_dir): task.name for task in todo}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
    bar.close()
    outcomes = [results[n] for n in names]
    report = write_report(out_dir / REPORT_NAME, outcomes)
    return BuildSummary(outcomes, report)


def _safe(work: Callable[[Any, Path], Outcome], task: Any, out_dir: Path) -> Outcome:
    """Run one task; an unexpected error becomes a 'failed' outcome instead of ending the build.

    A file that appeared since the task was queued (another run, a moved folder) is not rebuilt.
    """
    if output_path(out_dir, task.name).exists():
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
