"""What `sample` returns: ranked candidates with their fits, and how the answer was made.

The fields are the columns of the files the CLI writes (`summary.csv`, `summary.json`), so a
notebook and the command see the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from invdesign.core.geometry import MIN_DISTANCE_FRACTION, geometry, is_valid, nn_distance
from invdesign.core.structure import Structure

__all__ = ["ENERGY_COLUMNS", "MIN_DISTANCE_FRACTION", "Candidate", "Fit", "SampleResult",
           "geometry", "is_valid", "nn_distance"]

#: The energy screening's columns of every row (`invdesign.pipeline.energies`); empty when not
#: predicted: eV/atom of the material, how the material was found, eV/atom above the bulk, and
#: why a candidate has no excess energy ('ok' when it has one).
ENERGY_COLUMNS = ("formation_energy_per_atom", "formation_energy_basis",
                  "particle_excess_energy_per_atom", "excess_status")

@dataclass
class Fit:
    """A computed pattern against the measured one over the fit range.

    Attributes:
        x: [m] grid (r in Å for PDFs, q in Å^-1 otherwise).
        observed: [m] measured values.
        calculated: [m] computed values times the fitted scale.
        rw: the PDF community's weighted residual over this range.
    """

    x: np.ndarray
    observed: np.ndarray
    calculated: np.ndarray
    rw: float

    @property
    def difference(self) -> np.ndarray:
        """[m] observed - calculated."""
        return self.observed - self.calculated


@dataclass
class Candidate:
    """One candidate structure and how well it explains the data.

    Attributes:
        index: production order (0-based); files are named after it.
        structure: the candidate as produced (particle or unit cell; positions [n, 3] Å).
        rw: Rw of the forward-simulated pattern against the data, before refinement.
        scale: fitted least-squares scale of the computed pattern.
        fit: the fitted curve (None when not kept).
        params: other fitted parameters (e.g. lattice scale, biso in Å^2 after refinement).
        rw_refined: Rw after refinement (None without refinement).
        refined: the refined structure (None without refinement).
        scores: further per-candidate scores (Pearson r of other patterns).
        energies: the energy screening's values (`ENERGY_COLUMNS`); empty when not predicted.
        rank: 1 = best (valid first, then lowest final Rw).
        files: files written for this candidate, relative to the output folder.
        validity: the verdict on composition and distances (`check_validity`); None: not
            checked (then `valid` is the distance rule of `geometry`).
        crystal: the attenuated-crystal fit (`CrystalFit`) of a crystal candidate, else None.

    A candidate is a particle (`structure.kind` 'particle', scored by the Debye sum) or a crystal
    (a unit cell, scored as an attenuated crystal: the periodic G(r) times a sphere's shape
    function, its diameter in `params['spdiameter']`).
    """

    index: int
    structure: Structure
    rw: float
    scale: float
    fit: Fit | None = None
    params: dict[str, float] = field(default_factory=dict)
    rw_refined: float | None = None
    refined: Structure | None = None
    scores: dict[str, float] = field(default_factory=dict)
    energies: dict[str, Any] = field(default_factory=dict)
    rank: int = 0
    files: list[str] = field(default_factory=list)
    validity: Any = None
    crystal: Any = None
    _shape: tuple[int, dict[str, Any]] | None = field(default=None, init=False, repr=False,
                                                      compare=False)

    def geometry(self) -> dict[str, Any]:
        """`geometry` of the final structure (nn_distance, min_distance, valid), computed once."""
        final = self.final
        if self._shape is None or self._shape[0] != id(final):
            self._shape = (id(final), geometry(final))
        return self._shape[1]

    @property
    def is_crystal(self) -> bool:
        """True for a crystal candidate (a unit cell fitted as an attenuated crystal)."""
        return self.structure.is_periodic

    @property
    def valid(self) -> bool:
        """The validity verdict when checked, else the distance rule of `geometry`."""
        if self.validity is not None:
            return bool(self.validity.valid)
        return bool(self.geometry()["valid"])

    @property
    def source(self) -> str:
        """Where the candidate came from ('generator', 'packing', 'library', 'user_cif', ...)."""
        return str({**self.structure.info, **self.final.info}.get("source", ""))

    @property
    def structure_type(self) -> str:
        """Packing or cluster shape, library type name, 'generator' or 'unit_cell_model'."""
        return str({**self.structure.info, **self.final.info}.get("structure_type", ""))

    @property
    def screened_rw(self) -> float:
        """The refined Rw, else the screen's (a particle: biso and a default qdamp fitted on a
        grid, `scores['rw_scan']`; a crystal: the attenuated-crystal screen), else `rw`."""
        if self.rw_refined is not None:
            return self.rw_refined
        return self.scores.get("rw_scan", self.rw)

    def rank_key(self) -> tuple[bool, float, int]:
        """Sort key: valid candidates first, then the refined or screened Rw (NaN last), then
        the index."""
        return (not self.valid, float(np.nan_to_num(self.screened_rw, nan=np.inf)), self.index)

    @property
    def final(self) -> Structure:
        """The refined structure if there is one, else the produced one."""
        return self.refined if self.refined is not None else self.structure

    @property
    def final_rw(self) -> float:
        return self.rw_refined if self.rw_refined is not None else self.rw

    def row(self) -> dict[str, Any]:
        """The per-candidate summary columns (run-wide columns are added by `SampleResult`)."""
        final = self.final
        shape = self.geometry()
        row: dict[str, Any] = {
            "rank": self.rank,
            "rw": round(float(self.rw), 6),
            "rw_refined": None if self.rw_refined is None else round(float(self.rw_refined), 6),
            "rw_scan": float(self.scores.get("rw_scan", self.rw)),
            "scale": float(self.scale),
        }
        row.update({k: float(v) for k, v in self.params.items()})
        row.update({
            "n_atoms": final.n_atoms,
            "composition": final.formula,
            "nn_distance": round(shape["nn_distance"], 4),
            "min_distance": round(shape["min_distance"], 4),
            "valid": self.valid,
            "invalid_reason": "" if self.valid or self.validity is None
            else str(self.validity.reason),
        })
        row.update({k: float(v) for k, v in self.scores.items()})
        for key in ENERGY_COLUMNS:  # always there, so the columns exist when not predicted
            value = self.energies.get(key)
            row[key] = None if isinstance(value, float) and not math.isfinite(value) else value
        row["kind"] = "crystal" if self.is_crystal else final.kind
        row["source"] = self.source
        row["structure_type"] = self.structure_type
        row["file"] = self.files[0] if self.files else ""
        return row


@dataclass
class SampleResult:
    """The answer of `sample`: candidates ranked (valid first, then by refined or screened Rw),
    best first.

    Attributes:
        candidates: ranked candidates.
        model: the sampled checkpoints' folder names, or 'known structures'.
        checkpoint: checkpoint path ('' when no checkpoint was used).
        checkpoint_hash: sha256 of the weights file ('' when none).
        seed: the sampling seed.
        versions: invdesign, torch and debyecalculator versions.
        how: how the answer was made, in words.
        taken: run setting -> 'value (source)', e.g. 'qmax': '22.0 (header)'.
        fit_range: (rmin, rmax) Å of the Rw.
        out: the output folder, when written.
        duplicates: candidates that collapsed into another before screening.
        metric: what `rw`, `rw_scan` and `rw_refined` hold: 'Rw' (PDF, I(q)) or 'Rwp' (a
            powder XRD profile fit ranks; the `rwp` column holds the ranking value).
        answers: answers that are not structures, e.g. 'saxs_size': the SAXS sphere fit
            (diameter Å, polydispersity, distribution, scale, background, rw, steps, seconds).
    """

    candidates: list[Candidate]
    model: str
    checkpoint: str
    checkpoint_hash: str
    seed: int
    versions: dict[str, str]
    how: str
    taken: dict[str, str] = field(default_factory=dict)
    fit_range: tuple[float, float] = (1.5, 30.0)
    out: str | None = None
    duplicates: int = 0
    metric: str = "Rw"
    answers: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    def run_columns(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "checkpoint_hash": self.checkpoint_hash,
            "seed": self.seed,
            "versions": " ".join(f"{k}={v}" for k, v in self.versions.items()),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per candidate, best first, with the run-wide columns."""
        run = self.run_columns()
        return [{**c.row(), **run} for c in self.candidates]

    def to_dict(self) -> dict[str, Any]:
        """Everything `summary.json` holds."""
        return {
            "model": self.model,
            "checkpoint": self.checkpoint,
            "checkpoint_hash": self.checkpoint_hash,
            "seed": self.seed,
            "versions": self.versions,
            "how": self.how,
            "taken": self.taken,
            "fit_range": list(self.fit_range),
            "duplicates": self.duplicates,
            "metric": self.metric,
            **self.answers,
            "candidates": self.rows(),
        }
