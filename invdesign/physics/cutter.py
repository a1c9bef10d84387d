"""Spherical particles cut from a unit cell by DebyeCalculator's `generate_nanoparticles`.

`generate_nanoparticles` reads a CIF, so the unit cell goes through a temporary CIF file. It builds
a supercell of at least the largest diameter + 5 Å per axis, moves the most central metal to the
origin, keeps the metals within the radius and every non-metal bonded (1.25 x radii rule) to a kept
metal. With `device='cpu'` it runs on the CPU without warnings (it only warns for 'cpu' when CUDA is
present, and for 'cuda' when CUDA is absent); positions pass through float32, so particle
coordinates carry ~1e-6 relative rounding.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence

import numpy as np

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure


def _to_cif(unit_cell: Structure, folder: str) -> str:
    from ase.io import write  # noqa: PLC0415 - lazy: CIF writing loads ase.io only when cutting

    path = os.path.join(folder, "cell.cif")
    write(path, unit_cell.to_ase(), format="cif")
    return path


def _generate(
    cif: str, radii: list[float], metals: list[int], ligands: list[int], device: str
) -> list:
    # lazy: DebyeCalculator's import is slow and only cuts need it
    from debyecalculator.utility.generate import generate_nanoparticles  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_nanoparticles(
            cif,
            radii,
            metals=metals,
            ligands=ligands,
            sort_atoms=True,
            disable_pbar=True,
            device=device,
        )


def _generate_or_none(
    cif: str, radii: list[float], metals: list[int], ligands: list[int], device: str
) -> list | None:
    """`_generate`, or None where DebyeCalculator 1.1 fails on a sphere holding only the central
    atom without ligands (it takes the max over an empty selection)."""
    try:
        return _generate(cif, radii, metals, ligands, device)
    except RuntimeError as err:
        if "numel() == 0" not in str(err):
            raise
        return None


def cut_particles(
    unit_cell: Structure,
    radii: Sequence[float],
    metals: Sequence[int],
    ligands: Sequence[int] | None = None,
    device: str = "cpu",
) -> list[Structure]:
    """Cut one spherical particle per radius from `unit_cell`.

    Args:
        unit_cell: periodic cell; positions [n, 3] Å.
        radii: particle radii in Å (> 0).
        metals: atomic numbers treated as metals (the core; the most central one becomes the
            origin).
        ligands: atomic numbers of non-metals (default: every species of the cell not in
            `metals`).
        device: torch device for the cut.

    Returns:
        Particles in ascending radius order (kind 'particle', positions [n_i, 3] Å, the central
        metal at the origin), with info `radius` (Å, requested) and `np_size` (Å, diameter
        2 max |r|). A radius that yields a single atom gives no particle (DebyeCalculator drops
        those), so the list can be shorter than `radii`.
    """
    if not unit_cell.is_periodic:
        raise InvdesignError("nanoparticles are cut from a unit cell, got a particle")
    radii = sorted(float(r) for r in radii)
    if not radii or min(radii) <= 0:
        raise InvdesignError(f"particle radii must be positive, got {radii}")
    metals = [int(z) for z in metals]
    if not set(metals) & set(unit_cell.species.tolist()):
        raise InvdesignError(f"unit cell {unit_cell.formula} contains none of the metals {metals}")
    if ligands is None:
        ligands = sorted(set(unit_cell.species.tolist()) - set(metals))
    # generate_nanoparticles indexes ligands[0]; given as numbers, the ligand list only steers its
    # atom sorting, so a placeholder (0, no element) stands in for "no ligands".
    ligands = [int(z) for z in ligands] or [0]
    with tempfile.TemporaryDirectory(prefix="invdesign_cut_") as folder:
        cif = _to_cif(unit_cell, folder)
        raw = _generate_or_none(cif, radii, metals, ligands, device)
        if raw is not None and len(raw) == len(radii):
            pairs = list(zip(radii, raw, strict=True))
        else:  # some radius gave a single atom: find out which, one radius at a time
            pairs = [
                (r, out[0])
                for r in radii
                if (out := _generate_or_none(cif, [r], metals, ligands, device))
            ]

    particles = []
    for radius, nano in pairs:
        species = np.array([elements.atomic_number(s) for s in nano.elements])
        pos = np.asarray(nano.xyz.detach().cpu().numpy(), dtype=np.float64)
        size = float(2.0 * np.linalg.norm(pos, axis=1).max())
        particles.append(
            Structure(species, pos, None, "particle", {"radius": radius, "np_size": size})
        )
    return particles


def default_metals(unit_cell: Structure) -> list[int]:
    """The atomic numbers a cut treats as metals: the cell's metal species or, with none, every
    species but the most electronegative (`elements.cation_species`; CHILI-3K cuts its metalloid
    oxides, SiO2 or TeO2, with the metalloid as the metal and O as the ligand)."""

    return elements.cation_species(unit_cell.species)


def cut_sphere(unit_cell: Structure, radius: float, device: str = "cpu") -> Structure | None:
    """One particle of metal radius `radius` Å cut from `unit_cell`, its metal species as the
    metals (`default_metals`); None when the cell yields no particle (e.g. a
    collapsed generated cell)."""
    try:
        particles = cut_particles(unit_cell, [radius], default_metals(unit_cell), device=device)
    except InvdesignError:
        return None
    return particles[0] if particles else None
