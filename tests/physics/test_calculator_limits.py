"""Simulation guards (issue 22): structures too large or too wide for DebyeCalculator are refused
in one line naming the limit and how to raise it, before any simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PATTERNS
from invdesign.core.structure import Structure
from invdesign.physics.calculator import (
    MAX_SIM_ATOMS,
    Instrument,
    MeasuredGridCalculator,
    simulate,
    simulate_all,
)


def grid_particle(n: int, spacing: float = 2.8) -> Structure:
    """n Pt atoms on a simple cubic grid (`spacing` Å)."""
    k = int(np.ceil(n ** (1 / 3)))
    idx = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
    return Structure(np.full(n, 78), idx * spacing, None, "particle")


def too_many(n: int, limit: int) -> str:
    return (f"structure of {n} atoms is above the simulation limit of {limit} atoms (the pair sum "
            "grows with the square of the count); pass max_atoms=... to "
            "simulate/simulate_all/MeasuredGridCalculator to raise it")


def test_default_atom_limit_refuses_before_simulating() -> None:
    big = grid_particle(MAX_SIM_ATOMS + 1)
    with pytest.raises(InvdesignError) as info:
        simulate(big, PATTERNS["xPDF"])
    assert str(info.value) == too_many(MAX_SIM_ATOMS + 1, 50_000)
    with pytest.raises(InvdesignError, match="above the simulation limit of 50000 atoms"):
        simulate_all(big)


def test_max_atoms_keyword_sets_the_limit() -> None:
    particle = grid_particle(8)
    with pytest.raises(InvdesignError) as info:
        simulate(particle, PATTERNS["xPDF"], max_atoms=7)
    assert str(info.value) == too_many(8, 7)
    assert simulate(particle, PATTERNS["xPDF"], max_atoms=8).shape == (2, 6000)


def test_measured_grid_calculator_applies_its_limit() -> None:
    calc = MeasuredGridCalculator(Instrument(), np.linspace(1.0, 20.0, 50), max_atoms=7)
    with pytest.raises(InvdesignError) as info:
        calc([grid_particle(8)])
    assert str(info.value) == too_many(8, 7)
    symbols, xyz = ["Pt"] * 7, torch.as_tensor(grid_particle(7).positions)
    assert calc([(symbols, xyz)]).shape == (1, 50)


def test_too_wide_structure_is_refused() -> None:
    wide = Structure(np.array([78, 78]), np.array([[0.0, 0, 0], [3000.0, 0, 0]]), None,
                     "particle")
    with pytest.raises(InvdesignError) as info:
        simulate(wide, PATTERNS["xPDF"])
    assert str(info.value) == ("structure is 3000 Å wide, above the simulation limit of 2000 Å "
                               "(DebyeCalculator's distance grid grows with the width)")
    calc = MeasuredGridCalculator(Instrument(), np.linspace(1.0, 20.0, 50))
    xyz = torch.tensor([[0.0, 0, 0], [float("inf"), 0, 0]])
    with pytest.raises(InvdesignError, match="structure is inf Å wide, above the simulation limit"):
        calc([(["Pt", "Pt"], xyz)])
