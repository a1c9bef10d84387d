"""Candidate sources: where the structures of `sample`'s one candidate pool come from.

Every run asks every source in `SOURCES` whether it `applies` to the `PoolInputs` (composition,
size read off the PDF, the loaded model's task, the structure-type library); each source that
applies contributes:
- `GeneratorSamples` ('generator'): `n` particles sampled from the loaded particle model, when
  the expected atom count fits its atom limit (or no PDF sizes the particle);
- `UnitCellSamples` ('unit_cell_model'): `n` unit cells sampled from the unit-cell model (the
  loaded one, else `defaults.UNIT_CELL_MODEL` when installed): crystal candidates;
- `MetallicPackings` ('packing'): for all-metal compositions with a PDF, the fcc/hcp/bcc lattices
  as crystal candidates, and at the sizes the data allow (at most `PARTICLE_ATOM_LIMIT` atoms)
  spheres of those lattices and ase.cluster icosahedra, decahedra, octahedra, cuboctahedra;
- `LibraryTypes` ('library' / 'user_cif'): every structure type of the library
  (`invdesign.crystals.library`, plus the user's CIFs of `--library DIR`) on which the
  composition can be placed, as crystal candidates.

Every yielded structure carries `info['source']` and `info['structure_type']` (packing or cluster
shape name, library type name, 'generator', 'unit_cell_model'). A particle (`kind` 'particle') is
scored by the Debye sum, a crystal (`kind` 'unit_cell') as an attenuated crystal
(`invdesign.pipeline.forward.ForwardAdapter` dispatches on the kind).

Adding a candidate source: a class with `CandidateSource`'s members (set `info['source']` and
`info['structure_type']` on what it yields), an instance in `SOURCES`, and a test in
`tests/pipeline/test_sources.py` of which inputs it applies to and what it makes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from invdesign.core import elements
from invdesign.core.conditions import prepare_condition
from invdesign.core.errors import CheckpointError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskSpec
from invdesign.crystals.library import typed_cells
from invdesign.crystals.packings import (
    CLUSTERS,
    LATTICES,
    SIZE_STEPS,
    assign_species,
    packing_candidates,
    packing_cell,
)
from invdesign.pipeline import defaults
from invdesign.pipeline.inputs import ModelInput
from invdesign.pipeline.sizing import SizeEstimate

#: Largest discrete particle (atoms) the pool simulates with the Debye sum; larger particles are
#: crystal candidates (attenuated crystals) only.
PARTICLE_ATOM_LIMIT = 3000
#: Diameters of the discrete packings: the first of `packings.SIZE_STEPS` (x 1, 0.85, 1.15).
PACKING_SIZES = 3


@dataclass(frozen=True)
class PoolInputs:
    """What decides which sources apply and what they make.

    Attributes:
        composition: atomic number -> fraction; None when the model predicts the species.
        size: the size read off the PDF; None without a PDF.
        task: the task of the loaded generator.
        library: the structure types (`invdesign.crystals.library.load_library`); None: none.
    """

    composition: dict[int, float] | None
    size: SizeEstimate | None
    task: TaskSpec
    library: Sequence[Any] | None = None

    @property
    def metallic(self) -> bool:
        """True for a known composition of metals only."""
        return is_metallic(self.composition)

    @property
    def n_atoms(self) -> int | None:
        """Atoms expected in the particle (None without a PDF; bulk-like: None too)."""
        if self.size is None or self.size.bulk:
            return None
        return self.size.n_atoms(self.metallic)


@dataclass(frozen=True)
class SourceContext:
    """What producing candidates needs beyond the pool inputs.

    Attributes:
        inputs: the pool inputs.
        generator: the generator a model source samples (None for known structures).
        model_inputs: the patterns on that generator's grid, by kind (its condition).
        seed: sampling seed; device: torch device.
        sampling: options of the generator's `sample` (the diffusion sampler, steps).
        say: progress lines.
    """

    inputs: PoolInputs
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

    #: short name of the source (the `source` column of what it makes, unless it says otherwise).
    name: str
    #: True if it samples a generator checkpoint (`n` samples of it).
    from_model: bool
    #: one sentence on the method for the report's 'how' ('' for none).
    method: str

    def applies(self, inputs: PoolInputs) -> bool:
        """Whether it contributes for these inputs."""
        ...

    def checkpoint(self, inputs: PoolInputs, loaded: Path) -> Path | None:
        """The checkpoint it samples (`loaded`: the one the run loaded); None for known
        structures. Raises `ModelMissing` when that checkpoint is not installed."""
        ...

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        """Its candidates (`n` samples for a model source), yielded as they are made."""
        ...


def is_metallic(composition: dict[int, float] | None) -> bool:
    """True for a known composition of metals only."""
    return bool(composition) and all(elements.is_metal(z) for z in composition)


def _tag(structure: Structure, source: str, structure_type: str) -> Structure:
    structure.info.setdefault("source", source)
    structure.info.setdefault("structure_type", structure_type)
    return structure


def from_generator(generator, condition: Condition, n: int, seed: int,
                   sampling: Mapping[str, Any] | None = None) -> list[Structure]:
    """`n` structures sampled from `generator` for a one-item `condition`, reproducible by seed.
    `sampling`: options of the generator's `sample` (its `sampling_options`: the diffusion model's
    sampler, steps and guidance); None values are left out."""
    options = {k: v for k, v in (sampling or {}).items() if v is not None}
    unknown = [k for k in options if k not in generator.sampling_options]
    if unknown:
        given = ", ".join(f"--{k.replace('_', '-')}" for k in unknown)
        raise InvdesignError(f"{given}: only diffusion models take sampler options; this run "
                             f"samples the {generator.name} model {generator.task.name}")
    rng = torch.Generator(device="cpu").manual_seed(int(seed))
    structures = generator.sample(condition, n, generator=rng, **options)[0]
    for s in structures:
        _tag(s, "generator", "generator")
    return structures


def from_inputs(generator, inputs: Mapping[str, ModelInput],
                composition: Mapping[int, float] | None, n: int, seed: int,
                sampling: Mapping[str, Any] | None = None) -> list[Structure]:
    """`n` structures of `generator` conditioned on measured patterns already on its grid
    (`inputs.model_inputs`) and the composition (`from_generator`)."""
    condition = prepare_condition({inp.name: (inp.grid, inp.values) for inp in inputs.values()},
                                  generator.task, composition=composition)
    return from_generator(generator, condition, n, seed, sampling)


def _sampled(context: SourceContext, n: int) -> list[Structure]:
    """`n` structures of the context's generator, conditioned on its model inputs."""
    return from_inputs(context.generator, context.model_inputs, context.inputs.composition, n,
                       context.seed, context.sampling)


