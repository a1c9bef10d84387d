"""Candidate sources and the plan: every source that applies contributes to the one pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from invdesign.core.errors import CheckpointError
from invdesign.core.structure import Structure
from invdesign.core.tasks import TaskSpec
from invdesign.pipeline import defaults
from invdesign.pipeline.planning import make_plan
from invdesign.pipeline.sizing import SizeEstimate
from invdesign.pipeline.sources import (
    GeneratorSamples,
    MetallicPackings,
    PoolInputs,
    SourceContext,
    lattice_cell,
)

PARTICLE = TaskSpec.parse("xPDF->pos_abs")
UNIT_CELL = TaskSpec.parse("xPDF->unit_cell_pos_frac")
SMALL = SizeEstimate(diameter=10.0, bulk=False, nn_distance=2.77)
LARGE = SizeEstimate(diameter=40.0, bulk=False, nn_distance=2.77)
HUGE = SizeEstimate(diameter=100.0, bulk=False, nn_distance=2.77)
PT, ZNO, PTNI = {78: 1.0}, {30: 0.5, 8: 0.5}, {78: 0.5, 28: 0.5}
LOADED = Path("loaded-checkpoint")


def _names(plan) -> list[tuple[str, str | None]]:
    return [(p.source.name, p.checkpoint.name if p.checkpoint else None) for p in plan.parts]


@pytest.fixture
def checkpoint_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkpoint folder holding only the unit-cell model's (empty) folder."""
    monkeypatch.setenv(defaults.CHECKPOINT_ENV, str(tmp_path))
    (tmp_path / defaults.UNIT_CELL_MODEL).mkdir()
    return tmp_path


def _context(inputs: PoolInputs) -> SourceContext:
    return SourceContext(inputs, None, {}, seed=0, device="cpu", sampling={}, say=print)


def test_small_metal_pool_holds_model_unit_cells_packings(checkpoint_root: Path) -> None:
    # a 10 Å Pt particle: ~31 atoms, within the particle model's 200
    plan = make_plan(PoolInputs(PT, SMALL, PARTICLE, library=()), LOADED)
    assert _names(plan) == [("generator", "loaded-checkpoint"),
                            ("unit_cell_model", defaults.UNIT_CELL_MODEL), ("packing", None),
                            ("library", None)]
    assert plan.text([16, 16, 27, 3]) == (f"16 samples of loaded-checkpoint, 16 samples of "
                                          f"{defaults.UNIT_CELL_MODEL}, 27 packing structures, "
                                          "3 library structures")
    assert plan.model_name == f"loaded-checkpoint+{defaults.UNIT_CELL_MODEL}"
    assert plan.methods == [MetallicPackings.method, plan.parts[3].source.method]


def test_large_particles_leave_the_particle_model_out(checkpoint_root: Path) -> None:
    # 40 Å of Pt: ~2300 atoms, beyond the particle model's 200; no composition: no known structures
    plan = make_plan(PoolInputs(PT, LARGE, PARTICLE, library=()), LOADED)
    assert [name for name, _ in _names(plan)] == ["unit_cell_model", "packing", "library"]
    plan = make_plan(PoolInputs(None, LARGE, PARTICLE, library=()), LOADED)
    assert _names(plan) == [("unit_cell_model", defaults.UNIT_CELL_MODEL)]
    # without a PDF the particle model decides the size; a loaded unit-cell model samples itself
    plan = make_plan(PoolInputs(ZNO, None, PARTICLE, library=()), LOADED)
    assert [name for name, _ in _names(plan)] == ["generator", "unit_cell_model", "library"]
    plan = make_plan(PoolInputs(ZNO, SMALL, UNIT_CELL, library=()), LOADED)
    assert _names(plan) == [("unit_cell_model", "loaded-checkpoint"), ("library", None)]


