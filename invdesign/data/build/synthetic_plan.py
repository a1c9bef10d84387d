"""Plan a synthetic CHILI-100K-like set: weighted space groups, charge-balanced compositions, sizes.

Everything here is a pure function of a seed, so the plan (and with it every file name and every
task's own seed) is the same on every machine and for any worker count; the expensive parts
(pyxtal placement, CHGNet relaxation, cutting, simulation) run later, one task per cell.

Space-group weights (`resources/spacegroup_weights.yaml` of `invdesign.crystals`): the number of
structure types per space group in the AFLOW Library of Crystallographic Prototypes, Part 1 (Mehl et
al., Comp. Mat. Sci. 136, S1-S828, 2017; 288 inorganic prototypes in 100 space groups, as shipped
with pymatgen in `pymatgen/analysis/prototypes/aflow_prototypes.json.gz`), plus a pseudo-count for
every one of the 230 groups so that each can occur. No per-space-group ICSD table was found among
the stored public sources; this is a proxy (prototype counts, not entry counts). `derive_weights`
recomputes the file from pymatgen's copy; a test keeps the two equal.

Compositions (`plan_compositions`): oxides, chalcogenides (S, Se, Te), halides (F, Cl, Br, I) and
nitrides with one or two cations, charge-balanced with pymatgen's common oxidation states
(sum n_i q_i = 0), and binary intermetallics (no charge balance: metallic bonding). The formula is
reduced; the number of formula units Z is chosen so that the cell holds at most `max_atoms` atoms
and the counts fit the space group's Wyckoff positions (pyxtal's `Group.check_compatible`).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import yaml

from invdesign.core.errors import InvdesignError
from invdesign.crystals.crystal_types import CHILI100K_METALS

WEIGHTS_RESOURCE = "resources/spacegroup_weights.yaml"
#: Weight every space group gets on top of its prototype count (so all 230 can be drawn).
PSEUDO_COUNT = 0.5
MAX_ATOMS = 20

#: Composition families and their share of the plan (a choice: oxides dominate inorganic databases).
FAMILIES: dict[str, float] = {
    "oxide": 0.35, "chalcogenide": 0.2, "halide": 0.2, "nitride": 0.1, "intermetallic": 0.15,
}
ANIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "oxide": (("O", -2),),
    "chalcogenide": (("S", -2), ("Se", -2), ("Te", -2)),
    "halide": (("F", -1), ("Cl", -1), ("Br", -1), ("I", -1)),
    "nitride": (("N", -3),),
}
#: CHILI-100K's metals without the radioactive Tc, Pm, Ra and without Te (an anion here).
CATIONS: tuple[str, ...] = tuple(m for m in CHILI100K_METALS if m not in ("Tc", "Pm", "Ra", "Te"))
#: Metals drawn for intermetallics (no metalloids B, Si, Ge, As, Sb).
INTERMETALLIC_METALS: tuple[str, ...] = tuple(
    m for m in CATIONS if m not in ("B", "Si", "Ge", "As", "Sb"))
MAX_FORMULA_ATOMS = 10  # atoms per reduced formula unit (a cell still holds Z of them, <= 20)
MAX_AMOUNT = 6


@dataclass(frozen=True)
class CellPlan:
    """One planned synthetic cell.

    Attributes:
        index: position in the plan (0, 1, ...), fixing the name and the seed.
        family: 'oxide', 'chalcogenide', 'halide', 'nitride' or 'intermetallic'.
        spacegroup: international number (1-230).
        species: element symbols, cations first.
        counts: atoms per cell of each species (Z x the reduced formula).
        oxidation: oxidation state of each species (0 for intermetallics).
        seed: the task's own seed (from the plan seed and `index`).
    """

    index: int
    family: str
    spacegroup: int
    species: tuple[str, ...]
    counts: tuple[int, ...]
    oxidation: tuple[int, ...]
    seed: int

    @property
    def formula(self) -> str:
        return "".join(f"{s}{n if n > 1 else ''}" for s, n in zip(self.species, self.counts,
                                                                    strict=True))


# ----------------------------------------------------------------------------- space groups
def derive_weights() -> dict[int, int]:
    """Prototype count per space group in pymatgen's copy of the AFLOW prototype library, Part 1."""
    from invdesign.crystals.aflow import prototype_entries  # noqa: PLC0415 - lazy: pymatgen

    entries = prototype_entries()
    # AFLOW labels read '<stoichiometry>_<Pearson>_<space group>_<Wyckoff letters>'
    counts = Counter(int(e["tags"]["aflow"].split("_")[2]) for e in entries)
    return {sg: counts[sg] for sg in sorted(counts)}