class GeneratorSamples:
    """The loaded particle model, sampled when the expected particle fits its atom limit."""

    name = "generator"
    from_model = True
    method = ""

    def applies(self, inputs: PoolInputs) -> bool:
        if inputs.task.kind != "particle":
            return False
        if inputs.size is None:
            return True
        return inputs.n_atoms is not None and inputs.n_atoms <= inputs.task.max_atoms

    def checkpoint(self, inputs: PoolInputs, loaded: Path) -> Path | None:
        return loaded

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        yield from _sampled(context, n)


class UnitCellSamples:
    """Unit cells of the unit-cell model (the loaded one if it makes unit cells, else
    `defaults.UNIT_CELL_MODEL`): crystal candidates."""

    name = "unit_cell_model"
    from_model = True
    method = ""

    def applies(self, inputs: PoolInputs) -> bool:
        return True

    def checkpoint(self, inputs: PoolInputs, loaded: Path) -> Path | None:
        if inputs.task.kind != "particle":
            return loaded
        try:
            return defaults.resolve_checkpoint(defaults.UNIT_CELL_MODEL)
        except CheckpointError as err:
            raise ModelMissing(err, f"the unit-cell model {defaults.UNIT_CELL_MODEL} is not "
                               "installed") from None

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        for cell in _sampled(context, n):
            cell.info["source"] = cell.info["structure_type"] = self.name
            yield cell


