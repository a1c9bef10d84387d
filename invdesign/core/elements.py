"""Element data used for node features, bond rules and species handling.

The table ships as `resources/elements.csv` (made from `mendeleev` by
`tools/make_element_table.py`). CHILI's node features are `[atomic_number, atomic_radius (Slater,
pm), atomic_weight (u), electron_affinity (eV)]`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import cache, lru_cache
from importlib import resources

import numpy as np

from invdesign.core.errors import InvdesignError

N_NODE_FEATURES = 4

# Non-metals and metalloids treated as "ligands" when cutting nanoparticles (CHILI-100K's 11
# non-metals plus the remaining non-metallic elements); everything else with Z <= 103 is a metal.
NON_METALS: frozenset[str] = frozenset(
    "H He B C N O F Ne Si P S Cl Ar As Se Br Kr Te I Xe At Rn".split()
)


@lru_cache(maxsize=1)
def _table() -> dict[str, np.ndarray]:
    text = resources.files("invdesign.core").joinpath("resources/elements.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))

    def col(name: str) -> np.ndarray:
        return np.array([float(r[name]) if r[name] else np.nan for r in rows])

    return {
        "symbol": np.array([r["symbol"] for r in rows]),
        "atomic_number": col("atomic_number").astype(int),
        "atomic_radius": col("atomic_radius"),
        "atomic_weight": col("atomic_weight"),
        "electron_affinity": col("electron_affinity"),
        "metallic_radius": col("metallic_radius"),
    }


@cache
def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol ('Zn' -> 30); InvdesignError for unknown symbols."""
    symbols = _table()["symbol"]
    hits = np.flatnonzero(symbols == symbol)
    if hits.size == 0:
        raise InvdesignError(f"unknown element symbol {symbol!r}")
    return int(_table()["atomic_number"][hits[0]])


def symbol(z: int) -> str:
    """Element symbol of atomic number `z`."""
    _check_z(z)
    return str(_table()["symbol"][int(z) - 1])


def symbols(z: np.ndarray) -> list[str]:
    """Element symbols of an array of atomic numbers (vectorised `symbol`)."""
    z = np.asarray(z, dtype=int)
    _check_z(z)
    return _table()["symbol"][z - 1].astype(str).tolist()


def _check_z(z: int | np.ndarray) -> None:
    arr = np.asarray(z)
    if arr.size and (arr.min() < 1 or arr.max() > len(_table()["symbol"])):
        raise InvdesignError(f"atomic number out of range 1..118: {arr.min()}..{arr.max()}")


def atomic_radius(z: int | np.ndarray) -> np.ndarray:
    """Slater atomic radius in Å (mendeleev's `atomic_radius`, pm / 100). Shape follows `z`."""
    _check_z(z)
    return _table()["atomic_radius"][np.asarray(z, dtype=int) - 1] / 100.0


def metallic_radius(z: int | np.ndarray) -> np.ndarray:
    """Metallic radius in Å, falling back to the Slater atomic radius where unknown."""
    _check_z(z)
    idx = np.asarray(z, dtype=int) - 1
    met = _table()["metallic_radius"][idx]
    return np.where(np.isnan(met), _table()["atomic_radius"][idx], met) / 100.0


def is_metal(z: int) -> bool:
    """True for the elements treated as metals (not in NON_METALS, Z <= 103)."""
    return 1 <= int(z) <= 103 and symbol(int(z)) not in NON_METALS


@cache
def electronegativity(z: int) -> float:
    """Pauling electronegativity of element `z` (pymatgen's table); nan where it has none."""
    from pymatgen.core.periodic_table import Element  # noqa: PLC0415 - lazy: heavy library

    _check_z(int(z))
    value = Element.from_Z(int(z)).X
    return float(value) if value == value else float("nan")


def most_electronegative(species: Sequence[int]) -> int:
    """The species of highest Pauling electronegativity (those without one, noble gases, last)."""
    return max((int(z) for z in species),
               key=lambda z: np.nan_to_num(electronegativity(z), nan=-1.0))


def cation_species(species: np.ndarray | list[int]) -> list[int]:
    """The species of a compound a particle cut treats as metals, sorted: its metals, or, with
    none (a metalloid oxide such as SiO2), every species but the most electronegative (every
    species of a one-element compound)."""
    present = sorted({int(z) for z in species})
    metals = [z for z in present if is_metal(z)]
    if metals or len(present) < 2:
        return metals or present
    anion = most_electronegative(present)
    return [z for z in present if z != anion]


def node_features(z: np.ndarray) -> np.ndarray:
    """CHILI node features for atomic numbers `z` [n] -> [n, 4] float32:
    atomic_number, atomic_radius (pm), atomic_weight (u), electron_affinity (eV)."""
    z = np.asarray(z, dtype=int)
    _check_z(z)
    t = _table()
    idx = z - 1
    columns = [t["atomic_radius"][idx], t["atomic_weight"][idx], t["electron_affinity"][idx]]
    feats = np.stack([z.astype(float), *columns], axis=1)
    return np.nan_to_num(feats).astype(np.float32)
