"""Planning of the synthetic set: space-group weights, charge balance, cell sizes, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Element
from pyxtal.symmetry import Group

from invdesign.core.errors import InvdesignError
from invdesign.data.build.synthetic_plan import (
    ANIONS,
    derive_weights,
    plan_compositions,
    spacegroup_weights,
    task_seed,
    weights_yaml,
)
from invdesign.data.build.synthetic_relax import fragments

PLAN = plan_compositions(300, seed=7)


def test_weights_resource_is_the_aflow_prototype_count() -> None:
    from importlib import resources

    text = resources.files("invdesign.crystals").joinpath(
        "resources/spacegroup_weights.yaml").read_text()
    assert text == weights_yaml()
    counts = derive_weights()
    assert sum(counts.values()) == 288 and counts[194] == max(counts.values())
    p = spacegroup_weights()
    assert p.shape == (230,) and np.isclose(p.sum(), 1.0) and p.min() > 0
    assert p[194 - 1] > p[62 - 1] > p[93 - 1]  # P6_3/mmc 22 prototypes, Pnma 14, P4_222 none


def test_ionic_compositions_are_charge_balanced_with_common_oxidation_states() -> None:
    anions = {s: q for pairs in ANIONS.values() for s, q in pairs}
    ionic = [p for p in PLAN if p.family != "intermetallic"]
    assert len(ionic) > 150
    for plan in ionic:
        assert sum(n * q for n, q in zip(plan.counts, plan.oxidation, strict=True)) == 0
        *cations, anion = plan.species
        assert anion in {s for s, _ in ANIONS[plan.family]}
        assert plan.oxidation[-1] == anions[anion]
        for cation, q in zip(cations, plan.oxidation, strict=False):
            assert q in Element(cation).common_oxidation_states and q > 0


def test_cells_hold_at_most_20_atoms_that_fit_the_space_group() -> None:
    for plan in PLAN[:60]:
        assert 1 <= sum(plan.counts) <= 20
        assert Group(plan.spacegroup).check_compatible(list(plan.counts))[0]
    assert max(sum(p.counts) for p in plan_compositions(50, seed=1, max_atoms=8)) <= 8


def test_plan_is_deterministic_distinct_and_a_prefix_of_a_longer_plan() -> None:
    assert plan_compositions(300, seed=7) == PLAN
    assert plan_compositions(40, seed=7) == PLAN[:40]
    assert plan_compositions(40, seed=8) != PLAN[:40]
    keys = [(p.spacegroup, p.species, p.counts) for p in PLAN]
    assert len(set(keys)) == len(keys)
    assert len({p.spacegroup for p in PLAN}) > 60  # 300 draws over the weighted 230 groups
    assert {p.family for p in PLAN} == {"oxide", "chalcogenide", "halide", "nitride",
                                        "intermetallic"}
    assert [p.seed for p in PLAN[:3]] == [task_seed(7, i) for i in range(3)]
    assert len({p.seed for p in PLAN}) == len(PLAN)


@pytest.mark.parametrize("kwargs", [{"n": -1, "seed": 0}, {"n": 3, "seed": 0, "max_atoms": 0}])
def test_bad_plan_requests_are_refused(kwargs) -> None:
    with pytest.raises(InvdesignError):
        plan_compositions(**kwargs)


def _cell(symbols, frac, lattice):
    from pymatgen.core import Lattice
    from pymatgen.core import Structure as PmgStructure

    from invdesign.core.structure import Structure

    return Structure.from_pymatgen(PmgStructure(Lattice(lattice), symbols, frac))


def test_fragments_counts_molecules_but_not_chains_or_layers() -> None:
    rocksalt = _cell(["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]],
                     [[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]])
    assert fragments(rocksalt) == 0
    # CdI2-like layers 10 Å apart: each layer is periodic in-plane, no finite fragment
    layers = _cell(["Cd", "I", "I"], [[0, 0, 0], [1 / 3, 2 / 3, 0.16], [2 / 3, 1 / 3, -0.16]],
                   [[4.24, 0, 0], [-2.12, 3.672, 0], [0, 0, 10.0]])
    assert fragments(layers) == 0
    # two I2 molecules far apart in a 12 Å box, plus one lone Na atom
    molecules = _cell(["I", "I", "I", "I", "Na"],
                      [[0.1, 0.1, 0.1], [0.1, 0.1, 0.3], [0.6, 0.6, 0.6], [0.6, 0.6, 0.8],
                       [0.1, 0.6, 0.35]],
                      np.eye(3) * 12.0 * np.array([1, 1, 1.1]))
    assert fragments(molecules) == 3
