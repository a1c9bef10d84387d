"""The pipeline's view of forward simulation: scoring, refining and fit curves of candidates.

A thin layer over the 'forward' evaluator (`ForwardEvaluator`, taken from the evaluator registry),
`invdesign.evaluators.forward.refine` (particles, Debye sum) and
`invdesign.evaluators.forward.crystal_fit` (crystals: a unit cell as an attenuated crystal) that
turns their records into `Candidate`s: `score`, `refine` and `final_fit` dispatch on the
candidate's kind, so particles and crystals share one interface and one Rw. The first given
pattern of pdf, xrd, saxs ranks the candidates; the others add their Rw and Pearson r as extra
scores (particles only).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import TaskSpec
from invdesign.evaluators.base import evaluator_class
from invdesign.evaluators.forward import DEFAULT_FIT_RANGE, refine, rw
from invdesign.evaluators.forward.crystal_fit import crystal_curve, refine_crystal, screen_crystal
from invdesign.evaluators.forward.evaluator import check_finite
from invdesign.evaluators.forward.refine import BISO_GRID, QDAMP_GRID
from invdesign.pipeline.result import Candidate, Fit

if TYPE_CHECKING:
    from invdesign.evaluators.forward import ForwardEvaluator

ORDER = ("pdf", "xrd", "saxs")
#: Task pattern names per measured kind and radiation.
TASK_NAMES = {("pdf", "xray"): "xPDF", ("pdf", "neutron"): "nPDF", ("xrd", "xray"): "xrd",
              ("xrd", "neutron"): "nd", ("saxs", "xray"): "saxs", ("saxs", "neutron"): "sans"}
#: Refinement of the candidates chosen for it: each gets the lattice/biso/qdamp scan; the best of
#: them then gets up to `REFINE_STEPS` gradient steps on positions within `REFINE_SECONDS` of wall
#: time for the whole refinement (a loaded machine takes fewer steps; the report says so). Rw keeps
#: falling over 20 steps on the measured Pt particle, so the steps go to one candidate, not three.
REFINE_STEPS = 20
REFINE_SECONDS = 15.0
#: Wall-time cap (s) of the full refinement of one crystal candidate.
CRYSTAL_SECONDS = 6.0


def kind_of(name: str) -> str:
    """The measured kind ('pdf', 'xrd', 'saxs') a task pattern or view takes."""
    stored = pattern_spec(name).stored
    return next(k for (k, _), v in TASK_NAMES.items() if v == stored)


def pattern_names(patterns: dict[str, Any], task: TaskSpec) -> dict[str, str]:
    """measured kind -> the task's pattern name, for the patterns the task is conditioned on.

    A PDF feeds an xPDF task even when measured with neutrons (and vice versa): the model sees
    normalised G(r) only. Raises when the task needs a pattern that was not given.
    """
    out = {}
    for name in task.patterns:
        kind = kind_of(name)
        if kind not in patterns:
            raise InvdesignError(f"model for task {task.name} needs a {kind.upper()} pattern "
                                 f"(--{kind} FILE)")
        out[kind] = name
    return out


def pdf_fit_range(measured: Any, fit_range: tuple[float, float] | None) -> tuple[float, float]:
    """The requested fit range, else the default one starting no lower than the header's rpoly
    (PDFgetX3's correction polynomial removes G(r) features below rpoly: not fitted)."""
    if fit_range is not None:
        return fit_range
    lo, hi = DEFAULT_FIT_RANGE
    rpoly = measured.header.get("rpoly")
    if isinstance(rpoly, float) and lo < rpoly < hi:
        lo = rpoly
    return lo, hi


class ForwardAdapter:
    """Scores candidates against the measured patterns.

    Args:
        patterns: kind -> `MeasuredPattern`.
        fit_range: (lo, hi) Å of the PDF comparison; None: 1.5 Å to min(data rmax, 30 Å).
        device: torch device.
        diameter: Å, the particle diameter read off the PDF (the crystals' starting size);
            None: the crystal screen chooses.
    """

    def __init__(self, patterns: dict[str, Any], fit_range: tuple[float, float] | None = None,
                 device: str = "cpu", diameter: float | None = None) -> None:
        self.diameter = diameter
        self.patterns = patterns
        self.primary = next(k for k in ORDER if k in patterns)
        forward = evaluator_class("forward")
        self.evaluators = {
            kind: forward(p, fit_range=pdf_fit_range(p, fit_range)
                          if kind == "pdf" else DEFAULT_FIT_RANGE, device=device)
            for kind, p in patterns.items()
        }
        self.device = device

    @property
    def main(self) -> ForwardEvaluator:
        return self.evaluators[self.primary]

    @property
    def fit_range(self) -> tuple[float, float]:
        return tuple(float(v) for v in self.main.fit_range)  # type: ignore[return-value]

    @property
    def is_pdf(self) -> bool:
        return self.primary == "pdf"

    @property
    def crystals(self) -> bool:
        """True when crystal candidates are fitted as attenuated crystals (a PDF ranks); else
        they must be cut to particles first."""
        return self.is_pdf

    @property
    def fit_qdamp(self) -> bool:
        """Whether qdamp is fitted (a PDF whose qdamp is only the default)."""
        return self.is_pdf and self.patterns[self.primary].sources.get("qdamp") == "default"

    def score(self, index: int, structure: Structure) -> Candidate:
        """Forward-simulate one candidate against every pattern (a unit cell: `_score_crystal`).

        `rw` uses the measured instrument values. For a PDF, `scores['rw_scan']` is the Rw with
        biso (and qdamp, when it was only a default) fitted on a grid, atoms fixed: it costs no
        further Debye sum and picks the candidates worth refining.
        """
        if structure.is_periodic:
            return self._score_crystal(index, structure)
        scores: dict[str, float] = {}
        main = None
        for kind, ev in self.evaluators.items():
            rec = ev.evaluate([structure])[0] if kind != "pdf" else self._pdf_record(ev, structure)
            if kind == self.primary:
                main = rec
            else:
                scores[f"{kind}_rw"] = rec["rw"]
            if kind != "pdf":
                scores[f"{kind}_pearson"] = rec["pearson"]
            elif kind == self.primary:
                scores["rw_scan"] = rec["rw_scan"]
        assert main is not None
        return Candidate(index=index, structure=structure, rw=float(main["rw"]),
                         scale=float(main["scale"]), scores=scores)

    def _score_crystal(self, index: int, cell: Structure) -> Candidate:
        """The fast attenuated-crystal screen (`screen_crystal`: lattice scale, diameter, one
        Uiso, qdamp when only a default, scale); `rw` and `scores['rw_scan']` are its Rw."""
        if not self.crystals:
            raise InvdesignError("crystal candidates need a PDF to be fitted as attenuated "
                                 "crystals; cut them to particles first")
        fit = screen_crystal(cell, self.patterns["pdf"], fit_range=self.fit_range,
                             diameter=self.diameter, fit_qdamp=self.fit_qdamp)
        return Candidate(index=index, structure=cell, rw=float(fit.rw), scale=float(fit.scale),
                         params={k: float(v) for k, v in fit.params.items()},
                         scores={"rw_scan": float(fit.rw)}, crystal=fit)

    def _pdf_record(self, ev: ForwardEvaluator, structure: Structure) -> dict[str, float]:
        measured = self.patterns["pdf"]
        qdamps = QDAMP_GRID if measured.sources.get("qdamp") == "default" else [measured.qdamp]
        b_grid, q_grid = (a.reshape(-1) for a in np.meshgrid(BISO_GRID, qdamps, indexing="ij"))
        with torch.no_grad():
            check_finite(structure)
            raw = ev.calculator.raw([structure])  # [1, nq] F(q)
            value, scale = rw(ev.obs, ev.calculator.transform(raw)[0])
            grid = ev.calculator.transform(raw.expand(len(b_grid), -1),
                                           biso=torch.as_tensor(b_grid),
                                           qdamp=torch.as_tensor(q_grid))
            scan, _ = rw(ev.obs, grid)
        return {"rw": float(value), "scale": float(scale), "rw_scan": float(scan.min())}

    def refine_many(self, cands: list[Candidate], steps: int | None = None,
                    seconds: float | None = None) -> Candidate | None:
        """Refine every crystal of `cands` fully (each within `CRYSTAL_SECONDS`); scan (lattice
        scale, biso, qdamp) every particle, then spend the gradient steps on positions on the best
        particle, the particles within `seconds` of wall time in all (defaults: `REFINE_STEPS`,
        `REFINE_SECONDS`). Returns the particle that got gradient steps (None when there is none
        or the time was used up by the scans)."""
        steps = REFINE_STEPS if steps is None else steps
        seconds = REFINE_SECONDS if seconds is None else seconds
        for cand in cands:
            if cand.is_crystal:
                self.refine(cand, seconds=CRYSTAL_SECONDS)
        particles = [c for c in cands if not c.is_crystal]
        start = time.perf_counter()
        for cand in particles:
            self.refine(cand, steps=0)
        left = seconds - (time.perf_counter() - start)
        if not particles or steps <= 0 or left <= 0:
            return None
        best = min(particles, key=lambda c: (c.final_rw, c.index))
        self.refine(best, steps=steps, seconds=left)  # repeats its scan: never worse than it
        return best

    def refine(self, cand: Candidate, steps: int = REFINE_STEPS,
               seconds: float | None = REFINE_SECONDS) -> None:
        """Refine positions (`steps` gradient steps), lattice scale and biso (and qdamp when it
        was only a default) against the ranking pattern; fills `refined`, `rw_refined`, `scale`
        and `params`. A crystal candidate gets `refine_crystal` (lattice by crystal system,
        delta2, one Uiso per element, qdamp when only a default, diameter, positions, scale),
        started from its screen, within `seconds` (`steps` does not apply)."""
        fit_qdamp = self.fit_qdamp
        if cand.is_crystal:
            fit = refine_crystal(cand.structure, self.patterns["pdf"], fit_range=self.fit_range,
                                 start=cand.crystal, fit_qdamp=fit_qdamp,
                                 max_seconds=CRYSTAL_SECONDS if seconds is None else seconds)
            cand.crystal = fit
            cand.refined = fit.cell
            cand.rw_refined = float(fit.rw)
            cand.scale = float(fit.scale)
            cand.params = {k: float(v) for k, v in fit.params.items()}
            cand.params["refine_steps"] = float(fit.steps)
            return
        res = refine(cand.structure, self.main, qdamp=fit_qdamp, steps=steps,
                     max_seconds=seconds)
        cand.refined = res.structure
        cand.rw_refined = float(res.rw_after)
        cand.scale = float(res.scale)
        cand.params = {"lattice_scale": float(res.lattice_scale), "biso": float(res.biso),
                       "refine_steps": float(res.steps)}
        if self.is_pdf:
            cand.params["qdamp"] = float(res.qdamp)

    def final_fit(self, cand: Candidate) -> Fit:
        """The fitted curve of the candidate's final structure (with refined biso/qdamp; a
        crystal: its attenuated-crystal curve)."""
        if cand.is_crystal:
            measured = self.patterns["pdf"]
            x, calc = crystal_curve(cand.crystal, measured, self.fit_range)
            obs = np.interp(x, np.asarray(measured.x), np.asarray(measured.y))
            return Fit(np.asarray(x), obs, np.asarray(calc), float(cand.final_rw))
        curve = self.main.fit_curve(cand.final, biso=cand.params.get("biso"),
                                    qdamp=cand.params.get("qdamp"))
        return Fit(np.asarray(curve.x), np.asarray(curve.obs), np.asarray(curve.calc),
                   float(curve.rw))

    def fgr_header(self, cand: Candidate) -> dict[str, Any]:
        """pdfgui-style header values of a candidate's fit."""
        measured = self.patterns[self.primary]
        stype = "X  x-ray scattering" if measured.radiation == "xray" else "N  neutron scattering"
        return {
            "stype": stype,
            "qmax": f"{measured.qmax:.2f}",
            "qdamp": f"{cand.params.get('qdamp', measured.qdamp):g}",
            "qbroad": "0",
            "dscale": f"{cand.scale:g}",
            "fitrmin": f"{self.fit_range[0]:g}",
            "fitrmax": f"{self.fit_range[1]:g}",
            "# metadata": None,
            "data": str(measured.path),
            "candidate": str(cand.index),
            "rank": str(cand.rank),
            "rw": f"{cand.final_rw:.6f}",
            "biso": f"{cand.params.get('biso', measured.biso):g}",
        }

    def axis_labels(self) -> tuple[str, str]:
        if self.is_pdf:
            return "r (Å)", "G(r) (Å$^{-2}$)"
        return "q (Å$^{-1}$)", "I(q) (a.u.)"
