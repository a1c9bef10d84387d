"""Which shipped checkpoint `invdesign sample` uses, and where checkpoints live: the one place.

Change `DEFAULT_MODEL` (and `UNIT_CELL_MODEL`, used for particles larger than the particle
model's atom limit) here to switch the default of the command and of `invdesign.pipeline.sample`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from invdesign.core.errors import CheckpointError

#: Shipped checkpoint (folder under `checkpoints/`) used without `--model`/`--checkpoint`:
#: the MLP for xPDF -> pos_abs (its MODEL_CARD.md names the training data). Metals larger than
#: its 200-atom limit are answered from metallic packings, compounds from `UNIT_CELL_MODEL`.
DEFAULT_MODEL = "mlp-xpdf-pos_abs"
#: Shipped unit-cell checkpoint, used when the particle exceeds the particle model's atom limit.
UNIT_CELL_MODEL = "mlp-xpdf-unit_cell"
#: Shipped models of runs without a PDF, by the measured kind that ranks the run: a unit-cell
#: model on the lab-range powder XRD view (crystal candidates of `sample --xrd`) and a particle
#: model on the lab-range SAXS view (particle candidates of `sample --saxs`); see
#: `invdesign.core.patterns.VIEWS`. A PDF model is never used for these files.
KIND_MODELS = {"xrd": "mlp-xrd_lab-unit_cell", "saxs": "mlp-saxs_lab-pos_abs"}
#: Generator names accepted by `--model`: each stands for its shipped checkpoint folder.
MODEL_ALIASES = {"mlp": DEFAULT_MODEL, "vae": "vae-xpdf-unit_cell",
                 "diffusion": "diffusion-xpdf-pos_abs"}
DEFAULT_N = 16
#: Candidates refined fully by `sample --refine` (the best by screen Rw, valid first).
REFINE_TOP = 3
DEFAULT_SEED = 0
#: Default fit range of G(r) in Å (upper end clipped to the data's rmax).
DEFAULT_FIT_RANGE = (1.5, 30.0)
#: How many of the best candidates get a fit plot and a `.fgr` file.
N_PLOTTED = 3
#: Shipped property checkpoint (folder under `checkpoints/`) that predicts the formation energy of
#: every valid candidate's material (`invdesign.pipeline.energies`).
PROPERTY_MODEL = "property-default"
#: Shipped particle-excess checkpoint: the excess energy of every discrete particle.
EXCESS_MODEL = "particle-excess"
#: Environment variable that points to another checkpoint folder (e.g. for a non-editable install).
CHECKPOINT_ENV = "INVDESIGN_CHECKPOINTS"
#: Weight file names a checkpoint folder may hold, in order of preference.
WEIGHT_FILES = ("model.safetensors", "weights.safetensors", "model.pt")


def checkpoint_root() -> Path:
    """Folder of the shipped checkpoints: `$INVDESIGN_CHECKPOINTS`, else `checkpoints/`."""
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "checkpoints"


def resolve_checkpoint(model: str | None = None,
                       checkpoint: str | os.PathLike | None = None) -> Path:
    """Checkpoint folder/file for `--checkpoint FILE`, else `--model NAME`, else the default.

    A model name is a folder under `checkpoint_root()`, or a generator name of `MODEL_ALIASES`
    (e.g. 'vae') standing for its shipped folder; a path is used as given.
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise CheckpointError("checkpoint not found", path)
        return path
    name = model or DEFAULT_MODEL
    path = checkpoint_root() / name
    if not path.exists() and name in MODEL_ALIASES:
        path = checkpoint_root() / MODEL_ALIASES[name]
    if not path.exists():
        root = checkpoint_root()
        known = sorted(p.name for p in root.iterdir()
                       if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
        raise CheckpointError(
            f"no shipped model {name!r} in {root}; available: {', '.join(known) or 'none'}"
        )
    return path


def weights_file(path: Path) -> Path:
    """The weights file of a checkpoint folder (or the file itself), for hashing."""
    if path.is_file():
        return path
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    found = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.pt"))
    if not found:
        raise CheckpointError("no weights file (*.safetensors) in checkpoint folder", path)
    return found[0]


def sha256(path: Path) -> str:
    """Hex sha256 of a file (a checkpoint's weights, named in every run's summary)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
