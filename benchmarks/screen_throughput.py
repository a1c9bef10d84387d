"""Screening throughput against CHGNet single points, in one run, with the accuracy of each model.

Run: nice -n 10 python benchmarks/screen_throughput.py [--quick] [--labels WORK/data/excess]

1. Cells: 5-20-atom unit cells (CHILI-3K oxides and structure-type library examples), cells per
   second of the shipped property model (`checkpoints/property-default` through
   `FormationEnergyEvaluator`) and of CHGNet single points (`ChgnetReference(relax=False)`).
   Accuracy on the model's held-aside cells (the 5-20-atom unit cells of the groups its
   config.json lists as held out) against CHGNet: its label recipe (FIRE-relaxed, fmax 0.1 eV/Å,
   <= 150 steps) and the single point.
2. Particles: 1,000-10,000-atom particles cut with the reference recipe
   (`invdesign.physics.cutter`), atoms per second of the particle excess-energy model
   (`checkpoints/particle-excess` through `ParticleExcessEvaluator`) and of CHGNet single points
   (particles above `--chgnet-max-atoms` skipped with the reason: CHGNet's angle graph makes its
   time and memory grow faster than the atom count). Accuracy against CHGNet on the particles CHGNet
   took in this run (excess = E_f(particle) - E_f(bulk cell), both single points) and, with
   `--labels`, on the checkpoint's held-aside particles (13-2,000 atoms; ids in its config.json).

Prints a table and writes benchmarks/results/screen_throughput.json (atomically). Timings are wall
clock on whatever else the machine runs; `--threads` sets torch's threads for every model.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from invdesign.core.structure import Structure
from invdesign.crystals import crystal_types as ct
from invdesign.crystals.library import builtin_types
from invdesign.evaluators.property.evaluator import FormationEnergyEvaluator
from invdesign.evaluators.property.excess import (
    KEY,
    ParticleExcessEvaluator,
    default_excess_checkpoint,
)
from invdesign.evaluators.property.reference import ChgnetReference
from invdesign.io.atomic import atomic_write_text
from invdesign.physics.cutter import cut_particles, default_metals

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "screen_throughput.json"
# materials of the particle part (library examples); sizes are atom-count targets
PARTICLE_MATERIALS = ("fcc", "rocksalt", "wurtzite")
PARTICLE_SIZES = (1000, 2000, 5000, 10000)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def mae(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.mean(np.abs(a[ok] - b[ok]))) if ok.any() else math.nan


# ----------------------------------------------------------------------------- cells
def cell_pool(n: int, seed: int) -> list[Structure]:
    """Seeded 5-20-atom unit cells: CHILI-3K (type x metal) and library examples."""
    pool = [ct.unit_cell(t, m) for t in ct.CRYSTAL_TYPES for m in ct.CHILI3K_METALS]
    pool += [t.cell() for t in builtin_types()]
    pool = [c for c in pool if 5 <= c.n_atoms <= 20]
    pick = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[k] for k in pick]


def held_aside_cells(checkpoint: Path) -> list[Structure]:
    """The property model's held-out CHILI-3K groups that are 5-20-atom unit cells."""
    groups = json.loads((checkpoint / "config.json").read_text()).get("heldout_groups", [])
    cells = []
    for g in groups:
        name, _, metal = g.rpartition("_")
        if name in ct.CRYSTAL_TYPES:
            cell = ct.unit_cell(name, metal)
            if 5 <= cell.n_atoms <= 20:
                cells.append(cell)
    return cells


