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
predict formation energies (the 'formation_energy' evaluator, when its checkpoint is shipped);
write summaries, fit plots and `.fgr` curves. The API's options travel as one `SampleRequest`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.evaluators.base import evaluator_class
from invdesign.pipeline import defaults
from invdesign.pipeline.candidates import Route, plan_route
from invdesign.pipeline.forward import REFINE_SECONDS, REFINE_STEPS, ForwardAdapter
from invdesign.pipeline.inputs import (
    ModelInput,
    check_options,
    format_fractions,
    model_inputs,
    read_patterns,
    resolve_composition,
    taken_values,
)
from invdesign.pipeline.inputs import describe as describe_inputs
from invdesign.pipeline.outputs import OutputFolder
from invdesign.pipeline.planning import Plan, load_generator, make_plan, produce, sampled_generator
from invdesign.pipeline.result import Candidate, SampleResult
from invdesign.pipeline.sizing import SizeEstimate, estimate_size
from invdesign.pipeline.sources import PlanInputs, SourceContext

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

    @property
    def sampling(self) -> dict[str, Any]:
        """Options of the generator's `sample` (None: the checkpoint's default)."""
        return {"sampler": self.sampler, "steps": self.steps}


def versions() -> dict[str, str]:
    """Versions of invdesign, torch and debyecalculator (package metadata; nothing imported)."""
    out = {}
    for name in ("invdesign", "torch", "debyecalculator"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    refine_top: int = 3,
    n_plotted: int = defaults.N_PLOTTED,
    progress: Progress | None = None,
    sampler: str | None = None,
    steps: int | None = None,
) -> SampleResult:
    """Candidate structures that explain measured pattern(s), ranked by Rw.

    Args:
        measured_patterns: a PDF (path or `MeasuredPattern`), or {'pdf'|'xrd'|'saxs': either}.
        composition: 'Pt', 'CdSe', {'Zn': 1, 'O': 1} or {30: 0.5, 8: 0.5}; None: the header's, else
            the model predicts species.
        model: shipped model name (folder under `checkpoints/`); checkpoint: a checkpoint path
            (wins over `model`). Neither: `defaults.DEFAULT_MODEL`.
        n: number of candidates; seed: sampling seed (same seed, same candidates).
        refine: refine the `refine_top` best candidates through DebyeCalculator.
        device: torch device ('cpu', 'cuda').
        out: output folder (candidates, summary.csv/json, fit.png, .fgr); None: write nothing.
        force: replace an existing `out`.
        fit_range: (rmin, rmax) Å of the PDF Rw; default 1.5 Å to the data's rmax, at most 30 Å.
        metal_core: model only the metals of the composition (drop a ligand shell).
        n_plotted: candidates shown in fit.png and written as .fgr.
        progress: called with one line per step (the CLI prints them).
        sampler, steps: diffusion models only: the sampler ('ddpm', 'ddim', 'dpmsolver') and its
            number of steps (None: the checkpoint's defaults).
    """
    say = progress or (lambda _msg: None)
    n, seed, refine_top, fit_range = check_options(n, seed, refine_top, fit_range)
    _check_device(device)
    request = SampleRequest(composition=composition, model=model, checkpoint=checkpoint, n=n,
                            seed=seed, refine=refine, refine_top=refine_top, device=device,
                            fit_range=fit_range, metal_core=metal_core, n_plotted=n_plotted,
                            sampler=sampler, steps=steps)
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


def _run(request: SampleRequest, patterns: dict[str, Any], folder: OutputFolder | None,
         say: Progress) -> SampleResult:
    """The run of `sample` once the options are checked and the patterns read."""
    n, device = request.n, request.device
    taken = taken_values(patterns)
    comp, comp_source = resolve_composition(request.composition, patterns, request.metal_core)
    taken["composition"] = f"{format_fractions(comp)} ({comp_source})"
    ckpt = defaults.resolve_checkpoint(request.model, request.checkpoint)
    source = "option" if (request.model or request.checkpoint) else "default"
    generator = load_generator(ckpt, device=device)
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
    route = plan_route(generator.task, size, comp)
    say(f"route: {route.name}: {route.reason}")

    forward = ForwardAdapter(patterns, fit_range=request.fit_range, device=device)
    plan_inputs = PlanInputs(route, comp, size, generator.task)
    plan = make_plan(plan_inputs, ckpt, n)
    say(f"candidates: {plan.text}")
    sampled = sampled_generator(plan, generator, ckpt, device)
    inputs = _model_inputs(patterns, sampled or generator, size, sampled is not None, folder)
    for key, value in describe_inputs(inputs).items():
        taken[key] = value
        say(f"{key}: {value}")
    used_ckpt = plan.checkpoint
    context = SourceContext(plan_inputs, sampled, inputs, request.seed, device, request.sampling,
                            say)
    produced = produce(plan, context)

    candidates: list[Candidate] = []
    for i, structure in enumerate(produced):
        cand = forward.score(i, structure)
        if folder is not None:
            folder.write_candidate(cand)
        candidates.append(cand)
        where = f" -> {cand.files[0]}" if cand.files else ""
        say(f"candidate {i + 1}/{n}: {structure.n_atoms} atoms, Rw {cand.rw:.4f}{where}")
    if not candidates:
        raise InvdesignError(f"no candidate could be produced ({plan.text}): every unit cell "
                             "was collapsed or cut to an empty particle")
    if len(candidates) < n:
        say(f"only {len(candidates)} of the {n} requested candidates could be produced "
            f"({plan.text}; the rest would repeat a structure)")
    candidates.sort(key=lambda c: (np.nan_to_num(c.rw, nan=np.inf), c.index))

    if request.refine:
        chosen = sorted(candidates, key=lambda c: (c.scores.get("rw_scan", c.rw), c.index))
        chosen = chosen[:request.refine_top]
        stepped = forward.refine_many(chosen)
        for cand in chosen:
            if folder is not None:
                folder.write_refined(cand)
            steps = int(cand.params.get("refine_steps", 0))
            say(f"refined candidate {cand.index}: Rw {cand.rw:.4f} -> {cand.rw_refined:.4f}"
                + (f" ({steps} gradient steps)" if cand is stepped else " (scan only)"))
        candidates.sort(key=lambda c: (np.nan_to_num(c.final_rw, nan=np.inf), c.index))
    for rank, cand in enumerate(candidates, start=1):
        cand.rank = rank
    _add_properties(candidates, device, say)

    how = _how(request, route, plan, comp, comp_source, forward, produced=len(candidates))
    weights = defaults.weights_file(used_ckpt) if used_ckpt is not None else None
    result = SampleResult(
        candidates=candidates,
        model=plan.model_name,
        checkpoint=str(weights or ""),
        checkpoint_hash=sha256(weights) if weights is not None else "",
        seed=request.seed,
        versions=versions(),
        how=how,
        taken=taken,
        fit_range=forward.fit_range,
    )
    if folder is not None:
        _write_run(folder, result, forward, request.n_plotted)
    return result


