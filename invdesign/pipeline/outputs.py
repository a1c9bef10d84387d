"""Writing a sample run to disk: candidate files, summaries, fit plots and pdfgui `.fgr` curves.

Everything goes into a hidden temporary folder beside `--out`; candidates are written there as
they are produced, and `OutputFolder.commit()` renames the folder into place at the end. On an
error the temporary folder is removed, so `--out` is either complete or untouched, and an existing
`--out` is replaced only with `force` and only once the new one is complete.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals.cuts import UNIT_CELL_KEY
from invdesign.io.atomic import atomic_path, atomic_write_text, make_temp_dir
from invdesign.io.measured import MeasuredPattern
from invdesign.io.plots import plot_model_input
from invdesign.pipeline.inputs import ModelInput
from invdesign.pipeline.result import Candidate, Fit, SampleResult


class OutputFolder:
    """A run's output folder, written atomically.

    Args:
        out: the folder the user asked for.
        force: replace an existing `out` (only at `commit`).
        protect: input files that must never be inside a folder this run replaces.
    """

    def __init__(self, out: str | os.PathLike, force: bool = False,
                 protect: Iterable[str | os.PathLike] = ()) -> None:
        self.out = Path(out).absolute()
        if self.out.exists():
            if not self.out.is_dir():
                raise InvdesignError("output path exists and is not a folder", self.out)
            if not force:
                raise InvdesignError("output folder exists; use --force to replace it", self.out)
            for path in protect:
                if self.out in Path(path).absolute().parents:
                    raise InvdesignError(f"output folder holds the input file {path}; "
                                         "choose another --out", self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = make_temp_dir(self.out)  # `.<name>.<random>.partial`, mode 0o777 & ~umask
        self.committed = False

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.discard()

    def commit(self) -> Path:
        """Move the complete folder into place (replacing an old one last) and return it."""
        backup = None
        if self.out.exists():
            backup = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.replace(self.out, backup)
        try:
            os.replace(self.tmp, self.out)
        except OSError:
            if backup is not None:
                os.replace(backup, self.out)
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        self.committed = True
        return self.out

    def discard(self) -> None:
        """Remove the temporary folder (nothing of this run remains)."""
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ writers
    def _write_text(self, name: str, text: str) -> str:
        atomic_write_text(self.tmp / name, text)
        return name

    def write_structure(self, stem: str, structure: Structure,
                        comment: dict[str, Any] | None = None) -> list[str]:
        """`stem.xyz` (extended XYZ; periodic cells carry their lattice) and, for unit cells,
        `stem.cif`. Returns the file names written."""
        from ase.io import write

        atoms = structure.to_ase()
        for key, value in {**structure.info, **(comment or {})}.items():
            if isinstance(value, (int, float, str, bool)):
                atoms.info[key] = value
        names = [f"{stem}.xyz"] + ([f"{stem}.cif"] if structure.is_periodic else [])
        for name, fmt in zip(names, ("extxyz", "cif"), strict=False):
            with atomic_path(self.tmp / name) as part:
                write(part, atoms, format=fmt)
        return names

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

    def write_refined(self, candidate: Candidate) -> list[str]:
        """The refined structure beside the produced one."""
        if candidate.refined is None:
            return []
        names = self.write_structure(f"candidate_{candidate.index:03d}_refined",
                                     candidate.refined, {"rw_refined": candidate.rw_refined})
        candidate.files += names
        return names

    def write_summary(self, result: SampleResult) -> list[str]:
        """`summary.csv` (one row per candidate, best first) and `summary.json` (run + rows)."""
        rows = result.rows()
        columns: list[str] = []
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

    def write_fgr(self, name: str, fit: Fit, header: dict[str, Any]) -> str:
        """A pdfgui-style fit file: header lines, then `r Gcalc dr dGcalc Gdiff` columns."""
        lines = [f"History written: {time.ctime()}", "produced by invdesign", "##### PDFgui fit"]
        lines += [k if v is None else f"{k}={v}" for k, v in header.items()]
        lines += ["##### start data", "#L r(A) G(r) d_r d_Gr Gdiff"]
        lines += [f"{r:g} {g:g} 0.0 0 {d:g}"
                  for r, g, d in zip(fit.x, fit.calculated, fit.difference, strict=True)]
        return self._write_text(name, "\n".join(lines) + "\n")

    def write_fit_plot(self, candidates: Sequence[Candidate], name: str = "fit.png",
                       xlabel: str = "r (Å)", ylabel: str = "G(r) (Å$^{-2}$)") -> str | None:
        """Data, fit and difference curve of each candidate (Rw in the legend), one panel each."""
        shown = [c for c in candidates if (c.fit is not None)]
        if not shown:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(shown), 1, figsize=(7, 3.2 * len(shown)), squeeze=False)
        for ax, cand in zip(axes[:, 0], shown, strict=True):
            fit = cand.fit
            assert fit is not None
            offset = fit.observed.min() - 0.6 * np.ptp(fit.difference) - 0.05 * np.ptp(fit.observed)
            label = "refined" if cand.rw_refined is not None else "fit"
            ax.plot(fit.x, fit.observed, "o", ms=2, mfc="none", color="C0", label="data")
            ax.plot(fit.x, fit.calculated, "-", lw=1.2, color="C3",
                    label=f"{label} (candidate {cand.index}): Rw = {fit.rw:.3f}")
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