def bench_cells(args) -> dict:
    checkpoint = ROOT / "checkpoints" / "property-default"
    model = FormationEnergyEvaluator(checkpoint)
    chgnet = ChgnetReference(relax=False, batch_size=16)
    pool = cell_pool(args.cells, args.seed)
    model.evaluate(pool[:2])  # warm-up: lazy imports, first allocation
    chgnet.evaluate(pool[:2])
    pred, t_model = timed(model.evaluate, pool)
    ref, t_chgnet = timed(chgnet.evaluate, pool)
    held = held_aside_cells(checkpoint)[: args.held_cells]
    held_pred = [r["formation_energy_per_atom"] for r in model.evaluate(held)]
    single = [r["formation_energy_per_atom"] for r in chgnet.evaluate(held)]
    relaxed_records, t_relax = timed(ChgnetReference(relax=True).evaluate, held)
    relaxed = [r["formation_energy_per_atom"] for r in relaxed_records]
    return {
        "n_cells": len(pool),
        "atoms": [int(min(c.n_atoms for c in pool)), int(max(c.n_atoms for c in pool))],
        "model_cells_per_s": len(pool) / t_model,
        "chgnet_cells_per_s": len(pool) / t_chgnet,
        "speedup": t_chgnet / t_model,
        "pool_mae_vs_chgnet_single_point": mae([r["formation_energy_per_atom"] for r in pred],
                                               [r["formation_energy_per_atom"] for r in ref]),
        "held_aside": {
            "n": len(held), "names": [c.info["name"] for c in held],
            "mae_vs_chgnet_relaxed": mae(held_pred, relaxed),
            "mae_vs_chgnet_single_point": mae(held_pred, single),
            "chgnet_relax_seconds": t_relax,
        },
    }


# ----------------------------------------------------------------------------- particles
def particle_set(sizes, materials) -> list[tuple[str, Structure, Structure]]:
    """(material, bulk cell, particle) for each material x target size, cut with the reference
    recipe at the radius holding about that many atoms."""
    types = {t.name: t for t in builtin_types()}
    out = []
    for name in materials:
        cell = types[name].cell()
        density = cell.n_atoms / abs(np.linalg.det(cell.cell))
        radii = [(3.0 * n / (4.0 * math.pi * density)) ** (1.0 / 3.0) for n in sizes]
        for particle in cut_particles(cell, radii, default_metals(cell)):
            out.append((f"{name}:{types[name].example}", cell, particle))
    return out


def held_aside_particles(labels: Path, config: dict) -> list[tuple[Structure, float]]:
    """(particle, CHGNet label) of the checkpoint's held-aside ids found in the label folder."""
    wanted = set(config.get("split", {}).get("held_aside_particles", []))
    out = []
    for path in sorted((labels / "materials").glob("*.json")):
        record = json.loads(path.read_text())
        for p in record["particles"]:
            if f"{record['id']}#{p['n_atoms']}" in wanted and p["status"] == "ok":
                wanted.discard(f"{record['id']}#{p['n_atoms']}")
                out.append((Structure(p["species"], p["positions"]),
                            float(p["particle_excess_energy_per_atom"])))
    return out


