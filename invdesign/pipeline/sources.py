"""Candidate sources: where the candidate structures of `sample` come from.

A source is any object with the attributes and methods of `CandidateSource`. `SOURCES` lists
today's, in the order their candidates are produced:
- `GeneratorSamples` ('generator'): the loaded particle model, sampled on the GENERATOR route;
- `CutCells` ('cut_cells'): unit cells sampled from the unit-cell model (the loaded one, or
  `defaults.UNIT_CELL_MODEL` beside a particle model), each cut to a particle of the estimated
  diameter (`invdesign.crystals.cuts.cut_cells`), on the UNIT_CELL route;
- `MetallicPackings` ('packings'): metallic packings and cluster shapes
  (`invdesign.crystals.packings`) on the PACKINGS route, and beside the generator for a metal;
- `CrystalTypes` ('crystal_types'): the CHILI-3K crystal types of a one-metal oxide
  (`invdesign.crystals.templates`) cut at the estimated size, beside the model when a PDF gave it.

`planning.make_plan` asks every source whether it `applies` to the `PlanInputs` (the route, the
composition, the size, the model's task) and shares the `n` candidates: when model and known
sources both apply, the known ones get n // 2 and the model the rest; otherwise the sources that
apply get all n (all of them go to the known sources when the model is not installed).

Adding a candidate source
-------------------------
1. Write a class here (or in a module of its own) with `CandidateSource`'s members: a `name`
   (short, it names the candidates' origin in the summary when no model is sampled), `from_model`
   (True if it samples a generator checkpoint: it then shares `n` with the known-structure
   sources), `method` (one sentence for the report's 'how', '' for none), `applies`, `checkpoint`
   (None for known structures), `phrase` and `candidates`. Build the structures themselves in
   `invdesign.crystals` (known structures) or `generators/` (models); a source only connects them
   to the plan. Set `structure.info['source']` on what it yields.
2. Add an instance to `SOURCES` at the place its candidates should come in.
3. Test in `tests/pipeline/test_sources.py` which plan inputs it applies to and how many
   candidates the plan gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from invdesign.core.conditions import prepare_condition
from invdesign.core.errors import CheckpointError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskSpec
from invdesign.crystals.cuts import cut_cells
from invdesign.crystals.packings import packing_candidates
from invdesign.crystals.templates import matching_types, template_candidates
from invdesign.pipeline import defaults
from invdesign.pipeline.candidates import Route, RouteKind
from invdesign.pipeline.inputs import ModelInput
from invdesign.pipeline.sizing import SizeEstimate

#: The report's sentence on particles cut from unit cells (model cells and crystal types alike).
CUT_METHOD = "Particles cut from unit cells with DebyeCalculator's cutter."


@dataclass(frozen=True)
class PlanInputs:
    """What decides which sources run and what they make.

    Attributes:
        route: from `candidates.plan_route`.
        composition: atomic number -> fraction; None when the model predicts the species.
        size: the size read off the PDF; None without a PDF.
        task: the task of the loaded generator.
    """

    route: Route
    composition: dict[int, float] | None
    size: SizeEstimate | None
    task: TaskSpec

    @property
    def diameter(self) -> float | None:
        """Å, the diameter particles are cut to: the route's, else the estimated one."""
        return self.route.diameter or (self.size.diameter if self.size is not None else None)


@dataclass(frozen=True)
class SourceContext:
    """What producing candidates needs beyond the plan inputs.

    Attributes:
        inputs: the plan inputs.
        generator: the generator the plan samples (None when no source samples one).
        model_inputs: the patterns on the model's grid, by kind (the condition).
        seed: sampling seed; device: torch device.
        sampling: options of the generator's `sample` (the diffusion sampler, steps).
        say: progress lines.
    """

    inputs: PlanInputs
    generator: Any
    model_inputs: Mapping[str, ModelInput]
    seed: int
    device: str
    sampling: Mapping[str, Any]
    say: Callable[[str], None]


class ModelMissing(CheckpointError):
    """The checkpoint a model source samples is not installed; `note` says so in a few words."""

    def __init__(self, error: CheckpointError, note: str) -> None:
        super().__init__(error.message, error.path)
        self.note = note


class CandidateSource(Protocol):
    """Where candidates come from (see the module docstring for how to add one)."""

    #: short name; the summary's model when no checkpoint is sampled.
    name: str
    #: True if it samples a generator checkpoint (it then shares n with the known structures).
    from_model: bool
    #: one sentence on the method for the report's 'how' ('' for none).
    method: str

    def applies(self, inputs: PlanInputs) -> bool:
        """Whether it runs for these inputs."""
        ...

    def checkpoint(self, inputs: PlanInputs, loaded: Path) -> Path | None:
        """The checkpoint it samples (`loaded`: the one the run loaded); None for known
        structures. Raises `ModelMissing` when that checkpoint is not installed."""
        ...

    def phrase(self, inputs: PlanInputs) -> str:
        """What follows the count in the plan's sentence ('sampled from the model')."""
        ...

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        """Up to `n` candidates, yielded as they are made."""
        ...