def lattice_cell(packing: str, z: int, nn: float) -> Structure:
    """The conventional cell of an fcc/bcc/hcp lattice of element `z` with nearest-neighbour
    distance `nn` Å (kind 'unit_cell')."""
    return Structure.from_ase(packing_cell(packing, z, nn), kind="unit_cell")


class MetallicPackings:
    """Metallic packings for an all-metal composition with a PDF: the fcc/hcp/bcc lattices as
    crystal candidates, and discrete particles (lattice spheres and cluster shapes at
    `PACKING_SIZES` diameters around the estimate) when the largest stays within
    `PARTICLE_ATOM_LIMIT` atoms."""

    name = "packing"
    from_model = False
    method = ("Packings: fcc/hcp/bcc lattices (attenuated crystals) and, at the sizes the data "
              "allow, ase fcc/hcp/bcc spheres and ase.cluster truncated octahedra, "
              "cuboctahedra, icosahedra, decahedra at the first-peak distance.")

    def applies(self, inputs: PoolInputs) -> bool:
        return inputs.metallic and inputs.size is not None

    def checkpoint(self, inputs: PoolInputs, loaded: Path) -> Path | None:
        return None

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        inputs = context.inputs
        size, comp = inputs.size, inputs.composition
        assert size is not None and comp
        host = max(comp, key=comp.get)
        rng = np.random.default_rng(context.seed)
        for packing in LATTICES:
            cell = lattice_cell(packing, host, size.nn_distance)
            cell = Structure(assign_species(cell.to_ase(), comp, rng), cell.positions,
                             cell.cell, "unit_cell")
            yield _tag(cell, self.name, packing)
        largest = max(SIZE_STEPS[:PACKING_SIZES])
        if inputs.n_atoms is None or inputs.n_atoms * largest**3 > PARTICLE_ATOM_LIMIT:
            return
        # the plan's first SIZE_STEPS: every shape at the estimate, the likely ones around it
        plan = len(LATTICES) + len(CLUSTERS) + (PACKING_SIZES - 1) * (1 + len(CLUSTERS))
        for particle in packing_candidates(comp, size.nn_distance, size.diameter, plan,
                                           seed=context.seed):
            if particle.n_atoms <= PARTICLE_ATOM_LIMIT:
                yield _tag(particle, self.name, str(particle.info["shape"]))


class LibraryTypes:
    """The structure-type library (and the user's CIFs): every type on which the composition can
    be placed, as a crystal candidate (a metal's lattice scaled to the first-peak distance, a
    compound's to the library's radius sums)."""

    name = "library"
    from_model = False
    method = ("Library: structure types with the composition's species placed by role and "
              "stoichiometry (attenuated crystals).")

    def applies(self, inputs: PoolInputs) -> bool:
        return bool(inputs.composition) and inputs.library is not None

    def checkpoint(self, inputs: PoolInputs, loaded: Path) -> Path | None:
        return None

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        inputs = context.inputs
        assert inputs.composition
        # The first G(r) peak is the nearest-neighbour distance of a metal; in a compound it may be
        # the stronger cation-cation peak, so compounds keep the library's radius-sum lattices.
        metal_nn = inputs.size is not None and inputs.metallic
        nn = inputs.size.nn_distance if metal_nn else None
        wanted = set(inputs.composition)
        for typed in typed_cells(inputs.composition, nn, inputs.library):
            if set(typed.cell.species.tolist()) == wanted:  # never an element dropped
                yield _tag(typed.cell, typed.source, typed.structure_type)


#: Every source, in the order their candidates are produced (model samples first).
SOURCES: tuple[CandidateSource, ...] = (GeneratorSamples(), UnitCellSamples(),
                                        MetallicPackings(), LibraryTypes())