def bench_particles(args) -> dict:
    model = ParticleExcessEvaluator(args.excess_checkpoint)
    chgnet = ChgnetReference(relax=False, max_atoms=args.chgnet_max_atoms, batch_size=1)
    sizes = PARTICLE_SIZES[::2] if args.quick else PARTICLE_SIZES
    materials = PARTICLE_MATERIALS[:2] if args.quick else PARTICLE_MATERIALS
    items = particle_set(sizes, materials)
    model.evaluate([items[0][2]])  # warm-up
    rows, bulk_ef = [], {}
    for material, cell, particle in items:
        if material not in bulk_ef:
            bulk_ef[material] = chgnet.evaluate([cell])[0]["formation_energy_per_atom"]
        (rec,), t_model = timed(model.evaluate, [particle])
        (ref,), t_chgnet = timed(chgnet.evaluate, [particle])
        ran = ref["status"] == "ok"
        rows.append({
            "material": material, "n_atoms": particle.n_atoms,
            "model_seconds": t_model, "model_excess": rec[KEY], "model_status": rec["status"],
            "chgnet_seconds": t_chgnet if ran else None, "chgnet_status": ref["status"],
            "chgnet_excess": ref["formation_energy_per_atom"] - bulk_ef[material]
            if ran else None,
        })
        print(f"  {material:28s} {particle.n_atoms:6d} atoms: model {t_model:6.2f} s "
              f"{rec[KEY]:+.4f} eV/atom; CHGNet "
              + (f"{t_chgnet:6.1f} s {rows[-1]['chgnet_excess']:+.4f} eV/atom" if ran
                 else ref["status"]), flush=True)
    ok = [r for r in rows if r["model_status"] == "ok"]
    ran = [r for r in rows if r["chgnet_seconds"] is not None]
    model_rate = sum(r["n_atoms"] for r in ok) / sum(r["model_seconds"] for r in ok)
    model_rate_same = (sum(r["n_atoms"] for r in ran) / sum(r["model_seconds"] for r in ran)
                       if ran else math.nan)
    chgnet_rate = (sum(r["n_atoms"] for r in ran) / sum(r["chgnet_seconds"] for r in ran)
                   if ran else math.nan)
    out = {
        "particles": rows,
        "model_atoms_per_s": model_rate,
        "model_atoms_per_s_on_chgnet_particles": model_rate_same,
        "chgnet_atoms_per_s": chgnet_rate,
        "speedup_same_particles": model_rate_same / chgnet_rate,
        "mae_vs_chgnet_this_run": mae([r["model_excess"] for r in ran],
                                      [r["chgnet_excess"] for r in ran]),
        "n_chgnet_this_run": len(ran),
    }
    labels = args.labels
    if labels is not None and (labels / "materials").is_dir():
        held = held_aside_particles(labels, model.config)
        records = model.evaluate([p for p, _ in held])
        pred = [r[KEY] for r in records]
        y = [label for _, label in held]
        n = [p.n_atoms for p, _ in held]
        out["held_aside"] = {"n": len(held), "atoms": [min(n), max(n)],
                             "mae_vs_chgnet": mae(pred, y),
                             "n_predicted": int(sum(r["status"] == "ok" for r in records))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cells and particles")
    parser.add_argument("--labels", type=Path, default=None,
                        help="label folder of tools/make_excess_labels.py (held-aside particles)")
    parser.add_argument("--excess-checkpoint", type=Path, default=default_excess_checkpoint())
    parser.add_argument("--chgnet-max-atoms", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.cells = 40 if args.quick else 150
    args.held_cells = 6 if args.quick else 16
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print("cells ...", flush=True)
    cells = bench_cells(args)
    print("particles ...", flush=True)
    particles = bench_particles(args)
    result = {"quick": args.quick, "threads": args.threads, "machine": platform.machine(),
              "cpus": torch.get_num_threads(), "seconds": time.perf_counter() - start,
              "cells": cells, "particles": particles}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1))

    c, p = cells, particles
    cell_label = f"cells/s, {c['n_cells']} cells of {c['atoms'][0]}-{c['atoms'][1]} atoms"
    lines = [
        "",
        f"{'what':44s} {'model':>12s} {'CHGNet':>12s} {'ratio':>8s}",
        f"{cell_label:44s}"
        f" {c['model_cells_per_s']:12.1f} {c['chgnet_cells_per_s']:12.1f} {c['speedup']:8.1f}",
        f"{'atoms/s, particles CHGNet took':44s} {p['model_atoms_per_s_on_chgnet_particles']:12.0f}"
        f" {p['chgnet_atoms_per_s']:12.0f} {p['speedup_same_particles']:8.1f}",
        f"{'atoms/s, all ' + str(len(p['particles'])) + ' particles (model)':44s}"
        f" {p['model_atoms_per_s']:12.0f}",
        "",
        "accuracy (eV/atom, MAE against CHGNet)",
        f"  formation energy, {c['held_aside']['n']} held-aside cells: "
        f"{c['held_aside']['mae_vs_chgnet_relaxed']:.4f} vs relaxed (label recipe), "
        f"{c['held_aside']['mae_vs_chgnet_single_point']:.4f} vs single point",
        f"  particle excess, {p['n_chgnet_this_run']} particles of this run CHGNet took: "
        f"{p['mae_vs_chgnet_this_run']:.4f}",
    ]
    if "held_aside" in p:
        h = p["held_aside"]
        lines.append(f"  particle excess, {h['n']} held-aside particles of {h['atoms'][0]}-"
                     f"{h['atoms'][1]} atoms: {h['mae_vs_chgnet']:.4f} "
                     f"({h['n_predicted']} predicted)")
    lines.append(f"\nwrote {args.out} ({result['seconds']:.0f} s)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
