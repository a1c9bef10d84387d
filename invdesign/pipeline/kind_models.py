"""The generator of a run without a PDF: chosen by the measured kind that ranks the run, checked
against it, and sampled on the measured pattern.

`sample --xrd` samples a unit-cell model conditioned on the powder pattern (crystal candidates
beside the structure-type library); `sample --saxs` with a composition samples a particle model
conditioned on the SAXS curve (particle candidates beside the packings). Without `--model` or
`--checkpoint` the shipped model of the kind is used (`defaults.KIND_MODELS`, on the lab-range
views of `invdesign.core.patterns.VIEWS`); a model of another kind (a PDF model for an XRD file)
is refused with one line naming the kind of model needed, whether asked for by name or by path.
The data must cover the model's grid: a model asked for by the user whose grid the data do not
cover is refused (one line naming the file); the default model is then left out with a note, and
the run goes on with known structures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invdesign.core.errors import CheckpointError, DataFormatError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.pipeline import defaults
from invdesign.pipeline.forward import kind_of
from invdesign.pipeline.inputs import model_inputs
from invdesign.pipeline.planning import label, load_generator
from invdesign.pipeline.sources import from_inputs

#: The target each kind's run ranks: XRD ranks crystals, SAXS particles.
TARGET_KIND = {"xrd": "unit_cell", "saxs": "particle"}
#: `info['source']` of the samples (as in a PDF run's pool).
SOURCE = {"unit_cell": "unit_cell_model", "particle": "generator"}


@dataclass
class KindModel:
    """The generator of the run, or why there is none.

    Attributes:
        path: the checkpoint (None: no model sampled).
        generator: the loaded generator (None with `path`).
        chosen: 'option' (`--model`/`--checkpoint`) or 'default'.
        note: why the model was not sampled, or how the data were mapped for it (smoothing);
            None when there is nothing to say.
    """

    path: Path | None
    generator: Any = None
    chosen: str = "default"
    note: str | None = None

    @property
    def name(self) -> str:
        return "known structures" if self.path is None else label(self.path)


def choose(kind: str, model: str | None = None, checkpoint: str | os.PathLike | None = None,
           device: str = "cpu") -> KindModel:
    """The model of a run ranked by `kind` ('xrd' or 'saxs'): the one asked for by `--model` or
    `--checkpoint` (checked to take `kind` and make its target), else the shipped one of the kind
    (a note when it is not installed)."""
    asked = model is not None or checkpoint is not None
    if asked:
        path = defaults.resolve_checkpoint(model, checkpoint)
    else:
        try:
            path = defaults.resolve_checkpoint(defaults.KIND_MODELS[kind])
        except CheckpointError:
            return KindModel(None, note=f"the {kind.upper()} model "
                             f"{defaults.KIND_MODELS[kind]} is not installed")
    generator = load_generator(path, device=device)
    task = generator.task
    kinds = sorted({kind_of(p) for p in task.patterns})
    given = (f"--model {model}" if checkpoint is None
             else f"--checkpoint {checkpoint}") if asked else "the default model"
    needed = ("an XRD (xrd->... or xrd_lab->...)" if kind == "xrd"
              else "a SAXS (saxs->... or saxs_lab->...)")
    shipped = defaults.KIND_MODELS[kind]
    if kinds != [kind]:
        raise InvdesignError(
            f"{given} ({label(path)}) is a {'/'.join(k.upper() for k in kinds)} model (task "
            f"{task.name}); a --{kind} file needs {needed} model: leave out --model to use "
            f"{shipped}")
    if task.kind != TARGET_KIND[kind]:
        made = "unit cells" if task.kind == "unit_cell" else "particles"
        wanted = "unit-cell" if TARGET_KIND[kind] == "unit_cell" else "particle"
        raise InvdesignError(
            f"{given} ({label(path)}, task {task.name}) makes {made}; a --{kind} run ranks "
            f"{'crystals' if kind == 'xrd' else 'particles'}: give a {wanted} model or leave out "
            f"--model to use {shipped}")
    return KindModel(path, generator, "option" if asked else "default")


def samples(model: KindModel, patterns: Mapping[str, Any], composition: dict[int, float] | None,
            n: int, seed: int, sampling: Mapping[str, Any] | None = None,
            ) -> tuple[list[Structure], KindModel]:
    """`n` structures of `model` (seeded; `sampling`: the diffusion sampler's options) conditioned
    on the composition and the measured patterns it takes (each on the model's grid,
    `inputs.model_inputs`), tagged with their source. Data that do not cover the grid: refused
    for a model the user asked for; for the default, no samples and a note."""
    if model.generator is None:
        return [], model
    try:
        inputs = model_inputs(dict(patterns), model.generator.task, None)
    except DataFormatError as err:
        if model.chosen == "option":
            raise
        where = f"{Path(err.path).name}: " if err.path else ""
        return [], KindModel(None, note=f"{model.name} not sampled: {where}{err.message}")
    made = from_inputs(model.generator, inputs, composition, n, seed, sampling)
    source = SOURCE[model.generator.task.kind]
    for s in made:
        s.info["source"] = s.info["structure_type"] = source
    notes = [inp.note for inp in inputs.values() if inp.note]
    if notes:
        model.note = "; ".join(notes)
    return made, model


def describe(model: KindModel) -> str:
    """The 'model' line of the run's taken values."""
    if model.path is None:
        return f"none ({model.note})"
    task = model.generator.task
    return f"{model.name} ({model.chosen}), task {task.name}"