@cache
def spacegroup_weights() -> np.ndarray:
    """[230] probability of space groups 1..230 (prototype counts + `PSEUDO_COUNT`, normalised)."""
    text = resources.files("invdesign.crystals").joinpath(WEIGHTS_RESOURCE).read_text()
    data = yaml.safe_load(text)
    counts = np.full(230, float(data["pseudo_count"]))
    for sg, n in data["prototype_counts"].items():
        counts[int(sg) - 1] += float(n)
    return counts / counts.sum()


@cache
def _group(spacegroup: int):  # noqa: ANN202 - pyxtal.symmetry.Group
    # lazy: pyxtal's symmetry tables take a moment to load
    from pyxtal.symmetry import Group  # noqa: PLC0415

    return Group(spacegroup)


@cache
def _compatible(spacegroup: int, counts: tuple[int, ...]) -> bool:
    """True when pyxtal can place `counts` atoms of each species on the group's Wyckoff sites."""
    ok = _group(spacegroup).check_compatible(list(counts))
    return bool(ok[0] if isinstance(ok, tuple) else ok)


# ----------------------------------------------------------------------------- compositions
@cache
def oxidation_states(symbol: str) -> tuple[int, ...]:
    """Positive common oxidation states of a cation (pymatgen's `common_oxidation_states`)."""
    from pymatgen.core import Element  # noqa: PLC0415 - lazy: heavy import

    return tuple(q for q in Element(symbol).common_oxidation_states if q > 0)