def from_generator(generator, condition: Condition, n: int, seed: int,
                   sampling: Mapping[str, Any] | None = None) -> list[Structure]:
    """`n` structures sampled from `generator` for a one-item `condition`, reproducible by seed.
    `sampling`: options of the generator's `sample` (its `sampling_options`: the diffusion model's
    'sampler' and 'steps'); None values are left out."""
    options = {k: v for k, v in (sampling or {}).items() if v is not None}
    unknown = [k for k in options if k not in generator.sampling_options]
    if unknown:
        given = ", ".join(f"--{k}" for k in unknown)
        raise InvdesignError(f"{given}: only diffusion models take sampler options; this run "
                             f"samples the {generator.name} model {generator.task.name}")
    rng = torch.Generator(device="cpu").manual_seed(int(seed))
    structures = generator.sample(condition, n, generator=rng, **options)[0]
    for s in structures:
        s.info.setdefault("source", "generator")
    return structures


def _sampled(context: SourceContext, n: int) -> list[Structure]:
    """`n` structures of the context's generator, conditioned on its model inputs."""
    generator = context.generator
    condition = prepare_condition({inp.name: (inp.grid, inp.values)
                                   for inp in context.model_inputs.values()},
                                  generator.task, composition=context.inputs.composition)
    return from_generator(generator, condition, n, context.seed, context.sampling)


class GeneratorSamples:
    """The loaded particle model, sampled directly (GENERATOR route)."""

    name = "generator"
    from_model = True
    method = ""

    def applies(self, inputs: PlanInputs) -> bool:
        return inputs.route.name is RouteKind.GENERATOR

    def checkpoint(self, inputs: PlanInputs, loaded: Path) -> Path | None:
        return loaded

    def phrase(self, inputs: PlanInputs) -> str:
        return "sampled from the model"

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        yield from _sampled(context, n)


class CutCells:
    """Unit cells of the unit-cell model cut to particles (UNIT_CELL route): the loaded model if
    it makes unit cells, else `defaults.UNIT_CELL_MODEL`."""

    name = "cut_cells"
    from_model = True
    method = CUT_METHOD

    def applies(self, inputs: PlanInputs) -> bool:
        return inputs.route.name is RouteKind.UNIT_CELL

    def checkpoint(self, inputs: PlanInputs, loaded: Path) -> Path | None:
        if inputs.task.kind != "particle":
            return loaded
        try:
            return defaults.resolve_checkpoint(defaults.UNIT_CELL_MODEL)
        except CheckpointError as err:
            raise ModelMissing(err, f"the unit-cell model {defaults.UNIT_CELL_MODEL} is not "
                               "installed") from None

    def phrase(self, inputs: PlanInputs) -> str:
        return "unit cells sampled and cut from the model"

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        cells = _sampled(context, n)
        diameter = context.inputs.diameter
        assert diameter is not None  # the UNIT_CELL route always has one
        context.say(f"cutting {len(cells)} sampled unit cells to {diameter:.0f} Å particles")
        yield from cut_cells(cells, diameter, context.device)


class MetallicPackings:
    """Known metallic packings and cluster shapes at the data's nearest-neighbour distance
    (PACKINGS route; beside the generator for a metal on the GENERATOR route)."""

    name = "packings"
    from_model = False
    method = ("Packings: ase fcc/hcp/bcc spheres and ase.cluster truncated octahedra, "
              "cuboctahedra, icosahedra, decahedra at the first-peak distance.")

    def applies(self, inputs: PlanInputs) -> bool:
        return inputs.route.name is RouteKind.PACKINGS or inputs.route.with_packings

    def checkpoint(self, inputs: PlanInputs, loaded: Path) -> Path | None:
        return None

    def phrase(self, inputs: PlanInputs) -> str:
        return "from known metallic packings"

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        inputs = context.inputs
        size, diameter = inputs.size, inputs.diameter
        assert size is not None and diameter is not None and inputs.composition
        yield from packing_candidates(inputs.composition, size.nn_distance, diameter, n,
                                      bulk_sample=size.bulk, seed=context.seed)


class CrystalTypes:
    """The CHILI-3K crystal types of a one-metal oxide with the composition's O:M ratio, cut at
    the estimated size (needs a PDF; not where metallic packings run)."""

    name = "crystal_types"
    from_model = False
    method = CUT_METHOD

    def applies(self, inputs: PlanInputs) -> bool:
        return (inputs.size is not None and inputs.route.name is not RouteKind.PACKINGS
                and not inputs.route.with_packings and bool(matching_types(inputs.composition)))

    def checkpoint(self, inputs: PlanInputs, loaded: Path) -> Path | None:
        return None

    def phrase(self, inputs: PlanInputs) -> str:
        return f"from the CHILI-3K crystal types {', '.join(matching_types(inputs.composition))}"

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        inputs = context.inputs
        assert inputs.composition and inputs.diameter is not None
        yield from template_candidates(inputs.composition, inputs.diameter, n, context.device)


#: Every source, in the order their candidates are produced (model samples first).
SOURCES: tuple[CandidateSource, ...] = (GeneratorSamples(), CutCells(), MetallicPackings(),
                                        CrystalTypes())
