"""Remembered rejections of a build folder, so a resumed build does not redo refused work.

A builder whose units are pure functions of their task (the synthetic build: each cell is placed
and relaxed from its own seed) records every refusal as it happens in `OUT/.rejected/<name>.tsv`:
the task's fingerprint and the reason, written atomically by the worker that refused it. A build
stopped before its report was written (a killed session) thus keeps its refusals, and the next run
skips the tasks whose recorded fingerprint equals their current one (same plan, relaxation and
particle settings); a changed task is tried again. `build_synthetic(retry_rejected=True)`
(`--retry-rejected`) tries them all again, e.g. after a code change that alters placement or
relaxation. A task that later writes its file drops its record.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from invdesign.io.atomic import atomic_write_text

FOLDER = ".rejected"


def fingerprint(task: Any, ignore: tuple[str, ...] = ("device",)) -> str:
    """A short hash of a dataclass task's fields except `ignore` (where it runs does not change
    what it makes)."""
    if not is_dataclass(task):
        raise TypeError(f"fingerprint needs a dataclass task, not {type(task).__name__}")
    text = repr([(f.name, getattr(task, f.name)) for f in fields(task) if f.name not in ignore])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / FOLDER / f"{name}.tsv"


def record(out_dir: str | Path, name: str, task_fingerprint: str, reason: str) -> None:
    """Remember that the task `name` (with this fingerprint) was refused for `reason`."""
    path = _path(out_dir, name)
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, f"{task_fingerprint}\t{reason}".replace("\n", " ") + "\n")


def forget(out_dir: str | Path, name: str) -> None:
    """Drop the record of `name`, if any (its file was written)."""
    _path(out_dir, name).unlink(missing_ok=True)


def recorded(out_dir: str | Path, name: str, task_fingerprint: str) -> str | None:
    """The recorded reason `name` was refused, if recorded with this fingerprint; else None (an
    unreadable record counts as none: the task is tried again)."""
    try:
        text = _path(out_dir, name).read_text().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return None
    kept, _, reason = text.partition("\t")
    return reason if kept == task_fingerprint and reason else None
