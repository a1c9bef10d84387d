"""Particle cutting edge cases (DebyeCalculator's `generate_nanoparticles` underneath)."""

from __future__ import annotations

from invdesign.data.build.clusters import bulk_cell
from invdesign.physics.cutter import cut_particles


def test_sphere_holding_only_the_central_metal_is_dropped_not_a_crash() -> None:
    # fcc Pb: nearest neighbours at 3.50 Å, so a 3 Å sphere holds the central atom alone; without
    # ligands DebyeCalculator 1.1 raises on that radius. It is dropped, the others are kept.
    cell = bulk_cell("fcc", "Pb")
    particles = cut_particles(cell, (3.0, 4.0, 5.0), metals=[82], ligands=[])
    assert [p.info["radius"] for p in particles] == [4.0, 5.0]
    assert [len(p.species) for p in particles] == [13, 19]
