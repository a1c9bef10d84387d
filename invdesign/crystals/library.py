"""The structure-type library: common inorganic structure types as data, placed on a composition.

The built-in types live in `resources/structure_types.yaml` (space group, Wyckoff sites with the
example compound's coordinates, roles with atoms per formula unit, the example's lattice);
CHILI-3K's twelve types take their sites and lattice from `crystal_types`. Users extend the
library with a folder of CIF files (`load_library(extra=DIR)`, one type per file). Cells are
expanded from the Wyckoff sites with `ase.spacegroup.crystal` (it knows both ITA origin choices);
symmetry is checked with pymatgen's `SpacegroupAnalyzer` in the tests and when reading CIFs.

Roles: a role whose name starts with 'X' is an anion site, any other role a cation (or metal) site.
`placements` puts a composition's elements on roles, `typed_cells` returns every type x placement
as a scaled unit cell and, for a type with no plain placement and one role fewer than the
composition has elements, its ordered variants with one role shared by two elements
(`ordered_cells`, `orderings`: K2NiF4 -> NaLaTiO4, perovskite -> P2_1/n double perovskite).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal
from pymatgen.core import Composition, Element
from pymatgen.io.cif import CifParser
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from invdesign.core import elements
from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals.crystal_types import CRYSTAL_TYPES, radius_pm
from invdesign.crystals.orderings import Split, orderings, split_placements

# Non-metals that make a compound ionic: a composition holding one of them is never placed on a
# type without anion roles (metals, intermetallics); B, C, Si, P, As stay allowed there (Cr3Si).
ANION_FORMERS: frozenset[str] = frozenset("H N O F S Cl Se Br I Te".split())


def crystal_system(spacegroup: int) -> str:
    """Crystal system of an international space-group number (1-230)."""
    bounds = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
              (167, "trigonal"), (194, "hexagonal"), (230, "cubic"))
    for last, name in bounds:
        if 1 <= spacegroup <= last:
            return name
    raise InvdesignError(f"space group number must be 1..230, not {spacegroup}")


@dataclass(frozen=True)
class Site:
    """One Wyckoff site: role, Wyckoff position ('4a'; '' when unknown), fractional x, y, z."""

    role: str
    wyckoff: str
    xyz: tuple[float, float, float]


@dataclass(frozen=True)
class StructureType:
    """One structure type.

    Attributes:
        name: unique lower-case name ('rocksalt', 'spinel', ...).
        spacegroup: international number; system: its crystal system.
        roles: role -> atoms per formula unit; roles starting with 'X' are anions.
        example: a real compound of the type ('NaCl'); its lattice is `lattice`.
        sites: the asymmetric unit (every atom for CIF types, expanded with P1).
        lattice: [6] a, b, c (Å), alpha, beta, gamma (deg) of the example.
        species: role -> atomic number of the example.
        z: formula units per conventional cell.
        setting: ITA origin choice of `sites` (1 or 2); rhombohedral groups on hexagonal axes.
        source: 'library' (built in) or 'user_cif'.
        note: what is approximated, if anything.
        expand_group: space group the sites are expanded with (`spacegroup`, 1 for CIF types).
        metallic: the type also hosts intermetallics on its anion sites.
    """

    name: str
    spacegroup: int
    system: str
    roles: dict[str, float]
    example: str
    sites: tuple[Site, ...] = ()
    lattice: tuple[float, ...] = ()
    species: dict[str, int] = field(default_factory=dict)
    z: int = 1
    setting: int = 1
    source: str = "library"
    note: str = ""
    expand_group: int = 0
    metallic: bool = False

    def __hash__(self) -> int:  # the dict fields are not hashable; name and source identify a type
        return hash((self.name, self.source))

    @property
    def anion_roles(self) -> list[str]:
        return [r for r in self.roles if r.startswith("X")]

    @property
    def intermetallic(self) -> bool:
        """True when an all-metal composition may take this type: types without anion roles and
        those flagged `metallic` in the data (CsCl is B2, NiAs is B8_1, fluorite is C1, ...)."""
        return self.metallic or not self.anion_roles

    def cell(self, assignment: dict[str, int] | None = None) -> Structure:
        """The conventional unit cell with the example's lattice (kind 'unit_cell').

        Args:
            assignment: role -> atomic number; None places the example's elements.

        Returns:
            `Structure` with info `structure_type`, `source`, `roles` ([n] role per atom), `sites`
            ([n] index into `sites` per atom) and `assignment`.
        """
        assignment = dict(self.species if assignment is None else assignment)
        missing = [r for r in self.roles if r not in assignment]
        if missing:
            raise InvdesignError(f"structure type {self.name!r}: no element for roles {missing}")
        group = self.expand_group or self.spacegroup
        atoms = crystal([elements.symbol(int(assignment[s.role])) for s in self.sites],
                        [s.xyz for s in self.sites], spacegroup=group, setting=self.setting,
                        cellpar=list(self.lattice), onduplicates="error", primitive_cell=False)
        kinds = atoms.get_array("spacegroup_kinds")
        info = {"structure_type": self.name, "source": self.source,
                "roles": [self.sites[k].role for k in kinds], "sites": kinds.tolist(),
                "assignment": {r: int(v) for r, v in assignment.items()}}
        return Structure(atoms.numbers, atoms.positions, np.array(atoms.cell[:]), "unit_cell", info)


@dataclass(frozen=True)
class TypedCell:
    """A structure type placed on a composition: `cell` is kind 'unit_cell', scaled (see
    `typed_cells`); `source` is 'library' or 'user_cif'."""

    structure_type: str
    cell: Structure
    source: str


# ----------------------------------------------------------------------------- loading
def _chili_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """Sites, space group, example and lattice of a YAML entry that names a CHILI-3K type."""
    ctype = CRYSTAL_TYPES[entry["chili"]]
    cation_roles = iter(r for r in entry["roles"] if not r.startswith("X"))
    site_roles = [next(cation_roles) if m == "M" else "X" for m, _ in ctype.sites]
    formula, lengths = ctype.references[0]
    a = lengths[0]
    c = a if ctype.system == "cubic" else lengths[1]
    gamma = 120.0 if ctype.system == "hexagonal" else 90.0
    sites = [[r, w, *xyz] for r, w, (_, xyz) in zip(site_roles, entry["wyckoff"], ctype.sites,
                                                    strict=True)]
    return {**entry, "spacegroup": ctype.space_group, "example": formula,
            "lattice": [a, a, c, 90.0, 90.0, gamma], "sites": sites}


def _from_entry(entry: dict[str, Any]) -> StructureType:
    if "chili" in entry:
        entry = _chili_entry(entry)
    sg = int(entry["spacegroup"])
    return StructureType(
        name=entry["name"], spacegroup=sg, system=crystal_system(sg),
        roles={str(r): float(m) for r, m in entry["roles"].items()}, example=entry["example"],
        sites=tuple(Site(str(r), str(w), (float(x), float(y), float(z)))
                    for r, w, x, y, z in entry["sites"]),
        lattice=tuple(float(v) for v in entry["lattice"]),
        species={r: elements.atomic_number(s) for r, s in entry["species"].items()},
        z=int(entry["z"]), setting=int(entry.get("setting", 1)), note=entry.get("note", ""),
        metallic=bool(entry.get("metallic", False)),
    )


@cache
def builtin_types() -> tuple[StructureType, ...]:
    """The built-in library, in the YAML's order."""
    text = resources.files("invdesign.crystals").joinpath(
        "resources/structure_types.yaml").read_text()
    return tuple(_from_entry(e) for e in yaml.safe_load(text))


