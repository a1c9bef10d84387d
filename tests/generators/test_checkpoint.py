"""Edited generator checkpoints are refused in one line before any weight is allocated (issue 22):
unknown hyper-parameters, values or metadata of the wrong type, absurd widths."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

import invdesign.generators.mlp  # noqa: F401  (registers 'mlp' without importing every generator)
from invdesign.cli.main import main
from invdesign.core.errors import CheckpointError, InvdesignError
from invdesign.core.schema import check_fields, signature_hints
from invdesign.core.tasks import TaskSpec
from invdesign.generators.base import build_generator
from invdesign.generators.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from invdesign.generators.mlp.model import MLPGenerator
from invdesign.testing import assert_refused_in_one_line
from invdesign.testing import set_entry as entry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PT = EXAMPLES / "Pt_truncoct_2nm.gr"


def edited(src: Path, dst: Path, edit) -> Path:
    """A copy of checkpoint `src` at `dst` whose JSON metadata went through `edit(meta)`."""
    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = json.loads(f.metadata()["invdesign"])
    meta = edit(meta)
    dst.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dst / "model.safetensors"), metadata={"invdesign": json.dumps(meta)})
    return dst


def hparam(**changes: Any):
    def edit(meta: dict) -> dict:
        meta["hparams"].update(changes)
        return meta

    return edit


CASES = {
    "unknown hparam": (hparam(bogus=3), "hyper-parameter 'bogus' unknown; known: aux_hidden"),
    "hparam of wrong type": (hparam(hidden="wide"), "hidden must be int, not 'wide'"),
    "float width": (hparam(hidden=1e7), "hidden must be int, not 10000000.0"),
    "huge width": (hparam(hidden=10_000_000), "hidden = 10000000 is outside 1..65536"),
    "zero layers": (hparam(n_layers=0), "n_layers = 0 is outside 1..64"),
    "bool for int": (hparam(hidden=True), "hidden must be int, not True"),
    "list of strings": (hparam(species_vocab=["O"]), "species_vocab must be Sequence[int]"),
    "hparams a list": (entry("hparams", [1, 2]), "'hparams' must be a JSON object, not list"),
    "version a string": (entry("version", "1"), "'version' must be a JSON integer, not str"),
    "future version": (entry("version", 7), "version 7 is not one this invdesign understands"),
    "generator a number": (entry("generator", 3), "'generator' must be a JSON string, not int"),
    "config a string": (entry("config", "x"), "'config' must be a JSON object, not str"),
    "unknown entry": (entry("pickle", "x"), "unknown checkpoint metadata 'pickle'"),
    "task max_atoms a string": (
        entry("task", {"patterns": ["xPDF"], "target": "pos_abs", "max_atoms": "200"}),
        "checkpoint task entry is invalid",
    ),
    "absurd max_atoms": (
        entry("task", {"patterns": ["xPDF"], "target": "pos_abs", "max_atoms": 10**9}),
        "max_atoms (integer 1..65536)",
    ),
    "metadata a list": (lambda meta: [meta], "wrong format entry"),
    "config split a string": (
        entry("config", {"split": "grouped"}), "metadata config.split has the wrong type (str"),
    "config seed a bool": (
        entry("config", {"split": {"seed": True}}), "config.split.seed has the wrong type (bool"),
    "condition extras not names": (
        entry("config", {"data": {"condition_on": [1]}}), "config.data.condition_on has the wrong"),
    "metrics training a list": (
        entry("metrics", {"training": []}), "metadata metrics.training has the wrong type (list"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_edited_checkpoint_is_refused_in_one_line(tmp_path, tiny_checkpoint, case) -> None:
    edit, message = CASES[case]
    folder = edited(tiny_checkpoint, tmp_path / "edited", edit)
    assert_refused_in_one_line(load_checkpoint, folder, folder / "model.safetensors", message,
                               CheckpointError)


def test_model_too_large_is_refused_before_allocation(tmp_path, tiny_checkpoint) -> None:
    # within every width bound, but 9 billion parameters (36 GB): counted on the meta device,
    # never allocated (allocating them would fail on this machine)
    folder = edited(tiny_checkpoint, tmp_path / "wide", hparam(hidden=65536))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder)
    assert str(info.value) == (
        f"{folder / 'model.safetensors'}: generator 'mlp' with these hparams has 9,022,737,258 "
        "parameters, above the limit of 100,000,000 (load_checkpoint(max_parameters=...) raises it)"
    )


def test_raised_parameter_limit_reaches_the_weights_check(tmp_path, tiny_checkpoint) -> None:
    folder = edited(tiny_checkpoint, tmp_path / "wider", hparam(hidden=32))
    with pytest.raises(CheckpointError, match="weights do not fit generator 'mlp'"):
        load_checkpoint(folder, max_parameters=10**9)


def test_untouched_checkpoint_still_loads(tiny_checkpoint) -> None:
    generator = load_checkpoint(tiny_checkpoint)
    assert generator.hparams()["hidden"] == 16
    assert read_metadata(tiny_checkpoint)["version"] == 1


def test_cli_sample_refuses_an_edited_checkpoint_with_one_line(
    tmp_path, tiny_checkpoint, capsys
) -> None:
    folder = edited(tiny_checkpoint, tmp_path / "edited", hparam(hidden=1e7))
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(PT), "--checkpoint", str(folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "hidden must be int, not 10000000.0" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_schema_knows_the_constructor_keywords_and_types() -> None:
    hints = signature_hints(MLPGenerator.__init__, skip=("self", "task"))
    assert sorted(hints) == ["aux_hidden", "aux_points", "coord_loss", "hidden", "n_layers",
                             "species_rank", "species_vocab"]
    assert check_fields({"hidden": 8, "species_vocab": [8, 30]}, hints, "f") == {
        "hidden": 8, "species_vocab": [8, 30]}


@pytest.mark.parametrize("value, message", [
    (math.nan, "x must be finite, got nan"),
    (math.inf, "x must be finite, got inf"),
    ("1.0", "x must be float, not '1.0'"),
])
def test_schema_refuses_non_finite_and_wrongly_typed_floats(value, message) -> None:
    with pytest.raises(InvdesignError, match=message):
        check_fields({"x": value}, {"x": float}, "f")


@pytest.mark.parametrize("edit, message", [
    (hparam(hidden=1e7), "hidden must be int, not 10000000.0"),
    (entry("config", {"split": "grouped"}), "config.split has the wrong type"),
])
def test_cli_evaluate_refuses_an_edited_checkpoint_with_one_line(
    tmp_path, tiny_checkpoint, capsys, edit, message
) -> None:
    folder = edited(tiny_checkpoint, tmp_path / "edited", edit)
    data = tmp_path / "data"
    data.mkdir()
    code = main(["evaluate", "--checkpoint", str(folder), "--data", str(data)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_diffusion_checkpoint(tmp_path_factory) -> Path:
    """An untrained small diffusion checkpoint (its e3nn layers cannot be built on 'meta')."""
    import invdesign.generators.diffusion  # noqa: F401, PLC0415 - registers it; lazy: e3nn is heavy

    generator = build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs"), cond_dim=16,
                                species_dim=8, time_dim=16, scalar_dim=8, vector_dim=4,
                                n_layers=1, radial_hidden=16, n_radial=8, num_train_timesteps=50,
                                k_neighbors=4, species_vocab=[8, 30])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_diffusion", generator)


def test_generator_not_buildable_on_meta_is_bounded_by_its_widths(
    tmp_path, tiny_diffusion_checkpoint
) -> None:
    assert load_checkpoint(tiny_diffusion_checkpoint).hparams()["scalar_dim"] == 8
    folder = edited(tiny_diffusion_checkpoint, tmp_path / "wide",
                    hparam(scalar_dim=65536, cond_dim=4096))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder)
    assert str(info.value) == (
        f"{folder / 'model.safetensors'}: generator 'diffusion': widths scalar_dim=65536 and "
        "cond_dim=4096 make a layer of 268,435,456 parameters, above the limit of 100,000,000 "
        "(load_checkpoint(max_parameters=...) raises it)"
    )


def test_diffusion_schema_refuses_its_own_bad_values(tmp_path, tiny_diffusion_checkpoint) -> None:
    folder = edited(tiny_diffusion_checkpoint, tmp_path / "bad", hparam(sampler="magic"))
    with pytest.raises(CheckpointError, match="cannot rebuild generator: .*'magic'"):
        load_checkpoint(folder)