def _balanced_formulas(charges: tuple[int, ...], anion_charge: int) -> list[tuple[int, ...]]:
    """Reduced amounts (cations..., anion) with sum n_i q_i = 0, at most MAX_FORMULA_ATOMS atoms."""
    out = []
    for amounts in itertools.product(range(1, MAX_AMOUNT + 1), repeat=len(charges)):
        positive = sum(a * q for a, q in zip(amounts, charges, strict=True))
        if positive % -anion_charge:
            continue
        full = (*amounts, positive // -anion_charge)
        if math.gcd(*full) == 1 and sum(full) <= MAX_FORMULA_ATOMS:
            out.append(full)
    return out


def _draw_composition(rng: np.random.Generator) -> tuple[str, tuple[str, ...], tuple[int, ...],
                                                          tuple[int, ...]] | None:
    """(family, species, reduced amounts, oxidation states); None when the draw has no formula."""
    families = list(FAMILIES)
    p = np.array([FAMILIES[f] for f in families])
    family = families[rng.choice(len(families), p=p / p.sum())]
    if family == "intermetallic":
        metals = rng.choice(len(INTERMETALLIC_METALS), size=2, replace=False)
        species = tuple(INTERMETALLIC_METALS[i] for i in sorted(metals))
        a, b = (int(v) for v in rng.integers(1, 5, size=2))
        g = math.gcd(a, b)
        return family, species, (a // g, b // g), (0, 0)
    n_cations = 1 + int(rng.random() < 0.5)
    picks = rng.choice(len(CATIONS), size=n_cations, replace=False)
    cations = tuple(CATIONS[i] for i in sorted(picks))
    charges = []
    for cation in cations:
        states = oxidation_states(cation)
        if not states:
            return None
        charges.append(int(states[rng.integers(len(states))]))
    anion, anion_charge = ANIONS[family][rng.integers(len(ANIONS[family]))]
    formulas = _balanced_formulas(tuple(charges), anion_charge)
    if not formulas:
        return None
    amounts = formulas[rng.integers(len(formulas))]
    return family, (*cations, anion), amounts, (*charges, anion_charge)


def _cell_counts(spacegroup: int, amounts: tuple[int, ...], max_atoms: int,
                 rng: np.random.Generator) -> tuple[int, ...] | None:
    """Atoms per species for a random fitting Z (None when no Z fits the group within max_atoms)."""
    per_unit = sum(amounts)
    options = [tuple(z * a for a in amounts) for z in range(1, max_atoms // per_unit + 1)]
    options = [c for c in options if _compatible(spacegroup, c)]
    if not options:
        return None
    return options[rng.integers(len(options))]


def task_seed(seed: int, index: int) -> int:
    """The task's own seed: a 32-bit integer from the plan seed and the task's index."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def plan_compositions(n: int, seed: int, max_atoms: int = MAX_ATOMS,
                      max_tries: int = 200) -> list[CellPlan]:
    """`n` distinct (space group, composition) pairs, drawn in order from one generator.

    The draws are sequential, so the first k cells of a plan of n > k are the plan of k (a larger
    `--n` extends a build). Repeated (space group, species, counts) draws are dropped here, at
    planning time, so no two tasks generate the same thing.
    """
    if n < 0:
        raise InvdesignError(f"--n must be at least 0, got {n}")
    if not 1 <= max_atoms <= 200:
        raise InvdesignError(f"max atoms per cell must be in 1..200, got {max_atoms}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20_882]))
    weights = spacegroup_weights()
    plans: list[CellPlan] = []
    seen: set[tuple] = set()
    failures = 0
    while len(plans) < n:
        if failures > max_tries * max(n, 1):
            raise InvdesignError(f"could not plan {n} distinct cells (planned {len(plans)})")
        spacegroup = int(rng.choice(230, p=weights)) + 1
        for _ in range(max_tries):
            drawn = _draw_composition(rng)
            if drawn is None:
                continue
            family, species, amounts, oxidation = drawn
            counts = _cell_counts(spacegroup, amounts, max_atoms, rng)
            if counts is not None:
                break
        else:  # no composition fits this group within max_atoms: draw another group
            failures += 1
            continue
        key = (spacegroup, species, counts)
        if key in seen:
            failures += 1
            continue
        seen.add(key)
        index = len(plans)
        plans.append(CellPlan(index, family, spacegroup, species, counts, oxidation,
                              task_seed(seed, index)))
    return plans


def weights_yaml() -> str:
    """The text of `resources/spacegroup_weights.yaml`, from `derive_weights`."""
    counts = derive_weights()
    header = (
        "# Space-group weights of `invdesign data build synthetic` (see invdesign/data/build/"
        "synthetic_plan.py).\n"
        "# prototype_counts: structure types per space group in the AFLOW Library of "
        "Crystallographic Prototypes,\n"
        "# Part 1 (Mehl et al., Comp. Mat. Sci. 136, S1-S828 (2017), doi 10.1016/"
        "j.commatsci.2017.01.017), counted\n"
        "# from pymatgen's copy (pymatgen/analysis/prototypes/aflow_prototypes.json.gz): "
        f"{sum(counts.values())} prototypes\n"
        f"# in {len(counts)} space groups. A proxy for how space groups occur in inorganic "
        "structure databases: no\n"
        "# per-group ICSD table was found in the stored public sources (the AFLOW tutorial "
        "'Space Group\n"
        "# Distribution' states Pnma, #62, is the most populated ICSD group at 7.6 %). "
        "pseudo_count is added to\n"
        "# all 230 groups so that every group can occur. Regenerate with\n"
        "#   python -c 'from invdesign.data.build.synthetic_plan import weights_yaml; "
        "print(weights_yaml(), end=\"\")'\n"
    )
    body = yaml.safe_dump({"pseudo_count": PSEUDO_COUNT, "prototype_counts": counts},
                          sort_keys=False)
    return header + body
