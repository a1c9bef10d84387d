"""CHILI-100K's CIF cleaning rules (Appendix A.2): read a CIF or say why it is rejected.

Rejected: files ASE cannot read (or that hold no atoms), partial occupancies below 0.9, atoms closer
than 1.2 Å (minimum image), elements outside CHILI-100K's 68 metals + 11 non-metals, and files
without any metal (e.g. 'CU' read as carbon).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from invdesign.core.structure import Structure
from invdesign.crystals.crystal_types import CHILI100K_METALS, CHILI100K_NON_METALS

MIN_OCCUPANCY = 0.9
MIN_DISTANCE = 1.2  # Å
ALLOWED_ELEMENTS: frozenset[str] = frozenset(CHILI100K_METALS) | frozenset(CHILI100K_NON_METALS)


@dataclass(frozen=True)
class CleanResult:
    """The cleaned unit cell, or None and the reason it was rejected."""

    structure: Structure | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.structure is not None


def _occupancies(path: Path) -> list[float]:
    """Every `_atom_site_occupancy` value of the file's blocks (uncertainties '(3)' stripped)."""
    from ase.io.cif import parse_cif

    values: list[float] = []
    for block in parse_cif(str(path)):
        for value in block.get("_atom_site_occupancy") or []:
            text = str(value).split("(")[0].strip()
            if text not in ("", ".", "?"):
                values.append(float(text))
    return values


def clean_cif(path: str | os.PathLike) -> CleanResult:
    """Apply the cleaning rules to one CIF file."""
    from ase.io import read

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms = read(path, format="cif")
            occupancies = _occupancies(path)
    except Exception as exc:  # noqa: BLE001 - any parser failure means "unreadable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CleanResult(None, f"unreadable CIF ({first})")
    if len(atoms) == 0:
        return CleanResult(None, "unreadable CIF (no atoms)")
    if not atoms.pbc.all() or atoms.cell.volume < 1e-6:
        return CleanResult(None, "unreadable CIF (no 3-D unit cell)")
    if occupancies and min(occupancies) < MIN_OCCUPANCY:
        return CleanResult(None, f"partial occupancy {min(occupancies):g} < {MIN_OCCUPANCY}")
    symbols = sorted(set(atoms.get_chemical_symbols()))
    outside = [s for s in symbols if s not in ALLOWED_ELEMENTS]
    if outside:
        return CleanResult(None, f"element(s) outside the allowed set: {' '.join(outside)}")
    if not set(symbols) & set(CHILI100K_METALS):
        return CleanResult(None, f"no metal (elements {' '.join(symbols)})")
    structure = Structure.from_ase(atoms, kind="unit_cell")
    d_min = structure.min_distance()
    if d_min < MIN_DISTANCE:
        return CleanResult(
            None, f"atoms closer than {MIN_DISTANCE} Å (minimum distance {d_min:.3f} Å)"
        )
    return CleanResult(
        Structure(
            structure.species,
            structure.positions,
            structure.cell,
            "unit_cell",
            {"name": path.stem, "source": str(path)},
        )
    )