def test_missing_unit_cell_model_is_a_note(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(defaults.CHECKPOINT_ENV, str(tmp_path))
    plan = make_plan(PoolInputs(PT, LARGE, PARTICLE, library=()), LOADED)
    assert [name for name, _ in _names(plan)] == ["packing", "library"]
    assert plan.text([27, 0]) == ("27 packing structures, 0 library structures (the unit-cell "
                                  f"model {defaults.UNIT_CELL_MODEL} is not installed)")
    assert plan.model_name == "known structures"
    with pytest.raises(CheckpointError, match=f"no shipped model '{defaults.UNIT_CELL_MODEL}'"):
        make_plan(PoolInputs(None, LARGE, PARTICLE, library=()), LOADED)


def test_packings_give_lattices_as_crystals_and_particles_at_the_allowed_sizes() -> None:
    made = list(MetallicPackings().candidates(_context(PoolInputs(PT, SMALL, PARTICLE)), 16))
    kinds = [(s.kind, s.info["source"], s.info["structure_type"]) for s in made[:3]]
    assert kinds == [("unit_cell", "packing", "fcc"), ("unit_cell", "packing", "hcp"),
                     ("unit_cell", "packing", "bcc")]
    assert [s.min_distance() for s in made[:3]] == pytest.approx([2.77] * 3)
    particles = made[3:]
    # asked for 17 (7 shapes at the estimate, the own lattice and the 4 clusters at 0.85 and 1.15
    # x): of the whole plan's 27 only 16 are distinct (small clusters repeat across sizes), and
    # none is repeated
    assert len(particles) == 16
    assert len({(s.info["structure_type"], s.n_atoms) for s in particles}) == 16
    assert {s.info["structure_type"] for s in particles} == {
        "fcc", "hcp", "bcc", "octahedron", "cuboctahedron", "icosahedron", "decahedron"}
    assert all(s.kind == "particle" and s.info["source"] == "packing" for s in particles)
    # a 100 Å particle (~48,000 atoms): the lattices as crystals only, no discrete particle
    made = list(MetallicPackings().candidates(_context(PoolInputs(PT, HUGE, PARTICLE)), 16))
    assert [s.kind for s in made] == ["unit_cell"] * 3


def test_alloy_lattices_keep_every_element() -> None:
    made = list(MetallicPackings().candidates(_context(PoolInputs(PTNI, HUGE, PARTICLE)), 1))
    assert [sorted(np.bincount(s.species)[[28, 78]].tolist()) for s in made] == \
        [[2, 2], [1, 1], [1, 1]]
    assert lattice_cell("hcp", 78, 2.77).n_atoms == 2


class Pairs:
    """A source for the test: Pt dimers of growing bond length, for any input."""

    name = "pairs"
    from_model = False
    method = "Pt dimers."

    def applies(self, inputs: PoolInputs) -> bool:
        return True

    def checkpoint(self, inputs: PoolInputs, loaded: Path) -> Path | None:
        return None

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        for i in range(2):
            yield Structure([78, 78], [[0.0, 0.0, 0.0], [2.5 + 0.1 * i, 0.0, 0.0]],
                            info={"source": "pairs", "structure_type": "dimer"})


def test_an_added_source_joins_the_pool() -> None:
    inputs = PoolInputs(PT, LARGE, PARTICLE)
    plan = make_plan(inputs, LOADED, sources=(GeneratorSamples(), MetallicPackings(), Pairs()))
    assert [name for name, _ in _names(plan)] == ["packing", "pairs"]
    assert plan.methods == [MetallicPackings.method, "Pt dimers."]
    made = list(plan.parts[1].source.candidates(_context(inputs), 5))
    assert [s.info["structure_type"] for s in made] == ["dimer", "dimer"]
    assert made[-1].positions[1, 0] == pytest.approx(2.6)


def test_library_cells_keep_every_element_of_a_spinel_composition() -> None:
    from invdesign.crystals.library import load_library, typed_cells
    from invdesign.pipeline.sources import LibraryTypes

    spinel = {12: 1 / 7, 13: 2 / 7, 8: 4 / 7}  # MgAl2O4
    inputs = PoolInputs(spinel, SMALL, PARTICLE, library=load_library())
    made = list(LibraryTypes().candidates(_context(inputs), 1))
    assert all(set(s.species.tolist()) == {8, 12, 13} for s in made)
    assert all(s.kind == "unit_cell" and s.info["source"] == "library" for s in made)
    # every placement the library offers holds all three elements: none is left out
    assert len(made) == len(typed_cells(spinel, None, inputs.library))
    assert {"spinel", "inverse_spinel"} <= {s.info["structure_type"] for s in made}
