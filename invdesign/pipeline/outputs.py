"""Writing a sample run to disk: candidate files, summaries, fit plots and pdfgui `.fgr` curves.

Everything goes into a hidden temporary folder beside `--out`; candidates are written there as
they are produced, and `OutputFolder.commit()` renames the folder into place at the end. On an
error, SIGTERM or SIGINT the temporary folder is removed, so `--out` is either complete or
untouched, and an existing `--out` is replaced only with `force` and only once the new one is
complete (see `invdesign.io.outputs`).
"""

from __future__ import annotations

import csv
import functools
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from invdesign.core.structure import Structure
from invdesign.crystals.cuts import UNIT_CELL_KEY
from invdesign.io.atomic import atomic_path, atomic_write_text
from invdesign.io.measured import MeasuredPattern
from invdesign.io.outputs import Output, write_error
from invdesign.io.plots import plot_model_input
from invdesign.pipeline.inputs import ModelInput
from invdesign.pipeline.result import Candidate, Fit, SampleResult

T = TypeVar("T")


def _writes(method: Callable[..., T]) -> Callable[..., T]:
    """An OSError while writing into the folder (full disk, quota, permissions changed under us)
    becomes one line naming `--out`."""

    @functools.wraps(method)
    def wrapper(self: OutputFolder, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            raise write_error(exc, self.out) from None

    return wrapper


class OutputFolder:
    """A run's output folder, written atomically under `invdesign.io.outputs.Output` (resolved
    paths, no overlap with inputs, a lock, `--force` to replace, SIGTERM/SIGINT clean-up).

    Args:
        out: the folder the user asked for.
        force: replace an existing `out` (only at `commit`).
        protect: input files and folders that `out` must not be, hold or lie inside.
    """

    def __init__(self, out: str | os.PathLike, force: bool = False,
                 protect: Iterable[str | os.PathLike] = ()) -> None:
        self._output = Output(out, inputs=protect, force=force, folder=True)
        self.out = self._output.out
        assert self._output.tmp is not None
        self.tmp = self._output.tmp  # `.<name>.<random>.partial`, mode 0o777 & ~umask

    @property
    def committed(self) -> bool:
        return self._output.committed

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._output.__exit__(exc_type, exc, tb)

    def commit(self) -> Path:
        """Move the complete folder into place (replacing an old one last) and return it."""
        return self._output.commit()

    def discard(self) -> None:
        """Remove the temporary folder and the lock (nothing of this run remains)."""
        self._output.discard()

    # ------------------------------------------------------------------ writers
    @_writes
    def _write_text(self, name: str, text: str) -> str:
        atomic_write_text(self.tmp / name, text)
        return name

    @_writes
    def write_structure(self, stem: str, structure: Structure,
                        comment: dict[str, Any] | None = None) -> list[str]:
        """`stem.xyz` (extended XYZ; periodic cells carry their lattice) and, for unit cells,
        `stem.cif`. Returns the file names written."""
        # lazy: heavy library, loaded on use (CLI start-up)
        from ase.io import write  # noqa: PLC0415

        atoms = structure.to_ase()
        for key, value in {**structure.info, **(comment or {})}.items():
            if isinstance(value, (int, float, str, bool)):
                atoms.info[key] = value
        names = [f"{stem}.xyz"] + ([f"{stem}.cif"] if structure.is_periodic else [])
        for name, fmt in zip(names, ("extxyz", "cif"), strict=False):
            with atomic_path(self.tmp / name) as part:
                write(part, atoms, format=fmt)
        return names

    @_writes
    def write_candidate(self, candidate: Candidate) -> list[str]:
        """The candidate as produced, written the moment it exists; a particle cut from a unit
        cell also gets that cell (`candidate_NNN_cell.cif` and `.xyz`)."""
        stem = f"candidate_{candidate.index:03d}"
        names = self.write_structure(stem, candidate.structure, {"rw": candidate.rw})
        cell = candidate.structure.info.get(UNIT_CELL_KEY)
        if isinstance(cell, Structure) and cell.is_periodic:
            names += self.write_structure(f"{stem}_cell", cell)
        candidate.files = names + [n for n in candidate.files if n not in names]
        return names

    @_writes
    def write_input_plot(self, pattern: MeasuredPattern, model_input: ModelInput,
                         used: bool = True) -> str:
        """`input_<kind>.png`: the measured pattern against what the model receives."""
        unit = "Å" if model_input.kind == "pdf" else "Å$^{-1}$"
        label = (f"model input: {model_input.name} grid {model_input.grid[0]:g}-"
                 f"{model_input.grid[-1]:g} {unit}, min-max normalised")
        if not used:
            label += " (not used: no candidate sampled from the model)"
        name = f"input_{model_input.kind}.png"
        plot_model_input(pattern, model_input.grid, model_input.values, self.tmp / name, label)
        return name

    @_writes
    def write_refined(self, candidate: Candidate) -> list[str]:
        """The refined structure beside the produced one."""
        if candidate.refined is None:
            return []
        names = self.write_structure(f"candidate_{candidate.index:03d}_refined",
                                     candidate.refined, {"rw_refined": candidate.rw_refined})
        candidate.files += names
        return names

    @_writes
    def write_summary(self, result: SampleResult) -> list[str]:
        """`summary.csv` (one row per candidate, best first) and `summary.json` (run + rows)."""
        rows = result.rows()
        columns: list[str] = [] if rows else ["rank", "rw", "source", "structure_type", "file"]
        for row in rows:
            columns += [k for k in row if k not in columns]
        with atomic_path(self.tmp / "summary.csv") as part, open(part, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
        text = json.dumps(result.to_dict(), indent=2, default=_json, ensure_ascii=False)
        self._write_text("summary.json", text)
        return ["summary.csv", "summary.json"]

    @_writes
    def write_fgr(self, name: str, fit: Fit, header: dict[str, Any]) -> str:
        """A pdfgui-style fit file: header lines, then `r Gcalc dr dGcalc Gdiff` columns."""
        lines = [f"History written: {time.ctime()}", "produced by invdesign", "##### PDFgui fit"]
        lines += [k if v is None else f"{k}={v}" for k, v in header.items()]
        lines += ["##### start data", "#L r(A) G(r) d_r d_Gr Gdiff"]
        lines += [f"{r:g} {g:g} 0.0 0 {d:g}"
                  for r, g, d in zip(fit.x, fit.calculated, fit.difference, strict=True)]
        return self._write_text(name, "\n".join(lines) + "\n")

    @_writes
    def write_fit_plot(self, candidates: Sequence[Candidate], name: str = "fit.png",
                       xlabel: str = "r (Å)", ylabel: str = "G(r) (Å$^{-2}$)",
                       metric: str = "Rw") -> str | None:
        """Data, fit and difference curve of each candidate (`metric`, Rw or Rwp, in the
        legend), one panel each."""
        shown = [c for c in candidates if (c.fit is not None)]
        if not shown:
            return None
        import matplotlib  # noqa: PLC0415 - lazy: heavy library, loaded on use (CLI start-up)

        matplotlib.use("Agg")
        # lazy: heavy library, loaded on use (CLI start-up)
        import matplotlib.pyplot as plt  # noqa: PLC0415

        fig, axes = plt.subplots(len(shown), 1, figsize=(7, 3.2 * len(shown)), squeeze=False)
        for ax, cand in zip(axes[:, 0], shown, strict=True):
            fit = cand.fit
            assert fit is not None
            offset = fit.observed.min() - 0.6 * np.ptp(fit.difference) - 0.05 * np.ptp(fit.observed)
            label = "refined" if cand.rw_refined is not None else "fit"
            ax.plot(fit.x, fit.observed, "o", ms=2, mfc="none", color="C0", label="data")
            ax.plot(fit.x, fit.calculated, "-", lw=1.2, color="C3",
                    label=f"{label} (candidate {cand.index}): {metric} = {fit.rw:.3f}")
            ax.plot(fit.x, fit.difference + offset, "-", lw=1, color="C2", label="difference")
            ax.axhline(offset, color="0.6", lw=0.6)
            ax.set_title(f"rank {cand.rank}: {cand.final.formula} ({cand.final.n_atoms} atoms)",
                         fontsize=9)
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=8, loc="upper right")
        axes[-1, 0].set_xlabel(xlabel)
        fig.tight_layout()
        try:
            with atomic_path(self.tmp / name) as part:
                fig.savefig(part, format="png", dpi=110)
        finally:
            plt.close(fig)
        return name


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