def _model_inputs(patterns, generator, size, sampled: bool,
                  folder: OutputFolder | None) -> dict[str, ModelInput]:
    """The patterns on the model grid: refused when they cannot cover it and the model is
    sampled; otherwise computed for the input plot only (skipped if impossible). The plot of the
    original data against each input goes to `folder` (`input_<kind>.png`)."""
    try:
        inputs = model_inputs(patterns, generator.task, size, check=sampled)
    except InvdesignError:
        if sampled:
            raise
        return {}
    if folder is not None:
        for inp in inputs.values():
            folder.write_input_plot(patterns[inp.kind], inp, used=sampled)
    return inputs if sampled else {}


def _add_properties(candidates: list[Candidate], device: str, say: Progress) -> None:
    """Predicted formation energy (eV/atom) when the property checkpoint is shipped, for the
    candidates of at most `defaults.PROPERTY_MAX_ATOMS` atoms (larger particles are outside what
    the property model was trained on)."""
    path = defaults.checkpoint_root() / "property-default"
    if not (path / "model.safetensors").is_file():
        return
    chosen = [c for c in candidates if c.final.n_atoms <= defaults.PROPERTY_MAX_ATOMS]
    skipped = len(candidates) - len(chosen)
    if skipped:
        say(f"formation energy not predicted for {skipped} candidate(s) above "
            f"{defaults.PROPERTY_MAX_ATOMS} atoms (outside the property model's training set)")
    if not chosen:
        return
    try:
        evaluator = evaluator_class("formation_energy")(checkpoint=path, device=device)
        records = evaluator.evaluate([c.final for c in chosen])
    except InvdesignError as exc:
        say(f"formation energy skipped: {exc}")
        return
    for cand, rec in zip(chosen, records, strict=True):
        cand.scores["formation_energy_per_atom"] = float(rec["formation_energy_per_atom"])
    say(f"formation energy predicted with {path.name} for {len(chosen)} candidate(s)")


def _how(request: SampleRequest, route: Route, plan: Plan, comp, comp_source: str,
         forward: ForwardAdapter, produced: int | None = None) -> str:
    """The report's paragraph on how the candidates were made and ranked."""
    n, seed = request.n, request.seed
    parts = [f"{n} candidates, seed {seed}: {plan.text}."]
    if produced is not None and produced < n:
        parts[0] = (f"{produced} candidates ({n} requested; the rest would repeat a structure), "
                    f"seed {seed}: {plan.text}.")
    if plan.checkpoint is not None:
        parts.append(f"Model: {plan.checkpoint.name}.")
    parts.extend(plan.methods)
    parts.append(f"Why: {route.reason}.")
    parts.append(f"Species: {format_fractions(comp)} ({comp_source}).")
    parts.append(f"Ranked by Rw of the DebyeCalculator pattern on the measured grid over "
                 f"{forward.fit_range[0]:g}-{forward.fit_range[1]:g} Å (least-squares scale).")
    if request.refine:
        parts.append(f"The {request.refine_top} best by Rw with biso (and a default qdamp) "
                     "scanned were refined through DebyeCalculator: lattice scale, biso and qdamp "
                     f"on grids; the best of them then got up to {REFINE_STEPS} gradient steps on "
                     "positions and those parameters (with a minimum-distance guard; the whole "
                     f"refinement within {REFINE_SECONDS:g} s of wall time, so a loaded machine "
                     "takes fewer steps: see refine_steps); re-ranked by refined Rw.")
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
