"""`formation_energy` evaluator: a property checkpoint's prediction per structure (eV/atom)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import invdesign
from invdesign.core.errors import CheckpointError
from invdesign.core.structure import Structure
from invdesign.evaluators.base import Evaluator, register_evaluator
from invdesign.evaluators.property.checkpoint import load_property_checkpoint

DEFAULT_CHECKPOINT = (
    Path(invdesign.__file__).resolve().parents[1] / "checkpoints" / "property-default"
)


def default_checkpoint() -> Path:
    """checkpoints/property-default of the source checkout; CheckpointError when it is absent."""
    if not (DEFAULT_CHECKPOINT / "model.safetensors").is_file():
        raise CheckpointError(
            "no default property checkpoint; pass --checkpoint FILE", DEFAULT_CHECKPOINT
        )
    return DEFAULT_CHECKPOINT


@register_evaluator("formation_energy")
class FormationEnergyEvaluator(Evaluator):
    """Predicted formation energy per atom (eV/atom) from a property checkpoint
    (default: checkpoints/property-default).

    Records: {"formation_energy_per_atom": float} (NaN for a structure without atoms).
    """

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu") -> None:

        self.checkpoint = Path(checkpoint) if checkpoint else default_checkpoint()
        self.predictor = load_property_checkpoint(self.checkpoint, device=device)

    def evaluate(self, structures: Sequence[Structure]) -> list[dict[str, Any]]:
        values = np.full(len(structures), np.nan)
        keep = [i for i, s in enumerate(structures) if s.n_atoms > 0]
        if keep:
            values[keep] = self.predictor.predict([structures[i] for i in keep])
        return [{"formation_energy_per_atom": float(v)} for v in values]
