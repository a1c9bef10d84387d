"""Edited property checkpoints (`config.json`) are refused in one line before any weight is
allocated (issue 22): a string `y_mean`, wrongly typed or unknown training options, huge widths."""

from __future__ import annotations

import json
import math
import shutil
from typing import Any

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from invdesign.cli.main import main
from invdesign.core.errors import CheckpointError
from invdesign.core.structure import Structure
from invdesign.evaluators.property.checkpoint import (
    load_property_checkpoint,
    save_property_checkpoint,
)
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.train import TrainConfig, fit
from invdesign.testing import assert_refused_in_one_line
from invdesign.testing import set_entry as entry


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    structures = [Structure.from_ase(bulk("Cu", "fcc", a=3.4 + 0.1 * i)) for i in range(4)]
    cfg = TrainConfig(hidden=8, heads=2, blocks=1, epochs=1, batch_size=2)
    folder = tmp_path_factory.mktemp("property") / "ckpt"
    save_property_checkpoint(folder, fit(make_graphs(structures, np.linspace(-0.5, 0.5, 4)), cfg))
    return folder


def edited(src, dst, edit):
    """A copy of checkpoint folder `src` at `dst` whose config.json went through `edit(config)`."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps(edit(config)))
    return dst


def option(key: str, value: Any):
    def edit(config: dict) -> dict:
        config["train_config"][key] = value
        return config

    return edit


CASES = {
    "string y_mean": (entry("y_mean", "-0.8"), "y_mean must be a finite number, not '-0.8'"),
    "nan y_mean": (entry("y_mean", math.nan), "y_mean must be a finite number, not nan"),
    "zero y_std": (entry("y_std", 0.0), "y_std must be positive, not 0.0"),
    "list y_std": (entry("y_std", [1.0]), "y_std must be a finite number, not [1.0]"),
    "descriptor scalers without descriptors": (
        entry("desc_mean", [1.0, 2.0]), "desc_mean must be a list of 0 finite numbers"),
    "metrics a string": (entry("metrics", "good"), "metrics must be a JSON object"),
    "train_config a list": (entry("train_config", [8]), "train_config options must be a JSON"),
    "unknown option": (option("bogus", 1), "option 'bogus' unknown; known: baseline, batch_size"),
    "string width": (option("hidden", "8"), "train_config option hidden must be int, not '8'"),
    "absurd width": (option("hidden", 10**7), "hidden = 10000000 is outside 1..65536"),
    "float width": (option("hidden", 1e7), "hidden must be int, not 10000000.0"),
    "zero blocks": (option("blocks", 0), "blocks = 0 is outside 1..64"),
    "unknown model": (option("model", "gpt"), "unknown property model 'gpt'"),
    "config a list": (lambda config: [config], "unknown checkpoint format 'list'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_edited_property_checkpoint_is_refused_in_one_line(tmp_path, checkpoint, case) -> None:
    edit, message = CASES[case]
    folder = edited(checkpoint, tmp_path / "edited", edit)
    assert_refused_in_one_line(load_property_checkpoint, folder, folder / "config.json", message,
                               CheckpointError)


def test_network_too_large_is_refused_before_allocation(tmp_path, checkpoint) -> None:
    folder = edited(checkpoint, tmp_path / "wide", option("hidden", 65536))
    with pytest.raises(CheckpointError, match=(
        r"the network of this train_config has [\d,]+ parameters, above the limit of "
        r"50,000,000 \(load_property_checkpoint\(max_parameters=\.\.\.\) raises it\)"
    )):
        load_property_checkpoint(folder)


def test_garbage_config_is_refused(tmp_path, checkpoint) -> None:
    folder = tmp_path / "garbage"
    shutil.copytree(checkpoint, folder)
    (folder / "config.json").write_bytes(b"\x00\xff{")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_property_checkpoint(folder)


def test_untouched_checkpoint_still_loads(checkpoint) -> None:
    predictor = load_property_checkpoint(checkpoint)
    assert predictor.cfg.hidden == 8 and predictor.desc_mean is None
    assert isinstance(predictor.y_mean, float)


def test_cli_screen_refuses_a_string_y_mean_with_one_line(tmp_path, checkpoint, capsys) -> None:
    folder = edited(checkpoint, tmp_path / "edited", entry("y_mean", "-0.8"))
    candidates = tmp_path / "candidates"
    candidates.mkdir()
    write(candidates / "cu.cif", bulk("Cu", "fcc", a=3.6))
    out = tmp_path / "p.csv"
    code = main(["screen", str(candidates), "--checkpoint", str(folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "y_mean must be a finite number, not '-0.8'" in err
    assert "Traceback" not in err
    assert not out.exists()