def _role_names(species: list[int]) -> dict[int, str]:
    """Role name per element of a CIF: the most electronegative is 'X' when it is a non-metal
    (and there are other elements); the others 'A', 'B', ... by increasing electronegativity."""
    order = sorted(species, key=lambda z: np.nan_to_num(elements.electronegativity(z), nan=-1.0))
    names: dict[int, str] = {}
    if len(order) > 1 and not elements.is_metal(order[-1]):
        names[order.pop()] = "X"
    names.update({z: chr(ord("A") + i) for i, z in enumerate(order)})
    return names


def type_from_cif(path: str | os.PathLike) -> StructureType:
    """One `StructureType` from a CIF (name = file stem); DataFormatError naming the file."""
    path = Path(path)
    try:
        structures = CifParser(path).parse_structures(primitive=False)
    except Exception as exc:  # pymatgen raises many types for a bad file
        raise DataFormatError(f"cannot read CIF ({type(exc).__name__}: {exc})".splitlines()[0],
                              path) from None
    if not structures:
        raise DataFormatError("CIF holds no structure", path)
    pmg = structures[0]
    if not pmg.is_ordered:
        raise DataFormatError("CIF has partially occupied sites; give an ordered cell", path)
    try:
        return type_from_structure(pmg, path.stem.lower(), "user_cif")
    except InvdesignError as err:
        raise DataFormatError(err.message, path) from None


