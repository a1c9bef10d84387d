"""Each prior builds only the heads it uses, and state dicts written before the split into space
and priors (every head on the generator, the MLP as `prior`) load into the new layout."""

from __future__ import annotations

import pytest
import torch

from invdesign.core.tasks import TaskSpec
from invdesign.crystals import prototypes as P
from invdesign.generators.base import build_generator
from invdesign.generators.diffusion.heads import CellHead, CompositionHead, CountHead
from invdesign.generators.diffusion.legacy import is_old_layout, upgrade_state_dict
from invdesign.generators.diffusion.space import ParticleSpace, TorusSpace
from invdesign.testing import CellRows, caesium_chloride_cell, rock_salt_cell

TINY = {"cond_dim": 16, "species_dim": 8, "time_dim": 16, "scalar_dim": 8, "vector_dim": 4,
        "n_layers": 1, "radial_hidden": 16, "n_radial": 8, "num_train_timesteps": 50,
        "sampling_steps": 4, "k_neighbors": 4, "species_vocab": [8, 12]}
MLP = {"prior_hparams": {"hidden": 16, "aux_hidden": 16}, "prior_max_atoms": 8}
PARTICLE, CELL = "xPDF->pos_abs", "xPDF->unit_cell_pos_frac"


def _library() -> list[dict]:
    cells = CellRows([rock_salt_cell(4.0), caesium_chloride_cell(3.0)])
    return [p.to_dict() for p in P.prototype_library(cells)]


def _gen(task: str, prior: str, **options):
    torch.manual_seed(0)
    hp = {**TINY, **MLP, "prior": prior, **options}
    if prior == "prototype":
        hp.update(prototypes=_library(), prior_sigma=0.0, prior_train_sigma=1.0)
    elif prior == "cell":
        hp.update(prior_sigma=0.0, prior_train_sigma=1.0)
    return build_generator("diffusion", TaskSpec.parse(task, 8), **hp)


@pytest.mark.parametrize(("task", "prior", "children"), [
    (PARTICLE, "none", ["count_head", "composition_head"]),
    (CELL, "none", ["count_head", "composition_head", "cell_head"]),
    (CELL, "mlp", ["mlp"]),
    (PARTICLE, "cell", ["mlp", "count_head"]),
    (PARTICLE, "prototype", ["count_head", "prototype_head"]),
    (CELL, "prototype", ["count_head", "prototype_head"]),
])
def test_each_prior_builds_only_the_heads_it_uses(task: str, prior: str, children: list) -> None:
    gen = _gen(task, prior)
    assert gen.prior.name == prior
    assert [name for name, _ in gen.prior.named_children()] == children
    assert [name for name, _ in gen.named_children()] == ["space", "encoder", "prior", "denoiser"]
    assert isinstance(gen.space, TorusSpace if task == CELL else ParticleSpace)
    # the space holds no weights: every parameter is the encoder's, the prior's or the denoiser's
    assert list(gen.space.parameters()) == [] and list(gen.space.state_dict()) == []


def _old_layout(gen, extra_heads: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """`gen`'s weights as the generator before the split stored them."""
    old = {}
    for key, value in gen.state_dict().items():
        if key.startswith("prior.mlp."):
            old["prior." + key.removeprefix("prior.mlp.")] = value
        elif key.startswith("prior."):
            old[key.removeprefix("prior.")] = value
        else:
            old[key] = value
    for name, head in extra_heads.items():
        old.update({f"{name}.{k}": v for k, v in head.state_dict().items()})
    return old


def test_old_prototype_state_dict_loads_without_the_unused_heads() -> None:
    """The old generator also built the composition and cell heads for the prototype prior;
    their weights are dropped, the rest lands where the prior keeps it."""
    gen = _gen(CELL, "prototype")
    old = _old_layout(gen, {"composition_head": CompositionHead(16, [8, 12]),
                            "cell_head": CellHead(16)})
    assert is_old_layout(old) and "prior.count_head.net.0.weight" not in old
    fresh = _gen(CELL, "prototype")
    torch.nn.init.zeros_(fresh.prior.prototype_head.net[0].weight)
    fresh.load_state_dict(old, strict=True)
    for key, value in gen.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert set(upgrade_state_dict(old, fresh.prior)) == set(gen.state_dict())


def test_old_mlp_and_cell_prior_state_dicts_load() -> None:
    """The old layout's MLP keys (`prior.*`) move under `prior.mlp`; the count head the cell
    prior uses is kept, the unused composition head dropped."""
    for task, prior in ((CELL, "mlp"), (PARTICLE, "cell")):
        gen = _gen(task, prior)
        heads = {"composition_head": CompositionHead(16, [8, 12])}
        if prior == "mlp":
            heads["count_head"] = CountHead(16, 8)  # built by the old generator, never used
        old = _old_layout(gen, heads)
        assert any(k.startswith("prior.coords.") for k in old)
        fresh = _gen(task, prior)
        torch.nn.init.zeros_(fresh.prior.mlp.coords[0].weight)
        fresh.load_state_dict(old, strict=True)
        torch.testing.assert_close(fresh.prior.mlp.coords[0].weight,
                                   gen.prior.mlp.coords[0].weight)


def test_new_layout_is_left_alone() -> None:
    gen = _gen(PARTICLE, "cell")
    state = gen.state_dict()
    assert not is_old_layout(state)
    assert upgrade_state_dict(state, gen.prior).keys() == state.keys()
