"""The CHGNet formation-energy recipe on tiny cells (CHGNet ships its weights: runs offline)."""

from __future__ import annotations

import gzip
import json
import math
from importlib import resources

import numpy as np
from ase.build import bulk

from invdesign.core.structure import Structure
from invdesign.evaluators.base import evaluator_class
from invdesign.evaluators.property.reference import (
    ChgnetReference,
    elemental_references,
    reference_energy_per_atom,
)


def experimental_enthalpy_per_atom(formula: str, n_atoms: int) -> float:
    source = resources.files("pymatgen.analysis.compatibility") / "exp_compounds.json.gz"
    with gzip.open(source) as handle:
        table = {row["formula"]: row["exp energy"] for row in json.load(handle)}
    return table[formula] / n_atoms


def test_elemental_table_matches_pymatgen_entries():
    table = elemental_references()
    assert len(table) == 89
    source = resources.files("pymatgen.analysis.compatibility") / "calc_compounds.json.gz"
    with gzip.open(source) as handle:
        entry = json.load(handle)["Cu"]
    assert math.isclose(table["Cu"], entry["energy"] / entry["composition"]["Cu"], rel_tol=1e-12)
    mgo = Structure.from_ase(bulk("MgO", "rocksalt", a=4.21))
    assert math.isclose(reference_energy_per_atom(mgo), (table["Mg"] + table["O"]) / 2)


def test_mgo_formation_energy_is_close_to_experiment():
    mgo = Structure.from_ase(bulk("MgO", "rocksalt", a=4.21))
    record = ChgnetReference(relax=False).evaluate([mgo])[0]
    assert record["status"] == "ok"
    expected = experimental_enthalpy_per_atom("MgO", 2)  # about -3.1 eV/atom
    assert abs(record["formation_energy_per_atom"] - expected) < 0.2


def test_guards_skip_close_pairs_and_large_structures_with_a_reason():
    close = Structure([29, 29], [[0, 0, 0], [0.5, 0, 0]])
    many = Structure([29] * 5, np.arange(15).reshape(5, 3) * 2.0)
    records = ChgnetReference(max_atoms=4).evaluate([close, many])
    assert records[0]["status"].startswith("skipped: pair closer than 0.7")
    assert records[1]["status"].startswith("skipped: 5 atoms > max_atoms 4")
    assert all(math.isnan(r["formation_energy_per_atom"]) for r in records)


def test_registered_chgnet_evaluator_relaxes_a_particle_in_a_box():
    dimer = Structure([29, 29], [[0, 0, 0], [2.3, 0, 0]])
    record = evaluator_class("chgnet_formation_energy")(steps=20).evaluate([dimer])[0]
    assert record["chgnet_status"] == "ok"
    assert record["chgnet_formation_energy_per_atom"] > 0  # a Cu2 dimer is far above bulk Cu
