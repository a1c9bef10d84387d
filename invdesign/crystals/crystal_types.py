"""The 12 CHILI-3K crystal types, the CHILI metal sets and the lattice estimate per type.

A unit cell is built with `ase.spacegroup.crystal` from the type's Wyckoff sites (CHILI.md table),
the metal M and oxygen. Cell lengths are estimated as CHILI does (Appendix A.1): for each type, each
independent cell length is fitted by a straight line against the sum of the radii of the formula
unit's atoms (metallic radius, else atomic radius, in pm, from `mendeleev`), over the textbook
compounds of that type (West, Solid State Chemistry).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from ase.spacegroup import crystal
from pymatgen.core import Composition

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure

# CHILI-100K's 68 metals (CHILI Fig. 3, orange; identical to DebyeCalculator's default metal list)
# and its 11 non-metals (the "ligands" when cutting particles).
CHILI100K_METALS: tuple[str, ...] = tuple(
    "Li Be B Na Mg Al Si K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Rb Sr Y Zr Nb Mo Tc Ru Rh Pd "
    "Ag Cd In Sn Sb Te Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au "
    "Hg Tl Pb Bi Ra".split()
)
CHILI100K_NON_METALS: tuple[str, ...] = tuple("H C N O F P S Cl Se Br I".split())


def _chili3k_metals() -> tuple[str, ...]:
    """The rule: CHILI-100K's metals that have a tabulated metallic radius in `mendeleev`.

    CHILI estimates lattices from metallic radii, so metals without one (the lanthanides after La,
    Ra) are left out. The rule yields exactly 53 metals, CHILI-3K's count.
    """
    table = elements._table()["metallic_radius"]
    return tuple(s for s in CHILI100K_METALS if not np.isnan(table[elements.atomic_number(s) - 1]))


CHILI3K_METALS: tuple[str, ...] = _chili3k_metals()


@dataclass(frozen=True)
class CrystalType:
    """One CHILI-3K crystal type.

    Attributes:
        name: CHILI name, e.g. 'RockSalt'.
        space_group: international number.
        system: lattice kind, fixing which cell lengths are free: 'cubic' (a), 'hexagonal' (a, c;
        gamma 120)
            or 'tetragonal' (a, c).
        sites: asymmetric unit as ('M' | 'O', (x, y, z) fractional); ase.spacegroup expands it.
        n_metal, n_oxygen: atoms per formula unit (MO2 -> 1, 2), for the radius sum of the generated
        oxide.
        references: textbook compounds (formula, (a,) or (a, c) in Å) the lattice fit is made on.
    """

    name: str
    space_group: int
    system: str
    sites: tuple[tuple[str, tuple[float, float, float]], ...]
    n_metal: int
    n_oxygen: int
    references: tuple[tuple[str, tuple[float, ...]], ...]

    @property
    def n_lengths(self) -> int:
        """Number of independent cell lengths (1 for cubic, 2 otherwise)."""
        return 1 if self.system == "cubic" else 2


_T = CrystalType
CRYSTAL_TYPES: dict[str, CrystalType] = {
    t.name: t
    for t in (
        _T(
            "RockSalt",
            225,
            "cubic",
            (("M", (0, 0, 0)), ("O", (0.5, 0.5, 0.5))),
            1,
            1,
            (
                ("MgO", (4.213,)),
                ("CaO", (4.811,)),
                ("SrO", (5.160,)),
                ("BaO", (5.539,)),
                ("MnO", (4.445,)),
                ("FeO", (4.307,)),
                ("CoO", (4.260,)),
                ("NiO", (4.177,)),
                ("CdO", (4.695,)),
                ("NaCl", (5.640,)),
                ("KCl", (6.293,)),
            ),
        ),
        _T(
            "ZincBlende",
            216,
            "cubic",
            (("M", (0, 0, 0)), ("O", (0.25, 0.25, 0.25))),
            1,
            1,
            (
                ("CuCl", (5.416,)),
                ("ZnS", (5.406,)),
                ("ZnSe", (5.667,)),
                ("CdTe", (6.481,)),
                ("GaAs", (5.653,)),
                ("InSb", (6.478,)),
                ("AlP", (5.451,)),
            ),
        ),
        _T(
            "Fluorite",
            225,
            "cubic",
            (("M", (0, 0, 0)), ("O", (0.25, 0.25, 0.25))),
            1,
            2,
            (
                ("CaF2", (5.463,)),
                ("SrF2", (5.800,)),
                ("BaF2", (6.200,)),
                ("CeO2", (5.411,)),
                ("ThO2", (5.600,)),
                ("UO2", (5.372,)),
                ("PbO2", (5.349,)),
            ),
        ),
        _T(
            "AntiFluorite",
            225,
            "cubic",
            (("O", (0, 0, 0)), ("M", (0.25, 0.25, 0.25))),
            2,
            1,
            (
                ("Li2O", (4.611,)),
                ("Na2O", (5.55,)),
                ("K2O", (6.449,)),
                ("Rb2O", (6.74,)),
                ("Li2S", (5.710,)),
                ("Na2S", (6.539,)),
            ),
        ),
        _T(
            "Wurtzite",
            186,
            "hexagonal",
            (("M", (1 / 3, 2 / 3, 0)), ("O", (1 / 3, 2 / 3, 0.375))),
            1,
            1,
            (
                ("ZnO", (3.250, 5.207)),
                ("BeO", (2.698, 4.380)),
                ("ZnS", (3.811, 6.234)),
                ("CdS", (4.135, 6.749)),
                ("AlN", (3.111, 4.978)),
                ("GaN", (3.180, 5.166)),
            ),
        ),
        _T(
            "NickelArsenide",
            194,
            "hexagonal",
            (("M", (0, 0, 0)), ("O", (1 / 3, 2 / 3, 0.25))),
            1,
            1,
            (
                ("NiAs", (3.602, 5.009)),
                ("NiS", (3.439, 5.348)),
                ("FeS", (3.438, 5.880)),
                ("CoS", (3.367, 5.160)),
                ("MnAs", (3.710, 5.691)),
                ("CrSb", (4.108, 5.440)),
            ),
        ),
        _T(
            "CaesiumChloride",
            221,
            "cubic",
            (("M", (0, 0, 0)), ("O", (0.5, 0.5, 0.5))),
            1,
            1,
            (
                ("CsCl", (4.123,)),
                ("CsBr", (4.286,)),
                ("CsI", (4.567,)),
                ("TlCl", (3.834,)),
                ("CuZn", (2.945,)),
                ("AlNi", (2.881,)),
            ),
        ),
        _T(
            "Rutile",
            136,
            "tetragonal",
            (("M", (0, 0, 0)), ("O", (0.3, 0.3, 0))),
            1,
            2,
            (
                ("TiO2", (4.594, 2.958)),
                ("SnO2", (4.737, 3.186)),
                ("RuO2", (4.51, 3.11)),
                ("IrO2", (4.49, 3.14)),
                ("MnO2", (4.396, 2.871)),
                ("MgF2", (4.623, 3.052)),
            ),
        ),
        _T(
            "CadmiumIodide",
            164,
            "hexagonal",
            (("M", (0, 0, 0)), ("O", (1 / 3, 2 / 3, 0.25))),
            1,
            2,
            (
                ("CdI2", (4.24, 6.84)),
                ("MgI2", (4.14, 6.88)),
                ("PbI2", (4.555, 6.977)),
                ("Mg(OH)2", (3.147, 4.769)),
                ("Ca(OH)2", (3.584, 4.896)),
            ),
        ),
        _T(
            "CadmiumChloride",
            166,
            "hexagonal",
            (("M", (0, 0, 0)), ("O", (0, 0, 0.25))),
            1,
            2,
            (
                ("CdCl2", (3.854, 17.457)),
                ("MgCl2", (3.596, 17.589)),
                ("FeCl2", (3.579, 17.536)),
                ("NiCl2", (3.543, 17.335)),
                ("CoCl2", (3.544, 17.430)),
            ),
        ),
        _T(
            "Perovskite",
            221,
            "cubic",
            (("M", (0, 0, 0)), ("M", (0.5, 0.5, 0.5)), ("O", (0, 0.5, 0.5))),
            2,
            3,
            (
                ("SrTiO3", (3.905,)),
                ("KNbO3", (4.007,)),
                ("KTaO3", (3.989,)),
                ("LaFeO3", (3.920,)),
                ("LaCoO3", (3.824,)),
                ("SrZrO3", (4.101,)),
            ),
        ),
        _T(
            "RheniumTrioxide",
            221,
            "cubic",
            (("M", (0, 0, 0)), ("O", (0.5, 0, 0))),
            1,
            3,
            (("ReO3", (3.734,)), ("UO3", (4.156,)), ("NbF3", (3.903,)), ("TaF3", (3.901,))),
        ),
    )
}


def radius_pm(symbol: str) -> float:
    """Metallic radius of an element in pm, else its (Slater) atomic radius, as CHILI's lattice fit
    uses."""
    return float(elements.metallic_radius(elements.atomic_number(symbol))) * 100.0


def formula_radius_sum(formula: str) -> float:
    """Sum of `radius_pm` over every atom of a formula unit ('Mg(OH)2' -> r_Mg + 2 r_O + 2 r_H), in
    pm."""

    comp = Composition(formula)
    return float(sum(amount * radius_pm(el.symbol) for el, amount in comp.items()))


@cache
def lattice_fit(crystal_type: str) -> np.ndarray:
    """[n_lengths, 2] slope (Å/pm) and intercept (Å) of each cell length vs the formula radius
    sum."""
    ctype = get_crystal_type(crystal_type)
    x = np.array([formula_radius_sum(f) for f, _ in ctype.references])
    y = np.array([lengths for _, lengths in ctype.references])
    return np.stack([np.polyfit(x, y[:, k], 1) for k in range(ctype.n_lengths)])


def estimate_lengths(crystal_type: str, radius_sum: float) -> np.ndarray:
    """[n_lengths] estimated cell length(s) in Å (a, or a and c) for a formula radius sum in pm."""
    fit = lattice_fit(crystal_type)
    return fit[:, 0] * radius_sum + fit[:, 1]


def cell_parameters(crystal_type: str, metal: str) -> np.ndarray:
    """[6] estimated a, b, c (Å), alpha, beta, gamma (deg) of the oxide of `metal` in
    `crystal_type`."""
    ctype = get_crystal_type(crystal_type)
    radius_sum = ctype.n_metal * radius_pm(metal) + ctype.n_oxygen * radius_pm("O")
    lengths = estimate_lengths(crystal_type, radius_sum)
    a = lengths[0]
    c = a if ctype.system == "cubic" else lengths[1]
    gamma = 120.0 if ctype.system == "hexagonal" else 90.0
    return np.array([a, a, c, 90.0, 90.0, gamma])


def get_crystal_type(name: str) -> CrystalType:
    """Look up a crystal type by name; InvdesignError naming the choices otherwise."""
    if name not in CRYSTAL_TYPES:
        raise InvdesignError(
            f"unknown crystal type {name!r}; choose from {', '.join(CRYSTAL_TYPES)}"
        )
    return CRYSTAL_TYPES[name]


def check_metal(metal: str) -> str:
    """Validate a CHILI-3K metal symbol; InvdesignError otherwise."""
    if metal not in CHILI3K_METALS:
        raise InvdesignError(
            f"unknown CHILI-3K metal {metal!r}; choose from {' '.join(CHILI3K_METALS)}"
        )
    return metal


def unit_cell(crystal_type: str, metal: str) -> Structure:
    """The CHILI-3K unit cell of `metal` oxide in `crystal_type`, with the estimated lattice.

    Returns a `Structure` (kind 'unit_cell', positions [n, 3] Å) with info `crystal_type`, `metal`,
    `name`.
    """

    ctype = get_crystal_type(crystal_type)
    check_metal(metal)
    symbols = [metal if role == "M" else "O" for role, _ in ctype.sites]
    basis = [pos for _, pos in ctype.sites]
    atoms = crystal(
        symbols,
        basis,
        spacegroup=ctype.space_group,
        cellpar=cell_parameters(crystal_type, metal).tolist(),
        primitive_cell=False,
    )
    info = {"crystal_type": crystal_type, "metal": metal, "name": f"{crystal_type}_{metal}"}
    return Structure(atoms.numbers, atoms.positions, np.array(atoms.cell[:]), "unit_cell", info)
