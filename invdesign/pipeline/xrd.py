"""`sample` without a PDF: a powder XRD pattern ranks crystal candidates by Rwp; a SAXS pattern
gets its particle-size answer.

XRD (`--xrd FILE`, no `--pdf`): the pool's crystal candidates (the structure-type library with
the user's `--library` CIFs, the 288 AFLOW prototypes pymatgen ships unless `--no-aflow-prototypes`,
the anti-types of the binary ones, and for an all-metal composition the fcc/hcp/bcc lattices) are
each fitted to the powder pattern (`invdesign.evaluators.forward.powder_fit`: reflections of the
cell, pseudo-Voigt peaks broadened by crystallite size and strain, Chebyshev background, lattice and
zero shift); all are screened, the best `refine_top` refined, and they rank valid first, then
refined before screened, then Rwp (a screen's Rwp, with broad peaks on binned data, compares with
other screens only). No particle candidates: a powder pattern of crystallites answers with a
crystal. The XRD model's unit cells (`kind_models`: the shipped lab-range XRD model unless
`--model`/`--checkpoint` names another XRD model) join the pool when the data cover its q grid; a
PDF model given for an XRD file is refused.

SAXS (`--saxs FILE`): polydisperse spheres fitted to I(q) (`fit_saxs`): diameter and
polydispersity. With an all-metal composition, ase packings and cluster shapes at that diameter
(at most `PARTICLE_ATOM_LIMIT` atoms) and, with a composition, the SAXS model's particles
(`kind_models`) are scored by their Debye I(q).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
from ase.build import bulk
from ase.neighborlist import neighbor_list

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals.aflow import aflow_types
from invdesign.crystals.anti import role_swaps
from invdesign.crystals.library import builtin_types, typed_cells
from invdesign.crystals.packings import LATTICES, packing_candidates
from invdesign.evaluators.forward.powder_fit import (
    MAX_EVALUATIONS,
    PowderData,
    PowderFit,
    powder_curve,
    powder_data,
    refine_powder,
)
from invdesign.evaluators.forward.powder_parsimony import parsimonious
from invdesign.evaluators.forward.powder_rank import (
    INDEX_TOP,
    IndexedStart,
    index_picks,
    pattern_lines,
    screen_candidate,
)
from invdesign.evaluators.forward.saxs_fit import SaxsFit, fit_saxs
from invdesign.pipeline import defaults, kind_models
from invdesign.pipeline.energies import add_energies
from invdesign.pipeline.forward import ForwardAdapter
from invdesign.pipeline.outputs import OutputFolder
from invdesign.pipeline.pool import check, collapse, describe
from invdesign.pipeline.result import Candidate, Fit, SampleResult
from invdesign.pipeline.sources import PARTICLE_ATOM_LIMIT, is_metallic, lattice_cell

#: Model evaluations of the full powder fit of one candidate (a budget of work, not of wall
#: time, so a run ranks the same on a busy machine) and a wall-time cap (s) as a safety net that
#: only a fit of pathological cost meets (peaks as broad as the pattern cost up to 100x more per
#: evaluation: 281 s for 1005 evaluations in one measured case).
POWDER_EVALUATIONS = MAX_EVALUATIONS
POWDER_SECONDS = 120.0
#: The same for the powder fit of a PDF run's crystal for its `xrd_rwp` column.
EXTRA_EVALUATIONS = MAX_EVALUATIONS // 4
EXTRA_SECONDS = 30.0
#: Discrete packings made at the SAXS diameter (the first shapes of `packings.packing_plan`).
SAXS_PACKINGS = 8

NO_COMPOSITION = ("an XRD pattern is answered with crystal structures of a composition: give "
                  "--composition (e.g. --composition TiO2)")
METHOD = ("XRD: crystal candidates fitted to the powder pattern (reflections of the cell, "
          "pseudo-Voigt peaks broadened by crystallite size and microstrain, Chebyshev "
          "background, lattice by crystal system and zero shift; scale and background by "
          "least squares); no particle candidates (a powder pattern of crystallites is answered "
          "with a crystal).")


def metal_nn(z: int) -> float:
    """Nearest-neighbour distance (Å) of element `z` in ase's reference crystal (`ase.build.bulk`
    defaults), else twice its metallic radius."""
    try:
        return float(neighbor_list("d", bulk(elements.symbol(z)), 5.0).min())
    except (ValueError, KeyError, RuntimeError):
        return 2.0 * float(elements.metallic_radius(z))


def crystal_cells(composition: Mapping[int, float] | None, library: Any,
                  aflow: bool = True) -> list[Structure]:
    """The crystal candidates of an XRD run: every library type the composition fits (user CIFs
    included; None: the built-in types), with `aflow` also every AFLOW prototype
    (`crystals.aflow`), the anti-types of the binary ones among them (`crystals.anti`: NiAs gives
    anti-NiAs, Ni2In anti-Ni2In Rb2S), and, for a one-metal composition, the fcc/hcp/bcc lattices
    at the metal's reference nearest-neighbour distance (`metal_nn`; the fit scans the lattice).
    Raises without a composition."""
    if not composition:
        raise InvdesignError(NO_COMPOSITION)
    comp = dict(composition)
    types = list(builtin_types() if library is None else library)
    types += list(aflow_types()) if aflow else []
    types += role_swaps(types)
    cells = []
    for typed in typed_cells(comp, None, types):
        if set(typed.cell.species.tolist()) == set(comp):  # never an element dropped
            typed.cell.info.update(source=typed.source, structure_type=typed.structure_type)
            cells.append(typed.cell)
    if is_metallic(comp):
        host = max(comp, key=comp.get)
        nn = metal_nn(host)
        for packing in LATTICES:
            if len(comp) == 1:
                cell = lattice_cell(packing, host, nn)
                cell.info.update(source="packing", structure_type=packing)
                cells.append(cell)
    return cells


class PowderRanker:
    """Screens, refines and draws crystal candidates against one powder pattern.

    Args:
        measured: the XRD pattern (kind 'xrd').
        two_theta_range: (lo, hi) deg of the fit (`--fit-range`); None: the whole pattern.
    """

    def __init__(self, measured: Any, two_theta_range: tuple[float, float] | None) -> None:
        self.data: PowderData = powder_data(measured, two_theta_range)
        self.lines = pattern_lines(self.data)
        self.starts: dict[int, IndexedStart] = {}
        self.fit_range = (float(self.data.two_theta[0]), float(self.data.two_theta[-1]))

    def score(self, index: int, cell: Structure) -> Candidate:
        """The screen (`powder_rank.screen_candidate`: from the cell's own lattice and, when the
        cell indexes the pattern significantly, from the indexed lattice, the better of the two);
        the candidate's structure is the cell with its screened lattice (written as CIF), its `rw`
        the screen Rwp."""
        _, fit, start = screen_candidate(cell, self.data, self.lines)
        scores: dict[str, float] = {}
        if start is not None:
            self.starts[index] = start
            scores["index_significance"] = start.index.significance
        fitted = _labelled(fit.cell, cell)
        return Candidate(index=index, structure=fitted, rw=fit.rwp, scale=fit.scale,
                         params=_params(fit),
                         scores={"rw_scan": fit.rwp, "rwp": fit.rwp, **scores}, crystal=fit)

    def index_picks(self, cands: list[Candidate], taken: list[Candidate]) -> list[Candidate]:
        """Up to `INDEX_TOP` candidates not in `taken` whose cells index the pattern most
        significantly, set to their screen from the indexed lattice (to be refined from there)."""
        by_index = {c.index: c for c in cands}
        out = []
        for i in index_picks(self.starts, {c.index for c in taken}):
            screen, cand = self.starts[i].screen, by_index[i]
            cand.structure = _labelled(screen.cell, cand.structure)
            cand.crystal, cand.params = screen, _params(screen)
            out.append(cand)
        return out

    def refine(self, cand: Candidate) -> None:
        """The full powder fit from the screen (within `POWDER_EVALUATIONS`)."""
        fit = refine_powder(cand.structure, self.data, start=cand.crystal,
                            max_evaluations=POWDER_EVALUATIONS, max_seconds=POWDER_SECONDS)
        _labelled(fit.cell, cand.structure)
        cand.crystal, cand.refined = fit, fit.cell
        cand.rw_refined = cand.scores["rwp"] = fit.rwp
        cand.scale = fit.scale
        cand.params = _params(fit)

    def final_fit(self, cand: Candidate) -> Fit:
        """Observed and fitted curve on the measured 2θ points (deg)."""
        tth, calc, _ = powder_curve(cand.crystal, self.data)
        return Fit(np.asarray(tth), np.asarray(self.data.y), np.asarray(calc),
                   float(cand.crystal.rwp))


def _labelled(cell: Structure, source: Structure) -> Structure:
    """`cell` with the `source` and `structure_type` labels of `source` (a fit's cell keeps the
    candidate's names)."""
    cell.info.update({k: source.info[k] for k in ("source", "structure_type") if k in source.info})
    return cell


def _params(fit: PowderFit) -> dict[str, float]:
    return {k: float(v) for k, v in fit.params.items()}


def rank_key(cand: Candidate) -> tuple[bool, bool, float, int]:
    """Valid first, then refined before screened, then Rwp, then production order."""
    rwp = float(np.nan_to_num(cand.scores.get("rwp", cand.rw), nan=np.inf))
    return (not cand.valid, cand.rw_refined is None, rwp, cand.index)


def parsimonious_first(cands: list[Candidate]) -> list[Candidate]:
    """`cands` in `rank_key` order with the valid refined ones (first) reordered by Hamilton's
    test (`powder_parsimony`): a simpler fit of the same structure ahead of a richer one whose
    lower Rwp is not significant."""
    k = 0
    while k < len(cands) and cands[k].valid and cands[k].rw_refined is not None:
        k += 1
    order = parsimonious([c.crystal for c in cands[:k]])
    return [cands[i] for i in order] + cands[k:]


def extra_rwp(cands: list[Candidate], measured: Any, top: int) -> int:
    """A PDF run with an XRD pattern: the powder-fit Rwp of the final cells of the best `top`
    crystal candidates (ranked) as `scores['xrd_rwp']`; returns how many got it."""
    data = powder_data(measured)
    done = 0
    for cand in [c for c in cands if c.is_crystal][:top]:
        fit = refine_powder(cand.final, data, max_evaluations=EXTRA_EVALUATIONS,
                            max_seconds=EXTRA_SECONDS)
        cand.scores["xrd_rwp"] = float(fit.rwp)
        done += 1
    return done


def saxs_size(measured: Any) -> SaxsFit:
    """The SAXS size answer (`fit_saxs`, Schulz-distributed spheres)."""
    return fit_saxs(measured)


def size_text(fit: SaxsFit) -> str:
    """One line on the SAXS size answer."""
    return (f"diameter {fit.diameter:.1f} Å, polydispersity {fit.polydispersity:.3f} "
            f"({fit.distribution} spheres), Rw {fit.rw:.4f}")


def saxs_particles(composition: Mapping[int, float] | None, diameter: float,
                   seed: int) -> tuple[list[Structure], str | None]:
    """Packings and cluster shapes of an all-metal composition at the SAXS diameter (nn twice the
    `metal_nn` of the host), at most `PARTICLE_ATOM_LIMIT` atoms each; else none and the reason."""
    if not composition:
        return [], "no composition given: the SAXS answer is the size only"
    comp = dict(composition)
    if not is_metallic(comp):
        return [], ("SAXS does not tell a compound's atomic arrangement: the answer is the size "
                    "only (add --pdf or --xrd for structures)")
    nn = metal_nn(max(comp, key=comp.get))
    made = [p for p in packing_candidates(comp, nn, diameter, SAXS_PACKINGS, seed=seed)
            if p.n_atoms <= PARTICLE_ATOM_LIMIT]
    for p in made:
        p.info.setdefault("source", "packing")
        p.info.setdefault("structure_type", str(p.info.get("shape", "packing")))
    if not made:
        return [], (f"a {diameter:.0f} Å particle exceeds {PARTICLE_ATOM_LIMIT} atoms: the "
                    "answer is the size only")
    return made, None


def model_text(model: kind_models.KindModel, n: int) -> str:
    """'16 samples of MODEL, ' for the run's method line ('' when none were taken)."""
    return f"{n} samples of {model.name}, " if n else ""


def run_without_pdf(request: Any, patterns: dict[str, Any], comp: dict[int, float] | None,
                    taken: dict[str, str], folder: OutputFolder | None,
                    say: Callable[[str], None], versions: dict[str, str]) -> SampleResult:
    """The run of `sample` when no PDF is given (`request`: the run's `SampleRequest`): XRD ranks
    crystal candidates by Rwp; a SAXS pattern adds its size answer (and, alone, ranks the
    packings at that size by the Debye I(q) Rw). Written to `folder` when given."""
    kind = "xrd" if "xrd" in patterns else "saxs"
    model = kind_models.choose(kind, request.model, request.checkpoint, request.device)
    if kind == "xrd" and not comp:
        raise InvdesignError(NO_COMPOSITION)
    sampled: list[Structure] = []
    if kind == "xrd" or comp:
        sampled, model = kind_models.samples(model, patterns, comp, request.n, request.seed,
                                             request.sampling)
    elif model.path is not None:
        model = kind_models.KindModel(None, note=f"{model.name} not sampled: no composition "
                                      "given (a SAXS curve does not tell the elements)")
    taken["model"] = kind_models.describe(model)
    answers: dict[str, Any] = {}
    if "saxs" in patterns:
        size = saxs_size(patterns["saxs"])
        answers["saxs_size"] = asdict(size)
        taken["size"] = f"{size_text(size)} (SAXS sphere fit)"
    for key, value in taken.items():
        say(f"{key}: {value}")
    cands: list[Candidate] = []

    def keep(cand: Candidate) -> None:
        check(cand, comp)
        if folder is not None:
            folder.write_candidate(cand)
            cand.files.sort(key=lambda name: not name.endswith(".cif"))  # a cell's CIF first
        cands.append(cand)
        where = f" -> {cand.files[0]}" if cand.files else ""
        say(f"candidate {cand.index + 1}: {describe(cand)}, {metric} {cand.rw:.4f}"
            f"{'' if cand.valid else ' (invalid)'}{where}")

    if kind == "xrd":
        metric = "Rwp"
        ranker = PowderRanker(patterns["xrd"], request.fit_range)
        aflow = request.with_aflow(True)
        structures, duplicates = collapse(crystal_cells(comp, request.library, aflow=aflow)
                                          + sampled)
        say(f"pool: {len(structures)} crystal candidates ({len(sampled)} sampled from "
            f"{model.name}; {duplicates} duplicates collapsed); XRD ranks crystals only")
        if not structures:
            raise InvdesignError("no structure type of the library fits the composition; add "
                                 "CIFs with --library DIR")
        for i, cell in enumerate(structures):
            keep(ranker.score(i, cell))
        if request.refine:
            best = sorted(cands, key=rank_key)[:request.refine_top]
            picks = ranker.index_picks(cands, best)
            for cand in best + picks:
                ranker.refine(cand)
                check(cand, comp)
                if folder is not None:
                    folder.write_refined(cand)
                start = (f" from its indexed cell (significance "
                         f"{cand.scores['index_significance']:.1f})" if cand in picks else "")
                say(f"refined candidate {cand.index} ({describe(cand)}){start}: Rwp "
                    f"{cand.rw:.4f} -> {cand.rw_refined:.4f}")
        how = [f"{len(cands)} crystal candidates ({model_text(model, len(sampled))}"
               "structure-type library"
               f"{', AFLOW prototypes' if aflow else ''}"
               f"{', metallic lattices' if is_metallic(comp) else ''}), "
               f"{duplicates} duplicates collapsed.", METHOD,
               f"Fitted over 2-theta {ranker.fit_range[0]:g}-{ranker.fit_range[1]:g} deg; all "
               "screened (broad peaks, binned data)"
               + (f", the {min(request.refine_top, len(cands))} best refined (every profile "
                  "parameter free)"
                  f"; {len(ranker.starts)} cells index the pattern's peak positions "
                  f"significantly (the up to {INDEX_TOP} most significant of the rest refined "
                  "from their indexed cell too)"
                  if request.refine else "")
               + "; ranked valid first, then refined before screened, then Rwp (column rwp)"
               + ("; among refined fits of one structure the one with fewer parameters first "
                  "unless Hamilton's R-ratio test (5 %) finds the other's lower Rwp significant."
                  if request.refine else ".")]
        fit_range, draw = ranker.fit_range, ranker.final_fit
        labels = ("2θ (deg)", "intensity")
    else:
        metric = "Rw"
        diameter = answers["saxs_size"]["diameter"]
        particles, reason = saxs_particles(comp, diameter, request.seed)
        if sampled:
            particles, reason = particles + sampled, None
        duplicates = 0
        how = ["SAXS: polydisperse spheres (sasmodels sphere, Schulz radius distribution) "
               "fitted to I(q): the size answer."]
        forward = ForwardAdapter(patterns, device=request.device)
        if reason is not None:
            say(f"no structure candidates: {reason}")
            how.append(f"No structure candidates: {reason}.")
        else:
            particles, duplicates = collapse(particles)
            for i, particle in enumerate(particles):
                keep(forward.score(i, particle))
            how.append(f"{len(cands)} particles ({model_text(model, len(sampled))}packings "
                       f"and cluster shapes at the SAXS diameter; {duplicates} duplicates "
                       "collapsed) ranked by the Rw of their Debye I(q) (least-squares scale).")
        fit_range, draw = forward.fit_range, forward.final_fit
        labels = forward.axis_labels()
    cands.sort(key=rank_key)
    if kind == "xrd":
        cands[:] = parsimonious_first(cands)
    for rank, cand in enumerate(cands, start=1):
        cand.rank = rank
    if cands and request.energies:
        how.append(add_energies(cands, request.device, say))
    if model.note:
        how.append(f"Model: {model.note}.")
    weights = None if model.path is None else defaults.weights_file(model.path)
    result = SampleResult(candidates=cands, model=model.name,
                          checkpoint=str(weights or ""),
                          checkpoint_hash="" if weights is None else defaults.sha256(weights),
                          seed=request.seed, versions=versions,
                          how=" ".join(how), taken=taken, fit_range=fit_range,
                          duplicates=duplicates, metric=metric, answers=answers)
    if folder is not None:
        best = cands[:request.n_plotted]
        for cand in best:
            cand.fit = draw(cand)
        folder.write_fit_plot(best, xlabel=labels[0], ylabel=labels[1], metric=metric)
        folder.write_summary(result)
    return result
