"""The diffusion generator's typed hyper-parameters: validation in one line naming the key, the
dict `hparams()` returns, and the constructor's keywords."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from invdesign.core.errors import ConfigError
from invdesign.core.tasks import TaskSpec
from invdesign.generators.base import build_generator
from invdesign.generators.diffusion import DiffusionGenerator
from invdesign.generators.diffusion.hparams import DiffusionHParams

TINY = {"cond_dim": 16, "species_dim": 8, "time_dim": 16, "scalar_dim": 8, "vector_dim": 4,
        "n_layers": 1, "radial_hidden": 16, "n_radial": 8, "num_train_timesteps": 50,
        "sampling_steps": 4, "k_neighbors": 4, "species_vocab": [8, 30]}


def _error(values: dict) -> str:
    with pytest.raises(ConfigError) as info:
        DiffusionHParams.from_dict(values)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_is_refused_with_the_nearest_name() -> None:
    assert _error({"scalr_dim": 8}) == (
        "unknown diffusion hyper-parameter 'scalr_dim' (did you mean 'scalar_dim'?)")
    assert _error({"colour": "red"}) == "unknown diffusion hyper-parameter 'colour'"


@pytest.mark.parametrize(("values", "message"), [
    ({"scalar_dim": "64"}, "diffusion hyper-parameter scalar_dim must be int, got str '64'"),
    ({"n_layers": 2.0}, "diffusion hyper-parameter n_layers must be int, got float 2.0"),
    ({"frame_vectors": 1}, "diffusion hyper-parameter frame_vectors must be bool, got int 1"),
    ({"r_max": True}, "diffusion hyper-parameter r_max must be float, got bool True"),
    ({"species_vocab": [8, "O"]},
     "diffusion hyper-parameter species_vocab must be list[int], got list [8, 'O']"),
    ({"max_radius": "far"},
     "diffusion hyper-parameter max_radius must be float | None, got str 'far'"),
])
def test_wrong_types_are_refused(values: dict, message: str) -> None:
    assert _error(values) == message


@pytest.mark.parametrize(("values", "message"), [
    ({"cond_dim": -8}, "diffusion hyper-parameter cond_dim must be positive, got -8"),
    ({"scalar_dim": 0}, "diffusion hyper-parameter scalar_dim must be positive, got 0"),
    ({"coord_scale": -1.0}, "diffusion hyper-parameter coord_scale must be positive, got -1.0"),
    ({"prior_top_k": 0}, "diffusion hyper-parameter prior_top_k must be positive, got 0"),
    ({"count_weight": -0.1}, "diffusion hyper-parameter count_weight must be >= 0, got -0.1"),
    ({"centre": "middle"}, "centre must be 'centroid' or 'metal', not 'middle'"),
    ({"prior": "vae"}, "prior must be one of none, mlp, cell, prototype, not 'vae'"),
    ({"sampler": "euler"}, "unknown sampler 'euler'; choose from ddpm, ddim, dpmsolver"),
    ({"species_vocab": [0, 8]}, "species_vocab must hold atomic numbers 1..118, got [0, 8]"),
])
def test_out_of_range_values_are_refused(values: dict, message: str) -> None:
    assert _error(values) == message


def test_the_generator_refuses_bad_keywords_in_one_line() -> None:
    task = TaskSpec.parse("xPDF->pos_abs", 8)
    with pytest.raises(ConfigError, match="^unknown diffusion hyper-parameter 'n_layer' "
                                          r"\(did you mean 'n_layers'\?\)$"):
        build_generator("diffusion", task, **{**TINY, "n_layer": 2})
    with pytest.raises(ConfigError, match="^diffusion hyper-parameter vector_dim must be "
                                          "positive, got -4$"):
        build_generator("diffusion", task, **{**TINY, "vector_dim": -4})


def test_hparams_are_the_record_as_json() -> None:
    """`hparams()` holds every keyword (the schedule resolved for the task, no prototype library
    without the prototype prior), is JSON-able and rebuilds the same record."""
    gen = build_generator("diffusion", TaskSpec.parse("xPDF->unit_cell_pos_frac", 8),
                          **{**TINY, "prototypes": [{"unused": 1}]})
    hp = gen.hparams()
    assert list(hp) == [f.name for f in dataclasses.fields(DiffusionHParams)]
    assert hp["beta_schedule"] == "ve_geometric" and hp["prototypes"] is None
    assert hp["scalar_dim"] == 8 and hp["species_vocab"] == [8, 30]
    assert json.loads(json.dumps(hp)) == hp
    assert DiffusionHParams.from_dict(hp).to_dict() == hp
    particle = build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs", 8), **TINY)
    assert particle.hparams()["beta_schedule"] == "linear"


def test_constructor_signature_lists_the_fields() -> None:
    """Signature-based checks of stored hyper-parameters see the record's fields as keywords."""
    params = inspect.signature(DiffusionGenerator.__init__).parameters
    fields = {f.name: f for f in dataclasses.fields(DiffusionHParams)}
    assert list(params) == ["self", "task", *fields]
    assert params["scalar_dim"].default == 64 and params["species_vocab"].default == [8]
    assert params["max_radius"].annotation == float | None
