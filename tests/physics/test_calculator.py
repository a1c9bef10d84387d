"""`simulate_all` (one pair sum per element pair, shared by the six CHILI patterns) against one
`simulate` call per pattern, on small particles that cover its edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.core import elements
from invdesign.core.patterns import PATTERNS
from invdesign.core.structure import Structure
from invdesign.crystals.crystal_types import unit_cell
from invdesign.physics.calculator import _shared_q_grid, simulate, simulate_all
from invdesign.physics.cutter import cut_particles


def _cut(crystal_type: str, metal: str, radius: float) -> Structure:
    cell = unit_cell(crystal_type, metal)
    return cut_particles(cell, [radius], [elements.atomic_number(metal)])[0]


def _pt_sphere() -> Structure:
    from ase.build import bulk

    cell = Structure.from_ase(bulk("Pt", "fcc", a=3.92, cubic=True), kind="unit_cell")
    return cut_particles(cell, [5.0], [78])[0]


def _particle(symbols: list[str], positions: list[list[float]]) -> Structure:
    species = np.array([elements.atomic_number(s) for s in symbols])
    return Structure(species, np.array(positions, dtype=float), None, "particle")


_OCTAHEDRON = [[0.0, 0.0, 0.0]] + [
    [sign * 1.95 * (axis == k) for k in range(3)] for axis in range(3) for sign in (1, -1)
]
CASES = {
    "NiO rock salt r=5": lambda: _cut("RockSalt", "Ni", 5.0),  # two-element oxide
    "TiO2 rutile r=5": lambda: _cut("Rutile", "Ti", 5.0),  # Ti: negative neutron length
    "Pt fcc r=5": _pt_sphere,  # mono-metallic
    "TiO6 (Ti once)": lambda: _particle(["Ti"] + ["O"] * 6, _OCTAHEDRON),
    "Au atom": lambda: _particle(["Au"], [[0, 0, 0]]),
    "Ti-O dimer": lambda: _particle(["Ti", "O"], [[0, 0, 0], [1.9, 0, 0]]),
    "Mn2 dimer": lambda: _particle(["Mn", "Mn"], [[0, 0, 0], [2.5, 0, 0]]),
}


def _assert_same_pattern(name: str, got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape == (2, PATTERNS[name].n_points), name
    # simulate's grid is DebyeCalculator's float32 grid, simulate_all's the exact float64 one
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-7, atol=1e-6, err_msg=name)
    scale = np.abs(ref[1]).max()  # 0 for G(r) of one atom: then exactly 0 is required
    np.testing.assert_allclose(got[1], ref[1], rtol=0, atol=1e-4 * scale, err_msg=name)


def test_the_six_patterns_share_one_q_grid() -> None:
    """Otherwise `simulate_all` falls back to `simulate` and the comparison below proves nothing."""
    assert _shared_q_grid(list(PATTERNS.values())) == (0.0, 30.0, 0.01)


@pytest.mark.parametrize("case", list(CASES))
def test_simulate_all_equals_simulate_per_pattern(case: str) -> None:
    particle = CASES[case]()
    got = simulate_all(particle)
    assert list(got) == list(PATTERNS)
    for name, spec in PATTERNS.items():
        _assert_same_pattern(name, got[name], simulate(particle, spec))


def test_simulate_all_of_a_subset_equals_simulate() -> None:
    particle = CASES["TiO2 rutile r=5"]()
    names = ("nd", "xPDF")
    assert _shared_q_grid([PATTERNS[n] for n in names]) == (1.0, 30.0, 0.05)
    got = simulate_all(particle, names)
    assert list(got) == list(names)
    for name in names:
        _assert_same_pattern(name, got[name], simulate(particle, PATTERNS[name]))
