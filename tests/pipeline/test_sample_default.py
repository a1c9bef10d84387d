"""The default model of `invdesign sample` is a shipped checkpoint that loads offline."""

from __future__ import annotations

import pytest

from invdesign.pipeline import defaults
from invdesign.testing import skip_unless_ci


def _shipped(name: str):
    path = defaults.checkpoint_root() / name
    if not (path / "model.safetensors").is_file():
        skip_unless_ci(f"shipped checkpoint {path} is absent")
    return path


def test_default_model_is_a_shipped_xpdf_checkpoint() -> None:
    from invdesign.pipeline.planning import load_generator

    generator = load_generator(_shipped(defaults.DEFAULT_MODEL))
    assert "xPDF" in generator.task.patterns
    assert (defaults.checkpoint_root() / defaults.DEFAULT_MODEL / "MODEL_CARD.md").is_file()


def test_unit_cell_model_is_a_unit_cell_checkpoint() -> None:
    from invdesign.pipeline.planning import load_generator

    generator = load_generator(_shipped(defaults.UNIT_CELL_MODEL))
    assert generator.task.kind == "unit_cell"


def test_resolve_names_the_available_models_when_unknown(tmp_path, monkeypatch) -> None:
    from invdesign.core.errors import CheckpointError

    (tmp_path / "mlp-a").mkdir()
    monkeypatch.setenv(defaults.CHECKPOINT_ENV, str(tmp_path))
    assert defaults.resolve_checkpoint("mlp-a") == tmp_path / "mlp-a"
    with pytest.raises(CheckpointError, match="available: mlp-a"):
        defaults.resolve_checkpoint("nope")


def test_generator_name_stands_for_its_shipped_checkpoint(tmp_path, monkeypatch) -> None:
    from invdesign.core.errors import CheckpointError

    monkeypatch.setenv(defaults.CHECKPOINT_ENV, str(tmp_path))
    with pytest.raises(CheckpointError, match="no shipped model 'vae'"):
        defaults.resolve_checkpoint("vae")
    (tmp_path / defaults.MODEL_ALIASES["vae"]).mkdir()
    assert defaults.resolve_checkpoint("vae") == tmp_path / "vae-xpdf-unit_cell"
    (tmp_path / "vae").mkdir()  # a folder of that very name wins
    assert defaults.resolve_checkpoint("vae") == tmp_path / "vae"


@pytest.mark.parametrize(("alias", "task"), [("vae", "xPDF->unit_cell_pos_frac"),
                                             ("diffusion", "xPDF->pos_abs")])
def test_shipped_generator_alias_loads_its_checkpoint(alias: str, task: str) -> None:
    from invdesign.pipeline.planning import load_generator

    generator = load_generator(_shipped(defaults.MODEL_ALIASES[alias]))
    assert generator.name == alias and generator.task.name == task
    assert (defaults.checkpoint_root() / defaults.MODEL_ALIASES[alias] / "MODEL_CARD.md").is_file()


def test_loading_an_mlp_checkpoint_imports_no_other_generator(tiny_checkpoint) -> None:
    """The registry imports the checkpoint's own generator package only (diffusion pulls in e3nn
    and diffusers)."""
    import subprocess
    import sys

    code = ("import sys\nfrom invdesign.generators.checkpoint import load_checkpoint\n"
            f"load_checkpoint({str(tiny_checkpoint)!r})\n"
            "print(sorted(m for m in ('invdesign.generators.diffusion', "
            "'invdesign.generators.vae', 'e3nn') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def _checkpoints(generators: bool) -> list:
    """Shipped checkpoint folders: generators (a `config.yaml` training config) or the others
    (property and particle-excess models, a `config.json`)."""
    root = defaults.checkpoint_root()
    return sorted(p.name for p in root.iterdir() if (p / "model.safetensors").is_file()
                  and (p / "config.yaml").is_file() == generators) if root.is_dir() else []


def _generator_checkpoints() -> list:
    return _checkpoints(generators=True)


@pytest.mark.parametrize("name", _checkpoints(generators=False))
def test_every_shipped_evaluator_checkpoint_is_small_and_has_a_card(name: str) -> None:
    path = _shipped(name)
    assert (path / "model.safetensors").stat().st_size < 10e6  # "a few MB"
    card = (path / "MODEL_CARD.md").read_text()
    assert "python tools/make_" in card  # the command that made it
    assert "seed" in card.lower() and "MAE" in card


@pytest.mark.parametrize("name", _generator_checkpoints())
def test_every_shipped_generator_is_small_loads_and_has_a_card(name: str) -> None:
    from invdesign.generators.checkpoint import read_metadata
    from invdesign.pipeline.planning import load_generator

    path = _shipped(name)
    assert (path / "model.safetensors").stat().st_size < 10e6  # "a few MB"
    generator = load_generator(path)
    card = (path / "MODEL_CARD.md").read_text()
    assert "invdesign train --config configs/" in card  # the command that made it
    assert f"generator for {generator.task.name}" in card
    assert "test" in read_metadata(path / "model.safetensors")["metrics"]
