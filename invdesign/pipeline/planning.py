"""Where `sample`'s candidates come from: the plan (how many from the generator, how many from
known structures, per the route of `candidates.plan_route`), the generator it samples, and the
candidates themselves, yielded one by one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals.cuts import cut_cells
from invdesign.pipeline import defaults
from invdesign.pipeline.candidates import Route, from_generator, from_packings
from invdesign.pipeline.inputs import ModelInput


def load_generator(path: Path, device: str = "cpu"):
    """The generator of a checkpoint (`load_checkpoint`; the registry imports only its package)."""
    from invdesign.generators.checkpoint import load_checkpoint

    return load_checkpoint(path, device=device)


@dataclass
class Plan:
    """How many candidates come from where.

    Attributes:
        n_model: from the generator (cut from its unit cells on the 'unit_cell' route).
        n_known: from known structures: metallic packings or CHILI-3K crystal types.
        checkpoint: the generator checkpoint actually sampled (None when n_model is 0).
        text: one sentence for the report.
    """

    n_model: int
    n_known: int
    checkpoint: Path | None
    text: str


def make_plan(route: Route, generator, ckpt: Path, comp, size, n: int) -> Plan:
    """Split `n` between the model and known structures (see `candidates` and `templates`)."""
    from invdesign.crystals.templates import matching_types

    if route.name == "packings":
        return Plan(0, n, None, f"{n} from known metallic packings")
    model_ckpt: Path | None = ckpt
    types = matching_types(comp) if size is not None else []
    if route.name == "unit_cell" and generator.task.kind == "particle":
        try:
            model_ckpt = defaults.resolve_checkpoint(defaults.UNIT_CELL_MODEL)
        except InvdesignError:
            if not types:
                raise
            return Plan(0, n, None, f"{n} cut from the CHILI-3K crystal types "
                        f"{', '.join(types)} (the unit-cell model {defaults.UNIT_CELL_MODEL} is "
                        "not installed)")
    known = "known metallic packings" if route.with_packings else (
        f"the CHILI-3K crystal types {', '.join(types)}" if types else "")
    n_known = n // 2 if known else 0
    what = "sampled" if route.name == "generator" else "unit cells sampled and cut"
    text = f"{n - n_known} {what} from the model" + (f", {n_known} from {known}" if known else "")
    return Plan(n - n_known, n_known, model_ckpt, text)


def sampled_generator(route: Route, generator, plan: Plan, device: str):
    """The generator the plan samples (the unit-cell model on the 'unit_cell' route when the
    default is a particle model), or None when every candidate comes from known structures."""
    if not plan.n_model:
        return None
    if route.name == "unit_cell" and generator.task.kind == "particle":
        assert plan.checkpoint is not None
        return load_generator(plan.checkpoint, device=device)
    return generator


def produce(plan: Plan, route: Route, generator, inputs: dict[str, ModelInput], comp, size,
            seed, device, say, sampling=None) -> Iterator[Structure]:
    """The candidates of `plan`, yielded one by one (cut particles as they are cut); `sampling`:
    the diffusion sampler's options (`candidates.from_generator`)."""
    from invdesign.core.conditions import prepare_condition
    from invdesign.crystals.templates import template_candidates

    diameter = route.diameter or (size.diameter if size is not None else None)
    if plan.n_model:
        condition = prepare_condition({inp.name: (inp.grid, inp.values)
                                       for inp in inputs.values()},
                                      generator.task, composition=comp)
        structures = from_generator(generator, condition, plan.n_model, seed, sampling)
        if route.name == "unit_cell":
            assert diameter is not None
            say(f"cutting {len(structures)} sampled unit cells to {diameter:.0f} Å particles")
            yield from cut_cells(structures, diameter, device)
        else:
            yield from structures
    if plan.n_known:
        assert size is not None and diameter is not None
        if route.with_packings or route.name == "packings":
            yield from from_packings(comp, size, diameter, plan.n_known, seed)
        else:
            yield from template_candidates(comp, diameter, plan.n_known, device)
