"""`sample` (`invdesign.pipeline.sample`): measured pattern(s) in, ranked and fitted candidates out.

The Python API behind `invdesign sample`:

    from invdesign.io.measured import read_pattern
    from invdesign.pipeline import sample
    pdf = read_pattern("examples/Pt_truncoct_2nm.gr", qdamp=0.04)   # options beat the header
    result = sample({"pdf": pdf}, n=16, seed=0, refine=True, out="pt_run")
    result.best.final_rw, result.best.final      # Rw, Structure (refined)

Steps: read the patterns; take the composition from the argument, else a header, else the model;
load the generator (default: `invdesign.pipeline.defaults.DEFAULT_MODEL`); estimate the particle
size from G(r) and pick a route (`candidates.plan_route`); produce `n` candidates from the
candidate sources that apply (`planning`, `sources`), forward-simulate each on the measured grid
(Rw, fitted scale) and write it at once; optionally refine the best ones; rank by (refined) Rw;
give every valid candidate the formation energy of its material and every particle its excess
energy (`invdesign.pipeline.energies`, when the checkpoints are shipped; `energies=False` skips
it); write summaries, fit plots and `.fgr` curves. The API's options travel as one `SampleRequest`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import torch

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals.aflow import aflow_types
from invdesign.crystals.library import load_library
from invdesign.pipeline import defaults
from invdesign.pipeline.energies import add_energies
from invdesign.pipeline.forward import REFINE_SECONDS, REFINE_STEPS, ForwardAdapter
from invdesign.pipeline.inputs import (
    check_guidance,
    check_options,
    format_fractions,
    read_patterns,
    resolve_composition,
    taken_values,
)
from invdesign.pipeline.outputs import OutputFolder
from invdesign.pipeline.planning import Plan, load_generator, make_plan, produce
from invdesign.pipeline.pool import (
    CUT_TOP,
    DEFAULT_DIAMETER,
    SMALL_DIAMETER,
    check,
    collapse,
    cut_candidates,
    cut_crystal,
    describe,
    rank,
    refine_best,
)
from invdesign.pipeline.result import Candidate, SampleResult
from invdesign.pipeline.sizing import SizeEstimate, estimate_size
from invdesign.pipeline.sources import PoolInputs
from invdesign.pipeline.xrd import extra_rwp, run_without_pdf

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SampleRequest:
    """The options of one `sample` run, checked and built once from the API's arguments (see
    `sample` for their meaning)."""

    composition: str | Mapping | None
    model: str | None
    checkpoint: str | os.PathLike | None
    n: int
    seed: int
    refine: bool
    refine_top: int
    device: str
    fit_range: tuple[float, float] | None
    metal_core: bool
    n_plotted: int
    sampler: str | None = None
    steps: int | None = None
    guidance: dict[str, Any] = field(default_factory=dict)
    library: Any = None
    energies: bool = True
    aflow: bool | None = None

    def with_aflow(self, by_default: bool) -> bool:
        """Whether the AFLOW prototypes join the structure-type library: `aflow` as asked, else
        `by_default` (the one rule: XRD runs yes, PDF runs no)."""
        return by_default if self.aflow is None else bool(self.aflow)

    @property
    def sampling(self) -> dict[str, Any]:
        """Options of the generator's `sample` (None: the checkpoint's default)."""
        return {"sampler": self.sampler, "steps": self.steps, **self.guidance}


def versions() -> dict[str, str]:
    """Versions of invdesign, torch and debyecalculator (package metadata; nothing imported)."""
    out = {}
    for name in ("invdesign", "torch", "debyecalculator"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InvdesignError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1)") \
            from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvdesignError(f"--device {device}: CUDA is not available here; use --device cpu")


def sample(
    measured_patterns: Any,
    composition: str | Mapping | None = None,
    model: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    n: int = defaults.DEFAULT_N,
    seed: int = defaults.DEFAULT_SEED,
    refine: bool = False,
    device: str = "cpu",
    out: str | os.PathLike | None = None,
    force: bool = False,
    fit_range: tuple[float, float] | None = None,
    metal_core: bool = False,
    refine_top: int = defaults.REFINE_TOP,
    n_plotted: int = defaults.N_PLOTTED,
    progress: Progress | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    guidance_start: float | None = None,
    resample_every: int | None = None,
    resample_temperature: float | None = None,
    library: str | os.PathLike | None = None,
    energies: bool = True,
    aflow: bool | None = None,
) -> SampleResult:
    """Candidate structures that explain measured pattern(s), ranked by Rw.

    Args:
        measured_patterns: a PDF (path or `MeasuredPattern`), or {'pdf'|'xrd'|'saxs': either}.
            Without a PDF, an XRD pattern ranks crystal candidates by powder-fit Rwp and a
            SAXS pattern gives the particle size (`invdesign.pipeline.xrd`); with a PDF, the
            PDF ranks and an XRD pattern adds `xrd_rwp` for the best crystals.
        composition: 'Pt', 'CdSe', {'Zn': 1, 'O': 1} or {30: 0.5, 8: 0.5}; None: the header's, else
            the model predicts species.
        model: shipped model name (folder under `checkpoints/`); checkpoint: a checkpoint path
            (wins over `model`). Neither: `defaults.DEFAULT_MODEL`.
        n: samples drawn from each generator that applies (the known-structure sources add
            every structure that applies); seed: sampling seed (same seed, same candidates).
        refine: refine the `refine_top` best candidates (valid first, then screened Rw) fully.
        device: torch device ('cpu', 'cuda').
        out: output folder (candidates, summary.csv/json, fit.png, .fgr); None: write nothing.
        force: replace an existing `out`.
        fit_range: (rmin, rmax) Å of the PDF Rw; default 1.5 Å to the data's rmax, at most 30 Å.
            An XRD run without a PDF: the 2-theta range (deg) of the powder fit.
        metal_core: model only the metals of the composition (drop a ligand shell).
        n_plotted: candidates shown in fit.png and written as .fgr.
        progress: called with one line per step (the CLI prints them).
        sampler, steps: diffusion models only: the sampler ('ddpm', 'ddim', 'dpmsolver') and its
            number of steps (None: the checkpoint's defaults).
        guidance_scale, guidance_start: diffusion models only: forward-model guidance of the
            samples towards the input pattern (`generators.diffusion.guidance`; scale 0: off) and
            the fraction of the reverse trajectory after which it acts (None: the checkpoint's).
        resample_every, resample_temperature: diffusion models only: the guided samples are
            resampled by their misfit every this many guided steps (0: never), weights
            exp(-misfit / temperature) (`generators.diffusion.resampling`; None: the
            checkpoint's, which is never).
        library: a folder of CIFs added to the structure-type library (one type per file).
        energies: predict the formation energy of every valid candidate's material and the excess
            energy of every particle (`invdesign.pipeline.energies`); False skips it.
        aflow: add the 288 AFLOW prototypes pymatgen ships (`invdesign.crystals.aflow`) to the
            structure-type library; None: added for an XRD run without a PDF, not with a PDF.
    """
    say = progress or (lambda _msg: None)
    n, seed, refine_top, fit_range = check_options(n, seed, refine_top, fit_range)
    guidance = check_guidance(guidance_scale, guidance_start, resample_every,
                              resample_temperature)
    _check_device(device)
    types = _library(library)
    request = SampleRequest(composition=composition, model=model, checkpoint=checkpoint, n=n,
                            seed=seed, refine=refine, refine_top=refine_top, device=device,
                            fit_range=fit_range, metal_core=metal_core, n_plotted=n_plotted,
                            sampler=sampler, steps=steps, guidance=guidance, library=types,
                            energies=bool(energies), aflow=aflow)
    patterns = read_patterns(measured_patterns)
    inputs = [p.path for p in patterns.values() if getattr(p, "path", None)]
    inputs += [checkpoint] if checkpoint is not None else []  # --out must not replace them
    folder = OutputFolder(out, force, protect=inputs) if out is not None else None
    try:
        result = _run(request, patterns, folder, say)
        if folder is not None:
            result.out = str(folder.commit())
        return result
    finally:
        if folder is not None and not folder.committed:
            folder.discard()


def _library(folder: str | os.PathLike | None) -> list[Any]:
    """The structure-type library with the CIFs of `folder` added (`--library DIR`); a folder
    that is missing, holds no CIF or an unreadable one is a one-line `DataFormatError`."""
    try:
        return load_library(extra=folder)
    except DataFormatError as err:
        if folder is not None and "--library" not in err.message:
            raise DataFormatError(f"--library: {err.message}", err.path) from None
        raise


def _run(request: SampleRequest, patterns: dict[str, Any], folder: OutputFolder | None,
         say: Progress) -> SampleResult:
    """The run of `sample` once the options are checked, the patterns read and the library
    loaded."""
    taken = taken_values(patterns)
    comp, comp_source = resolve_composition(request.composition, patterns, request.metal_core)
    taken["composition"] = f"{format_fractions(comp)} ({comp_source})"
    if "pdf" not in patterns:  # XRD ranks crystals by Rwp; SAXS gives the size
        return run_without_pdf(request, patterns, comp, taken, folder, say, versions())
    ckpt = defaults.resolve_checkpoint(request.model, request.checkpoint)
    source = "option" if (request.model or request.checkpoint) else "default"
    generator = load_generator(ckpt, device=request.device)
    taken["model"] = f"{ckpt.name} ({source}), task {generator.task.name}"

    size: SizeEstimate | None = None
    if "pdf" in patterns:
        pdf = patterns["pdf"]
        try:
            size = estimate_size(np.asarray(pdf.x), np.asarray(pdf.y))
        except ValueError as err:
            raise DataFormatError(f"cannot read the particle size off G(r): {err}", pdf.path) \
                from None
        taken["size"] = (f"diameter ~{size.diameter:.0f} Å{' (bulk-like)' if size.bulk else ''}, "
                         f"first peak {size.nn_distance:.3f} Å (from the data)")
    for key, value in taken.items():
        say(f"{key}: {value}")
    forward = ForwardAdapter(patterns, fit_range=request.fit_range, device=request.device,
                             diameter=None if size is None or size.bulk else size.diameter)
    library = request.library + (list(aflow_types()) if request.with_aflow(False) else [])
    pool_inputs = PoolInputs(comp, size, generator.task, library)
    plan = make_plan(pool_inputs, ckpt)
    say(f"pool: {plan.text()}")
    made, notes, counts = produce(plan, pool_inputs, (ckpt, generator), patterns, taken, folder,
                                  say, n=request.n, seed=request.seed, device=request.device,
                                  sampling=request.sampling)
    if not forward.crystals:  # no PDF: crystals are cut to particles of the default size
        diameter = size.diameter if size is not None else DEFAULT_DIAMETER
        made = [s if not s.is_periodic else cut_crystal(s, diameter, request.device)
                for s in made]
        made = [s for s in made if s is not None]
    structures, duplicates = collapse(made)
    say(f"pool: {len(made)} candidates made, {duplicates} duplicates collapsed, "
        f"{len(structures)} screened")
    if not structures:
        raise InvdesignError(f"no candidate could be produced ({plan.text(counts)})")

    candidates: list[Candidate] = []

    def screen(batch: list[Structure]) -> None:
        for structure in batch:
            i = len(candidates)
            cand = forward.score(i, structure)
            check(cand, comp)
            if folder is not None:
                folder.write_candidate(cand)
            candidates.append(cand)
            where = f" -> {cand.files[0]}" if cand.files else ""
            say(f"candidate {i + 1}/{len(structures)}: {describe(cand)}, Rw {cand.rw:.4f}"
                f"{'' if cand.valid else ' (invalid)'}{where}")

    screen(structures)
    if forward.crystals and size is not None and not size.bulk \
            and size.diameter < SMALL_DIAMETER:
        cuts = cut_candidates(candidates, size.diameter, request.device)
        say(f"small particle: {len(cuts)} best crystal types also cut to "
            f"{size.diameter:.0f} Å particles")
        structures = structures + cuts
        screen(cuts)

    if request.refine:
        chosen, stepped = refine_best(candidates, forward, request.refine_top, comp)
        for cand in chosen:
            if folder is not None:
                folder.write_refined(cand)
            steps = int(cand.params.get("refine_steps", 0))
            detail = ("attenuated crystal" if cand.is_crystal else
                      f"{steps} gradient steps" if cand is stepped else "scan only")
            say(f"refined candidate {cand.index} ({describe(cand)}): Rw {cand.rw:.4f} -> "
                f"{cand.rw_refined:.4f} ({detail})")
    rank(candidates)
    if "xrd" in patterns and any(c.is_crystal for c in candidates):
        done = extra_rwp(candidates, patterns["xrd"], request.refine_top)
        say(f"XRD: powder-fit Rwp of the {done} best crystal candidate(s) (column xrd_rwp)")
    energy_text = add_energies(candidates, request.device, say) if request.energies else ""

    how = _how(request, plan, notes, counts, comp, comp_source, forward, len(candidates),
               duplicates)
    how += f" {energy_text}" if energy_text else ""
    sampled = plan.checkpoints
    weights = defaults.weights_file(sampled[0]) if sampled else None
    result = SampleResult(
        candidates=candidates,
        model=plan.model_name,
        checkpoint=str(weights or ""),
        checkpoint_hash=defaults.sha256(weights) if weights is not None else "",
        seed=request.seed,
        versions=versions(),
        how=how,
        taken=taken,
        fit_range=forward.fit_range,
        duplicates=duplicates,
    )
    if folder is not None:
        _write_run(folder, result, forward, request.n_plotted)
    return result


def _how(request: SampleRequest, plan: Plan, notes: list[str], counts: list[int], comp,
         comp_source: str, forward: ForwardAdapter, produced: int, duplicates: int) -> str:
    """The report's paragraph on how the candidates were made and ranked."""
    parts = [f"{produced} candidates, seed {request.seed}, one pool from "
             f"{plan.text(counts)}; {duplicates} duplicates collapsed."]
    parts += [f"Left out: {note}." for note in notes[len(plan.notes):]]
    parts.extend(plan.methods)
    parts.append(f"Species: {format_fractions(comp)} ({comp_source}).")
    lo, hi = forward.fit_range
    parts.append(f"Particles scored by Rw of the DebyeCalculator pattern on the measured grid over "
                 f"{lo:g}-{hi:g} Å (least-squares scale).")
    if forward.crystals:
        parts.append("Crystals (unit cells) fitted as attenuated crystals: periodic G(r) times a "
                     "sphere's shape function (lattice scale, diameter, Uiso, qdamp when only a "
                     f"default); for a particle under {SMALL_DIAMETER:g} Å the best {CUT_TOP} "
                     "crystal types are also cut to discrete particles.")
    parts.append("Every candidate is checked for composition and interatomic distances; an "
                 "invalid candidate ranks below every valid one.")
    if request.refine:
        parts.append(f"The {request.refine_top} best (valid first, then screened Rw) were "
                     "refined: crystals by lattice per crystal system, delta2, Uiso per element, "
                     "qdamp, diameter, positions and scale; particles through DebyeCalculator "
                     "(lattice scale, biso and qdamp on grids, then the best particle up to "
                     f"{REFINE_STEPS} gradient steps on positions with a minimum-distance guard, "
                     f"the whole refinement within {REFINE_SECONDS:g} s of wall time: see "
                     "refine_steps); re-ranked by refined Rw.")
    return " ".join(parts)


def _write_run(folder: OutputFolder, result: SampleResult, forward: ForwardAdapter,
               n_plotted: int) -> None:
    best = result.candidates[:n_plotted]
    for cand in best:
        fit = forward.final_fit(cand)
        cand.fit = fit
        if forward.is_pdf and fit is not None:
            cand.files.append(folder.write_fgr(f"fit_rank{cand.rank}.fgr", fit,
                                               forward.fgr_header(cand)))
    xlabel, ylabel = forward.axis_labels()
    folder.write_fit_plot(best, xlabel=xlabel, ylabel=ylabel)
    folder.write_summary(result)
