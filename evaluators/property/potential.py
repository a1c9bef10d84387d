"""Universal-potential features for hybridisation: what the pretrained CHGNet says about each
structure as given (no relaxation), from the reference recipe in `reference` (MP elemental
references, the same guards).

- graph level [N_POTENTIAL]: the single-point formation energy per atom (eV/atom) and the pooled
  crystal feature (the 64 numbers CHGNet's energy head reads);
- atom level [n_atoms, N_ATOM_POTENTIAL]: CHGNet's feature of each atom after its third
  message-passing layer (the one its magnetic-moment head reads); with `all_layers`,
  [n_atoms, CONV_LAYERS * N_ATOM_POTENTIAL]: the features after each of its four layers, from the
  embedding-near local ones to the last layer's, which its energy head reads.

CHGNet 0.3's weights were trained on ~1.5 M Materials Project DFT calculations. A property model
trained with `TrainConfig.chgnet_features` adds the atom features to its node embeddings and
concatenates the graph-level block to its pooled representation (beside or instead of the seed-002
descriptors), carrying that representation into a small data set. One CHGNet call per structure
(~25 ms for a 5-atom cell on 2 cores) at training and prediction time. Structures the recipe
refuses (a pair closer than 0.7 Å, too many atoms, an element without a reference energy) get NaN
and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.property.reference import (
    CONV_LAYERS,
    CRYSTAL_FEATURES,
    ChgnetReference,
)

POTENTIAL_NAMES: tuple[str, ...] = (
    "chgnet_formation_energy_per_atom",
    *(f"chgnet_crystal_fea_{i}" for i in range(CRYSTAL_FEATURES)),
)
N_POTENTIAL = len(POTENTIAL_NAMES)
N_ATOM_POTENTIAL = CRYSTAL_FEATURES


def atom_potential_width(all_layers: bool) -> int:
    """Width of the atom-level block: one layer's features, or every layer's side by side."""
    return N_ATOM_POTENTIAL * (CONV_LAYERS if all_layers else 1)


@dataclass
class PotentialFeatures:
    """graph [n, N_POTENTIAL]; atoms: one [n_atoms_i, N_ATOM_POTENTIAL] per structure; status:
    "ok" or why that structure's rows are NaN."""

    graph: np.ndarray
    atoms: list[np.ndarray]
    status: list[str]


def require_all(ids: Sequence[str], status: Sequence[str]) -> None:
    """InvdesignError naming how many structures CHGNet refused and the first one's reason (for
    training sets, where a structure without features cannot be used)."""
    refused = [f"{name}: {s}" for name, s in zip(ids, status, strict=True) if s != "ok"]
    if refused:
        raise InvdesignError(f"CHGNet refused {len(refused)} structures, e.g. {refused[0]}")


def potential_features(
    structures: Sequence[Structure], all_layers: bool = False
) -> PotentialFeatures:
    """CHGNet's graph- and atom-level features of each structure (see the module docstring)."""
    if not structures:
        return PotentialFeatures(np.zeros((0, N_POTENTIAL)), [], [])
    reference = ChgnetReference(relax=False, batch_size=64, features=True, all_layers=all_layers)
    records = reference.evaluate(structures)
    graph = np.array(
        [[r["formation_energy_per_atom"], *r["crystal_fea"]] for r in records], dtype=np.float64
    )
    return PotentialFeatures(
        graph, [r["atom_fea"] for r in records], [r["status"] for r in records]
    )
