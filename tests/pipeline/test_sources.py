"""Candidate sources and the plan: which sources run for which inputs, and how many they make."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from invdesign.core.errors import CheckpointError
from invdesign.core.structure import Structure
from invdesign.core.tasks import TaskSpec
from invdesign.pipeline import defaults
from invdesign.pipeline.candidates import DEFAULT_DIAMETER, RouteKind, plan_route
from invdesign.pipeline.planning import make_plan, produce, sampled_generator
from invdesign.pipeline.sizing import SizeEstimate
from invdesign.pipeline.sources import (
    CUT_METHOD,
    GeneratorSamples,
    MetallicPackings,
    PlanInputs,
    SourceContext,
)

PARTICLE = TaskSpec.parse("xPDF->pos_abs")
UNIT_CELL = TaskSpec.parse("xPDF->unit_cell_pos_frac")
SMALL = SizeEstimate(diameter=10.0, bulk=False, nn_distance=2.77)
LARGE = SizeEstimate(diameter=40.0, bulk=False, nn_distance=2.77)
PT, ZNO, CDSE = {78: 1.0}, {30: 0.5, 8: 0.5}, {48: 0.5, 34: 0.5}
LOADED = Path("loaded-checkpoint")
ZNO_TYPES = "RockSalt, ZincBlende, Wurtzite, NickelArsenide, CaesiumChloride"


def _inputs(task: TaskSpec, size: SizeEstimate | None, comp: dict[int, float] | None
            ) -> PlanInputs:
    return PlanInputs(plan_route(task, size, comp), comp, size, task)


def _parts(plan) -> list[tuple[str, int]]:
    return [(p.source.name, p.n) for p in plan.parts]


@pytest.fixture
def checkpoint_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty checkpoint folder in place of the shipped one."""
    monkeypatch.setenv(defaults.CHECKPOINT_ENV, str(tmp_path))
    return tmp_path


def test_route_kinds_are_their_names() -> None:
    assert [str(k) for k in RouteKind] == ["generator", "packings", "unit_cell"]
    route = plan_route(PARTICLE, SMALL, PT)
    assert route.name is RouteKind.GENERATOR and route.name == "generator"
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.name = RouteKind.PACKINGS  # type: ignore[misc]


def test_small_metal_half_from_packings() -> None:
    plan = make_plan(_inputs(PARTICLE, SMALL, PT), LOADED, 5)
    assert _parts(plan) == [("generator", 3), ("packings", 2)]
    assert plan.text == "3 sampled from the model, 2 from known metallic packings"
    assert (plan.checkpoint, plan.model_name) == (LOADED, LOADED.name)
    assert (plan.n_model, plan.n_known) == (3, 2)
    assert plan.methods == [MetallicPackings.method]


def test_one_candidate_goes_to_the_model() -> None:
    plan = make_plan(_inputs(PARTICLE, SMALL, PT), LOADED, 1)
    assert _parts(plan) == [("generator", 1), ("packings", 0)]
    assert plan.methods == []  # the packings made nothing


def test_small_oxide_beside_the_crystal_types() -> None:
    plan = make_plan(_inputs(PARTICLE, SMALL, ZNO), LOADED, 3)
    assert _parts(plan) == [("generator", 2), ("crystal_types", 1)]
    assert plan.text == f"2 sampled from the model, 1 from the CHILI-3K crystal types {ZNO_TYPES}"
    assert plan.methods == [CUT_METHOD]


def test_other_compounds_and_no_pdf_only_the_model() -> None:
    assert _parts(make_plan(_inputs(PARTICLE, SMALL, CDSE), LOADED, 4)) == [("generator", 4)]
    # without a PDF there is no size: no crystal types, cells cut to the default diameter
    inputs = _inputs(UNIT_CELL, None, ZNO)
    plan = make_plan(inputs, LOADED, 4)
    assert _parts(plan) == [("cut_cells", 4)] and plan.checkpoint == LOADED
    assert inputs.diameter == DEFAULT_DIAMETER
    assert plan.methods == [CUT_METHOD]
    assert _parts(make_plan(_inputs(PARTICLE, None, None), LOADED, 2)) == [("generator", 2)]


def test_large_metal_only_packings() -> None:
    plan = make_plan(_inputs(PARTICLE, LARGE, PT), LOADED, 4)
    assert _parts(plan) == [("packings", 4)]
    assert plan.text == "4 from known metallic packings"
    assert (plan.checkpoint, plan.model_name) == (None, "packings")
    assert sampled_generator(plan, object(), LOADED, "cpu") is None


def test_large_oxide_cuts_the_unit_cell_model(checkpoint_root: Path) -> None:
    (checkpoint_root / defaults.UNIT_CELL_MODEL).mkdir()
    plan = make_plan(_inputs(PARTICLE, LARGE, ZNO), LOADED, 4)
    assert _parts(plan) == [("cut_cells", 2), ("crystal_types", 2)]
    assert plan.checkpoint == checkpoint_root / defaults.UNIT_CELL_MODEL
    assert plan.text.startswith("2 unit cells sampled and cut from the model, 2 from the CHILI-3K")
    assert plan.methods == [CUT_METHOD]
    # a loaded unit-cell model is sampled itself
    plan = make_plan(_inputs(UNIT_CELL, LARGE, ZNO), LOADED, 4)
    assert plan.checkpoint == LOADED
    loaded = object()
    assert sampled_generator(plan, loaded, LOADED, "cpu") is loaded


def test_missing_unit_cell_model(checkpoint_root: Path) -> None:
    plan = make_plan(_inputs(PARTICLE, LARGE, ZNO), LOADED, 4)
    assert _parts(plan) == [("crystal_types", 4)]
    assert plan.text == (f"4 from the CHILI-3K crystal types {ZNO_TYPES} (the unit-cell model "
                         f"{defaults.UNIT_CELL_MODEL} is not installed)")
    assert (plan.checkpoint, plan.model_name) == (None, "crystal_types")
    with pytest.raises(CheckpointError, match=f"no shipped model '{defaults.UNIT_CELL_MODEL}'"):
        make_plan(_inputs(PARTICLE, LARGE, CDSE), LOADED, 4)


class Pairs:
    """A source for the test: Pt dimers of growing bond length, for any input."""

    name = "pairs"
    from_model = False
    method = "Pt dimers."

    def applies(self, inputs: PlanInputs) -> bool:
        return True

    def checkpoint(self, inputs: PlanInputs, loaded: Path) -> Path | None:
        return None

    def phrase(self, inputs: PlanInputs) -> str:
        return "Pt dimers"

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        for i in range(n):
            yield Structure([78, 78], [[0.0, 0.0, 0.0], [2.5 + 0.1 * i, 0.0, 0.0]],
                            info={"source": "pairs"})


def test_an_added_source_shares_and_produces() -> None:
    inputs = _inputs(PARTICLE, LARGE, PT)
    plan = make_plan(inputs, LOADED, 5, sources=(GeneratorSamples(), MetallicPackings(), Pairs()))
    assert _parts(plan) == [("packings", 3), ("pairs", 2)]
    assert plan.methods == [MetallicPackings.method, "Pt dimers."]
    context = SourceContext(inputs, None, {}, seed=0, device="cpu", sampling={}, say=print)
    made = list(produce(plan, context))
    assert [s.info["source"] for s in made] == ["packing"] * 3 + ["pairs"] * 2
    assert made[-1].positions[1, 0] == pytest.approx(2.6)