def type_from_structure(pmg: Any, name: str, source: str, note: str = "") -> StructureType:
    """One `StructureType` from an ordered pymatgen Structure: every atom a site (expanded with
    P1), roles by `_role_names`, the structure's own lattice; InvdesignError when spglib cannot
    find its space group."""
    try:
        data = SpacegroupAnalyzer(pmg, symprec=0.01).get_symmetry_dataset()
    except Exception as exc:  # spglib fails on overlapping atoms and the like
        raise InvdesignError(f"cannot find the space group ({exc})") from None
    if data is None:
        raise InvdesignError("cannot find the space group")
    spacegroup = data.number
    orbit = np.asarray(data.equivalent_atoms)
    letters = {i: f"{int(np.sum(orbit == orbit[i]))}{w}" for i, w in enumerate(data.wyckoffs)}
    zs = [site.specie.Z for site in pmg]
    names = _role_names(sorted(set(zs)))
    reduced, factor = pmg.composition.get_reduced_composition_and_factor()
    return StructureType(
        name=name, spacegroup=int(spacegroup), system=crystal_system(int(spacegroup)),
        roles={names[el.Z]: float(n) for el, n in reduced.items()}, example=reduced.reduced_formula,
        sites=tuple(Site(names[z], letters[i], tuple(float(v) for v in f))
                    for i, (z, f) in enumerate(zip(zs, pmg.frac_coords, strict=True))),
        lattice=tuple(float(v) for v in (*pmg.lattice.abc, *pmg.lattice.angles)),
        species={names[z]: z for z in set(zs)}, z=int(round(factor)), source=source,
        note=note, expand_group=1,
    )


def load_library(extra: str | os.PathLike | None = None) -> list[StructureType]:
    """The built-in types plus one type per `*.cif` in the folder `extra`.

    Raises DataFormatError naming the folder (missing, no CIF) or the file (unreadable, name taken).
    """
    library = list(builtin_types())
    if extra is None:
        return library
    folder = Path(extra)
    if not folder.is_dir():
        raise DataFormatError("structure library folder not found", folder)
    files = sorted(folder.glob("*.cif"))
    if not files:
        raise DataFormatError("structure library folder holds no .cif file", folder)
    names = {t.name for t in library}
    for f in files:
        stype = type_from_cif(f)
        if stype.name in names:
            raise DataFormatError(
                f"structure type name {stype.name!r} is taken; rename the file", f)
        names.add(stype.name)
        library.append(stype)
    return library


# ----------------------------------------------------------------------------- placement
def _fractions(composition: dict[int, float]) -> dict[int, float]:
    total = float(sum(composition.values()))
    if not composition or total <= 0 or min(composition.values()) <= 0:
        raise InvdesignError(f"composition needs positive amounts, not {composition}")
    return {int(z): float(v) / total for z, v in composition.items()}


def _en(z: int) -> float:
    return float(np.nan_to_num(elements.electronegativity(z), nan=-1.0))


def _candidates(stype: StructureType, present: list[int]) -> list[dict[str, list[int]]]:
    """Allowed elements per role, one dict per choice of anion set (see `placements`)."""
    roles = list(stype.roles)
    if len(present) == 1:
        return [{r: present for r in roles}] if len(roles) == 1 else []
    non_metals = sorted((z for z in present if not elements.is_metal(z)), key=_en, reverse=True)
    if not non_metals:  # intermetallic: every role is a metal role
        return [{r: present for r in roles}] if stype.intermetallic else []
    if not stype.anion_roles:
        if any(elements.symbol(z) in ANION_FORMERS for z in non_metals):
            return []
        return [{r: present for r in roles}]
    out = []
    for k in range(1, len(non_metals) + 1):
        anions = non_metals[:k]
        cations = [z for z in present if z not in anions]
        if cations or len(stype.anion_roles) == len(roles):
            out.append({r: anions if r.startswith("X") else cations for r in roles})
    return out


