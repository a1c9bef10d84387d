"""Formation-energy reference: (1) the CHGNet recipe against experimental formation enthalpies of
simple oxides built with ase (pymatgen's bundled exp_compounds.json.gz, eV per formula unit), and
(2) the default property GNN against the recipe on its held-out label groups; structures per second
for both.

Run: nice -n 10 python benchmarks/formation_energy_reference.py [--checkpoint
checkpoints/property-default] Target: recipe MAE <= 0.1 eV/atom on >= 20 oxides (after a brief FIRE
relaxation, fmax 0.05, <= 150 steps).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.spacegroup import crystal

from invdesign.core.structure import Structure
from invdesign.evaluators.property.reference import ChgnetReference

ROOT = Path(__file__).resolve().parents[1]


def _metal(formula: str) -> str:
    return re.match(r"[A-Z][a-z]?", formula).group()


def oxides() -> dict[str, Structure]:
    """~30 simple oxides at experimental lattice parameters (Å), ase builders / ase.spacegroup."""
    out = {}
    rocksalt = {
        "MgO": 4.21,
        "CaO": 4.81,
        "SrO": 5.16,
        "BaO": 5.52,
        "NiO": 4.18,
        "CoO": 4.26,
        "MnO": 4.44,
        "FeO": 4.33,
        "CdO": 4.70,
    }
    for f, a in rocksalt.items():
        out[f] = bulk(f, "rocksalt", a=a)
    for f, (a, c) in {"ZnO": (3.25, 5.21), "BeO": (2.70, 4.38)}.items():
        out[f] = bulk(f, "wurtzite", a=a, c=c)
    for f, a in {"ZrO2": 5.07, "CeO2": 5.41, "ThO2": 5.60, "HfO2": 5.08, "UO2": 5.47}.items():
        out[f] = bulk(f, "fluorite", a=a)
    for metal, a in {"Li": 4.61, "Na": 5.55, "K": 6.44}.items():
        out[f"{metal}2O"] = crystal(
            [metal, "O"],
            [(0.25, 0.25, 0.25), (0, 0, 0)],
            spacegroup=225,
            cellpar=[a, a, a, 90, 90, 90],
            primitive_cell=True,
        )
    rutile = {
        "TiO2": (4.59, 2.96, 0.305),
        "SnO2": (4.74, 3.19, 0.307),
        "MnO2": (4.40, 2.87, 0.305),
        "GeO2": (4.40, 2.86, 0.307),
        "RuO2": (4.49, 3.11, 0.306),
    }
    for f, (a, c, u) in rutile.items():
        out[f] = crystal(
            [_metal(f), "O"], [(0, 0, 0), (u, u, 0)], spacegroup=136, cellpar=[a, a, c, 90, 90, 90]
        )
    corundum = {
        "Al2O3": (4.76, 12.99, 0.352, 0.306),
        "Cr2O3": (4.96, 13.59, 0.348, 0.306),
        "Fe2O3": (5.04, 13.75, 0.355, 0.306),
        "V2O3": (4.95, 14.00, 0.346, 0.312),
    }
    for f, (a, c, z, x) in corundum.items():
        out[f] = crystal(
            [_metal(f), "O"],
            [(0, 0, z), (x, 0, 0.25)],
            spacegroup=167,
            cellpar=[a, a, c, 90, 90, 120],
            primitive_cell=True,
        )
    for f, a in {"SrTiO3": 3.905, "BaTiO3": 4.00, "CaTiO3": 3.84}.items():
        out[f] = crystal(
            [_metal(f), "Ti", "O"],
            [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)],
            spacegroup=221,
            cellpar=[a, a, a, 90, 90, 90],
        )
    return {f: Structure.from_ase(atoms) for f, atoms in out.items()}


def experimental() -> dict[str, float]:
    source = resources.files("pymatgen.analysis.compatibility") / "exp_compounds.json.gz"
    with gzip.open(source) as handle:
        return {row["formula"]: row["exp energy"] for row in json.load(handle)}


def atoms_per_formula(formula: str) -> int:
    from pymatgen.core import Composition

    return int(Composition(formula).num_atoms)


def recipe_vs_experiment(fmax: float, steps: int) -> None:
    structures, exp = oxides(), experimental()
    names = [f for f in structures if f in exp]
    reference = ChgnetReference(relax=True, fmax=fmax, steps=steps)
    reference.evaluate([structures[names[0]]])  # load CHGNet outside the timing
    t0 = time.time()
    records = reference.evaluate([structures[f] for f in names])
    seconds = time.time() - t0
    errors = []
    print(f"{'oxide':8s} {'CHGNet':>8s} {'exp':>8s} {'error':>7s} steps  (eV/atom)")
    for f, rec in zip(names, records, strict=True):
        target = exp[f] / atoms_per_formula(f)
        errors.append(rec["formation_energy_per_atom"] - target)
        print(
            f"{f:8s} {rec['formation_energy_per_atom']:8.3f} {target:8.3f} {errors[-1]:+7.3f} "
            f"{rec['relax_steps']:5d}"
        )
    errors = np.array(errors)
    worst = names[int(np.argmax(np.abs(errors)))]
    print(
        f"CHGNet recipe vs experiment: {len(names)} oxides, "
        f"MAE {np.abs(errors).mean():.3f} eV/atom, "
        f"worst {worst} {errors.max(initial=0):+.3f}/{errors.min(initial=0):+.3f}; relaxed FIRE "
        f"fmax {fmax} <= {steps} steps; {len(names) / seconds:.2f} structures/s"
    )


def gnn_vs_recipe(checkpoint: Path, n_timing: int) -> None:
    from invdesign.evaluators.property.checkpoint import load_property_checkpoint
    from invdesign.evaluators.property.data import read_property_csv

    predictor = load_property_checkpoint(checkpoint)
    labels = Path(predictor.info["labels"])
    if not labels.is_file():
        print(f"label set {labels} absent: skipping the GNN comparison")
        return
    data = read_property_csv(labels)
    held = set(predictor.info["heldout_groups"])
    index = [i for i, g in enumerate(data.extra["group"]) if g in held]
    structures = [data.structures[i] for i in index]
    t0 = time.time()
    pred = predictor.predict(structures)
    gnn_rate = len(structures) / (time.time() - t0)
    err = np.abs(pred - data.targets[index])
    kinds = np.array([data.extra["kind"][i] for i in index])
    by_kind = ", ".join(
        f"{k} {err[kinds == k].mean():.3f} (n={int((kinds == k).sum())})"
        for k in sorted(set(kinds))
    )
    relaxed = any(int(data.extra["relax_steps"][i]) > 0 for i in index)
    ChgnetReference(relax=relaxed).evaluate(structures[:1])  # load CHGNet outside the timing
    t0 = time.time()
    ChgnetReference(relax=relaxed).evaluate(structures[:n_timing])
    recipe_rate = min(n_timing, len(structures)) / (time.time() - t0)
    print(
        f"default GNN vs CHGNet recipe ({'relaxed' if relaxed else 'unrelaxed'}) on "
        f"{len(index)} held-out structures "
        f"({len(held)} held-out groups of {labels.name}): MAE {err.mean():.3f} eV/atom; {by_kind}"
    )
    print(
        f"throughput: GNN {gnn_rate:.1f} structures/s, CHGNet recipe {recipe_rate:.2f} "
        f"structures/s (first {n_timing} held-out), torch threads {torch.get_num_threads()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, default=ROOT / "checkpoints" / "property-default"
    )
    parser.add_argument("--fmax", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument(
        "--timing", type=int, default=20, help="held-out structures timed with CHGNet"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-oxides", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_oxides:
        recipe_vs_experiment(args.fmax, args.steps)
    if (args.checkpoint / "model.safetensors").is_file():
        gnn_vs_recipe(args.checkpoint, args.timing)
    else:
        print(f"no checkpoint at {args.checkpoint}: skipping the GNN comparison")


if __name__ == "__main__":
    main()
