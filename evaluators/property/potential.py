"""Universal-potential descriptor for hybridisation: the CHGNet single-point formation energy per
atom (eV/atom) of each structure as given (no relaxation), from the reference recipe in
`reference` (MP elemental references, the same guards).

A property model trained with `TrainConfig.chgnet_descriptor` concatenates this value to its pooled
representation, beside or instead of the seed-002 descriptors, so the network learns a correction
to a universal potential's energy rather than the whole energy. The descriptor costs one CHGNet
energy call per structure (~20 ms for a 5-atom cell on 2 cores) at training and prediction time.
Structures the recipe refuses (a pair closer than 0.7 Å, too many atoms, an element without a
reference energy) get NaN and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from invdesign.structure import Structure

POTENTIAL_NAMES: tuple[str, ...] = ("chgnet_formation_energy_per_atom",)
N_POTENTIAL = len(POTENTIAL_NAMES)


def potential_descriptors(structures: Sequence[Structure]) -> tuple[np.ndarray, list[str]]:
    """[n, N_POTENTIAL] CHGNet single-point formation energies (eV/atom; NaN where refused) and
    one status per structure ("ok" or the reason)."""
    from invdesign.evaluators.property.reference import ChgnetReference

    if not structures:
        return np.zeros((0, N_POTENTIAL)), []
    records = ChgnetReference(relax=False, batch_size=64).evaluate(structures)
    values = np.array([[r["formation_energy_per_atom"]] for r in records], dtype=np.float64)
    return values, [r["status"] for r in records]