#: Largest difference of atomic fractions between a placed type and the composition. 0.02 keeps
#: near-stoichiometric approximants (maghemite Fe20O32 for Fe2O3: 0.015) and refuses other formulas
#: (Fe3O4 spinel for Fe2O3: 0.029; garnet Sr3Yb2NbO8 for Sr2YbNbO6: 0.043).
STOICHIOMETRY_TOL = 0.02


def placements(stype: StructureType, composition: dict[int, float],
               tol: float = STOICHIOMETRY_TOL) -> list[dict[str, int]]:
    """Every assignment role -> atomic number that fits `composition`.

    Rules: every element of the composition is used; the atomic fractions match the composition's
    within `tol` (largest absolute difference); with an anion (a non-metal among two or more
    elements) the anion roles take the most electronegative non-metal(s) and the other roles the
    rest; a one-element composition goes only on one-role types; an all-metal composition goes on
    the types that host intermetallics (`StructureType.intermetallic`), any element on any role.
    Permutations of elements over roles are all returned when they fit.

    Args:
        composition: atomic number -> amount (any scale).
    """
    target = _fractions(composition)
    present = sorted(target)
    total = sum(stype.roles.values())
    found: list[dict[str, int]] = []
    roles = list(stype.roles)
    for allowed in _candidates(stype, present):
        for combo in itertools.product(*(allowed[r] for r in roles)):
            if set(combo) != set(present):
                continue
            got = dict.fromkeys(present, 0.0)
            for role, z in zip(roles, combo, strict=True):
                got[z] += stype.roles[role] / total
            if max(abs(got[z] - target[z]) for z in present) <= tol + 1e-12:
                assignment = dict(zip(roles, (int(z) for z in combo), strict=True))
                if assignment not in found:
                    found.append(assignment)
    return found


# ----------------------------------------------------------------------------- scaled cells
def _radius(z: int, anion_role: bool, ionic: bool) -> float:
    """Radius in Å: pymatgen's average anionic / cationic radius for ionic compounds, else (and
    when pymatgen has none) the metallic radius crystal_types' lattice estimate uses."""
    if ionic:
        el = Element.from_Z(z)
        r = float(el.average_anionic_radius if anion_role else el.average_cationic_radius)
        if r > 0:
            return r
    return radius_pm(elements.symbol(z)) / 100.0


def _is_ionic(zs: list[int]) -> bool:
    return len(set(zs)) > 1 and any(not elements.is_metal(z) for z in zs)


def radius_scale(stype: StructureType, assignment: dict[str, int]) -> float:
    """Isotropic factor from the example's lattice to `assignment`'s estimate: the median over
    atoms of (r_i + r_j) new / (r_i + r_j) example, j the nearest neighbour of atom i."""
    example = stype.cell()
    roles = example.info["roles"]
    i, j, _ = _nearest(example)
    ion_new, ion_old = _is_ionic(list(assignment.values())), _is_ionic(list(stype.species.values()))

    def pair(mapping: dict[str, int], ionic: bool, a: int, b: int) -> float:
        return sum(_radius(mapping[roles[k]], roles[k].startswith("X"), ionic) for k in (a, b))

    ratios = [pair(assignment, ion_new, a, b) / pair(stype.species, ion_old, a, b)
              for a, b in zip(i, j, strict=True)]
    return float(np.median(ratios))


def _nearest(cell: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each atom its nearest neighbour (periodic): indices i [n], j [n], distances [n] Å."""
    atoms = cell.to_ase()
    cutoff = 3.0
    while True:
        i, j, d = neighbor_list("ijd", atoms, cutoff)
        if np.unique(i).size == len(atoms):
            break
        cutoff *= 1.5
    best = np.full(len(atoms), np.inf)
    partner = np.zeros(len(atoms), dtype=int)
    for a, b, dist in zip(i, j, d, strict=True):
        if dist < best[a]:
            best[a], partner[a] = dist, b
    return np.arange(len(atoms)), partner, best


def scaled(cell: Structure, factor: float) -> Structure:
    """The cell with lattice and positions multiplied by `factor` (fractional coordinates kept)."""
    return Structure(cell.species, cell.positions * factor, cell.cell * factor, "unit_cell",
                     dict(cell.info))


def typed_cells(composition: dict[int, float], nn: float | None = None,
                library: list[StructureType] | None = None,
                tol: float = STOICHIOMETRY_TOL) -> list[TypedCell]:
    """Every structure type x placement of `composition` as a unit cell.

    Args:
        composition: atomic number -> amount.
        nn: shortest interatomic distance (Å) to scale every cell to; None scales the example's
            lattice by radius sums (`radius_scale`).
        library: the types to try (default: the built-in library).
    """
    if nn is not None and not nn > 0:
        raise InvdesignError(f"nearest-neighbour distance must be positive, not {nn}")
    out = []
    for stype in builtin_types() if library is None else library:
        simple = placements(stype, composition, tol)
        for assignment in simple:
            cell = stype.cell(assignment)
            factor = radius_scale(stype, assignment) if nn is None else _nn_scale(cell, nn)
            if np.isfinite(factor) and factor > 0:  # NaN: an element without a tabulated radius
                out.append(TypedCell(stype.name, scaled(cell, factor), stype.source))
        if not simple:
            out.extend(ordered_cells(stype, composition, nn, tol))
    return out


def ordered_cells(stype: StructureType, composition: dict[int, float], nn: float | None = None,
                  tol: float = STOICHIOMETRY_TOL) -> list[TypedCell]:
    """The ordered variants of `stype` for a composition with one element more than its roles
    (`orderings.split_placements`, `orderings.orderings`), named 'type:A/B-ordered SYMBOL'; scaled
    by the mean of the radius scales with either element on the split role, or to `nn`."""
    target = _fractions(composition)
    parent = stype.cell()
    roles = np.asarray(parent.info["roles"])
    sites = {r: int(np.sum(roles == r)) for r in stype.roles}
    out = []
    for split in split_placements(stype.roles, sites, _candidates(stype, sorted(target)), target,
                                  tol):
        if not _sizes_in_order(stype, split):
            continue
        other = {**split.assignment, split.role: split.second}
        factor = 0.5 * (radius_scale(stype, split.assignment) + radius_scale(stype, other))
        pair = f"{elements.symbol(split.first)}/{elements.symbol(split.second)}"
        for cell in orderings(stype.cell(split.assignment), split):
            name = f"{stype.name}:{pair}-ordered {cell.info['ordering']}"
            cell.info["structure_type"] = name
            factor_n = factor if nn is None else _nn_scale(cell, nn)
            if np.isfinite(factor_n) and factor_n > 0:
                out.append(TypedCell(name, scaled(cell, factor_n), stype.source))
    return out


def _sizes_in_order(stype: StructureType, split: Split) -> bool:
    """True when the cation roles keep the example's size order: a role whose example cation is
    larger than another's (by more than 5 %) is not given smaller cations (the split role counted
    at its two elements' mean radius), so Sr2YbNbO6 puts Sr, not Yb/Nb, on the perovskite A site."""
    cations = [r for r in stype.roles if not r.startswith("X")]
    old = {r: _radius(stype.species[r], False, True) for r in cations}
    new = {r: _radius(split.assignment[r], False, True) for r in cations}
    new[split.role] = 0.5 * (_radius(split.first, False, True) + _radius(split.second, False, True))
    for r1, r2 in itertools.combinations(cations, 2):
        before, after = old[r1] - old[r2], new[r1] - new[r2]
        if abs(before) > 0.05 * max(old[r1], old[r2]) and before * after < 0:
            return False
    return True


def _nn_scale(cell: Structure, nn: float) -> float:
    return nn / float(_nearest(cell)[2].min())


def composition_of(formula: str) -> dict[int, float]:
    """Atomic number -> amount of a formula ('CoFe2O4')."""
    return {el.Z: float(n) for el, n in Composition(formula).items()}
