"""CHGNet labels for the particle excess-energy model: particles of 13..2,000 atoms cut from unit
cells.

    nice -n 10 python tools/make_excess_labels.py --out WORK/data/excess [--threads 2] [--seed 0]
    nice -n 10 python tools/make_excess_labels.py --out WORK/data/excess --extra 6 --band small

Materials (seeded, diverse): the example compound of every type of the structure-type library
(`invdesign.crystals.library`, 94 types: metals, oxides, chalcogenides, halides, nitrides,
intermetallics), a seeded subset of CHILI-3K oxide cells (`crystal_types.unit_cell`, `--chili` per
type) and fcc/bcc/hcp cells of `--metals`. Each cell is cut with the reference recipe
(`invdesign.physics.cutter.cut_particles`, DebyeCalculator's `generate_nanoparticles` as CHILI does,
the cell's metal species as metals) at radii chosen for seeded target sizes: one small
(13..120 atoms), one medium (120..600) and, for a seeded `--large-fraction` of the materials, one
large (600..2,000) particle. `--extra N --band small|medium|large` then adds N seeded cuts of one
band to every labelled material file (new atom counts only), `--chili-more K` adds K CHILI-3K
metals per crystal type (a separate draw: the first `--chili` stay).

Label (eV/atom): particle_excess_energy_per_atom = E_f(particle) - E_f(bulk cell), both the CHGNet
formation-energy recipe of `evaluators/property/reference.py` (E/n - sum_i x_i mu_i; single points,
no relaxation; the particle in its 10 Å vacuum box). Forming E_f on each side keeps
off-stoichiometric cuts meaningful. CHGNet's per-site energies are kept too (their mean is E/n),
so per-atom targets site_i - mu_i - E_f(bulk) average exactly to the label.

Guards (recorded as the particle's `status`, never silently dropped): fewer than 13 or more than
`--max-atoms` atoms, a pair closer than 0.7 Å, an element without an MP reference energy, a CHGNet
failure (out of memory included).

Output: one JSON per material in OUT/materials/<id>.json (written atomically), so a rerun skips
finished materials (resumable) and an interrupted run loses one material at most; timings go to
OUT/log.txt and each particle's `chgnet_seconds`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals import crystal_types as ct
from invdesign.crystals.library import builtin_types, radius_scale, scaled
from invdesign.evaluators.property.reference import (
    ChgnetReference,
    _chgnet,
    _to_periodic_pymatgen,
    reference_energy_per_atom,
)
from invdesign.io.atomic import atomic_write_text
from invdesign.physics.cutter import cut_particles, default_metals

MIN_ATOMS = 13
SIZE_BANDS = ((13, 120), (120, 600), (600, 2000))  # target atom counts: small, medium, large
METALS = "Pt,Au,Ag,Cu,Pd,Ni,Al,Fe,W,Mo,Co,Ti,Zr,Mg,Zn,Cr"


def materials(args) -> list[dict]:
    """Every material as {id, source, structure_type, cell}; ids are stable across runs."""
    out = []
    for stype in builtin_types():
        out.append({"id": f"lib_{stype.name}", "source": "library",
                    "structure_type": stype.name, "cell": stype.cell()})
    rng = np.random.default_rng(args.seed)
    more = np.random.default_rng([args.seed, 7])  # `--chili-more`: leaves the first draw as it was
    for name in ct.CRYSTAL_TYPES:
        first = [str(m) for m in rng.choice(ct.CHILI3K_METALS, size=args.chili, replace=False)]
        rest = [str(m) for m in ct.CHILI3K_METALS if str(m) not in first]
        extra = more.choice(rest, size=min(args.chili_more, len(rest)), replace=False)
        for metal in [*first, *(str(m) for m in extra)]:
            out.append({"id": f"chili_{name}_{metal}", "source": "chili3k", "structure_type": name,
                        "cell": ct.unit_cell(name, metal)})
    lattices = {t.name: t for t in builtin_types() if t.name in ("fcc", "bcc", "hcp")}
    for metal in args.metals.split(","):
        z = elements.atomic_number(metal)
        for name, stype in lattices.items():
            assignment = {role: z for role in stype.roles}
            cell = scaled(stype.cell(assignment), radius_scale(stype, assignment))
            out.append({"id": f"metal_{name}_{metal}", "source": "metal", "structure_type": name,
                        "cell": cell})
    return out


def target_sizes(material_id: str, seed: int, large_fraction: float) -> list[int]:
    """Seeded target atom counts for one material (log-uniform in each size band)."""
    rng = np.random.default_rng([seed, *material_id.encode()])
    bands = SIZE_BANDS[:2] + (SIZE_BANDS[2:] if rng.random() < large_fraction else ())
    return [int(round(math.exp(rng.uniform(math.log(lo), math.log(hi))))) for lo, hi in bands]


def radius_for(cell: Structure, n_atoms: int) -> float:
    """Sphere radius (Å) holding about `n_atoms` atoms at the cell's number density."""
    density = cell.n_atoms / abs(np.linalg.det(cell.cell))
    return float((3.0 * n_atoms / (4.0 * math.pi * density)) ** (1.0 / 3.0))


def _structure_json(s: Structure) -> dict:
    return {"species": s.species.tolist(), "positions": np.round(s.positions, 6).tolist(),
            "cell": None if s.cell is None else s.cell.tolist()}


def chgnet_particle(particle: Structure, guard: ChgnetReference) -> dict:
    """CHGNet single point of a particle in its vacuum box: E_f, E/n, site energies, or a status."""
    row = {"status": "ok", "n_atoms": particle.n_atoms}
    if particle.n_atoms < MIN_ATOMS:
        return {**row, "status": f"skipped: {particle.n_atoms} atoms < {MIN_ATOMS}"}
    problem = guard._check(particle)  # noqa: SLF001 - the reference recipe's own guards
    if problem:
        return {**row, "status": problem}
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            pred = _chgnet().predict_structure(
                _to_periodic_pymatgen(particle), task="e", return_site_energies=True)
    except (RuntimeError, MemoryError) as exc:  # torch reports out-of-memory as RuntimeError
        return {**row, "status": f"skipped: CHGNet failed ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:120]})"}
    energy = float(np.asarray(pred["e"]).reshape(-1)[0])
    sites = np.asarray(pred["site_energies"], dtype=np.float64).reshape(-1)
    return {**row, "energy_per_atom": energy,
            "formation_energy_per_atom": energy - reference_energy_per_atom(particle),
            "site_energies": np.round(sites, 6).tolist(),
            "chgnet_seconds": round(time.perf_counter() - start, 3)}


def label_material(mat: dict, args, guard: ChgnetReference) -> dict:
    cell: Structure = mat["cell"]
    bulk = guard.evaluate([cell])[0]
    record = {"id": mat["id"], "source": mat["source"], "structure_type": mat["structure_type"],
              "formula": cell.formula, "bulk": {**_structure_json(cell),
                                                "formation_energy_per_atom":
                                                    bulk["formation_energy_per_atom"],
                                                "energy_per_atom": bulk["energy_per_atom"],
                                                "status": bulk["status"]},
              "particles": []}
    if bulk["status"] != "ok":
        return record
    sizes = target_sizes(mat["id"], args.seed, args.large_fraction)
    radii = sorted({round(radius_for(cell, n), 3) for n in sizes})
    try:
        particles = cut_particles(cell, radii, default_metals(cell))
    except (InvdesignError, RuntimeError) as exc:
        record["cut_status"] = f"cut failed: {exc}"
        return record
    for particle in particles:
        row = chgnet_particle(particle, guard)
        row["radius"] = particle.info["radius"]
        if row["status"] == "ok":
            row["particle_excess_energy_per_atom"] = (
                row["formation_energy_per_atom"] - bulk["formation_energy_per_atom"])
        record["particles"].append({**row, **_structure_json(particle)})
    return record


BAND_SALT = {"small": 1, "medium": 2, "large": 3}  # seed salts of `--extra` cuts per band


def add_cuts(folder: Path, args, guard: ChgnetReference, start: float) -> None:
    """Add `--extra` seeded cuts of `--band` (target atom counts log-uniform in the band) to every
    labelled material file in `folder` (the cell is read back from the file, so any earlier
    material list works). A file records `extra_<band>` = the number asked for; a rerun skips files
    that have it (resumable), and a cut with an atom count the file already has is not labelled
    twice (DebyeCalculator's cuts are nested shells around one central metal)."""
    lo, hi = SIZE_BANDS[("small", "medium", "large").index(args.band)]
    key = f"extra_{args.band}"
    paths = sorted(folder.glob("*.json"))
    for k, path in enumerate(paths):
        record = json.loads(path.read_text())
        if record.get(key, 0) >= args.extra or record["bulk"]["status"] != "ok":
            continue
        if args.budget_minutes and time.perf_counter() - start > 60 * args.budget_minutes:
            print(f"budget of {args.budget_minutes:g} min reached; rerun to continue", flush=True)
            break
        rng = np.random.default_rng([args.seed, BAND_SALT[args.band], *record["id"].encode()])
        sizes = np.exp(rng.uniform(math.log(lo), math.log(hi), size=args.extra))
        b = record["bulk"]
        cell = Structure(b["species"], b["positions"], b["cell"], "unit_cell")
        radii = sorted({round(radius_for(cell, int(round(n))), 3) for n in sizes})
        done = {p["n_atoms"] for p in record["particles"]}
        added = []
        try:
            particles = cut_particles(cell, radii, default_metals(cell))
        except (InvdesignError, RuntimeError) as exc:
            particles = []
            record[f"{key}_status"] = f"cut failed: {exc}"
        for particle in particles:
            if particle.n_atoms in done:  # the same cut as an earlier radius
                continue
            done.add(particle.n_atoms)
            row = chgnet_particle(particle, guard)
            row["radius"] = particle.info["radius"]
            row["extra"] = args.band
            if row["status"] == "ok":
                row["particle_excess_energy_per_atom"] = (
                    row["formation_energy_per_atom"] - b["formation_energy_per_atom"])
            record["particles"].append({**row, **_structure_json(particle)})
            added.append((particle.n_atoms, row["status"][:40]))
        record[key] = args.extra
        atomic_write_text(path, json.dumps(record))
        print(f"{k + 1}/{len(paths)} {record['id']} extra {args.band} {added} total "
              f"{time.perf_counter() - start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="data folder (outside the repo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chili", type=int, default=4, help="CHILI-3K metals per crystal type")
    parser.add_argument("--metals", default=METALS, help="metals for fcc/bcc/hcp cells")
    parser.add_argument("--large-fraction", type=float, default=0.3,
                        help="share of materials that also get a 600..2,000-atom particle")
    parser.add_argument("--max-atoms", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=0, help="label at most this many materials")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chili-more", type=int, default=0,
                        help="CHILI-3K metals per crystal type beyond --chili (a separate seeded "
                             "draw: the first --chili stay the same)")
    parser.add_argument("--extra", type=int, default=0,
                        help="instead of new materials: add this many seeded cuts of --band to "
                             "every labelled material file (a rerun skips files that have them)")
    parser.add_argument("--band", choices=("small", "medium", "large"), default="small",
                        help="size band of --extra cuts: 13..120, 120..600 or 600..2,000 atoms")
    parser.add_argument("--budget-minutes", type=float, default=0,
                        help="stop starting new materials after this long (0: no limit)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = args.out / "materials"
    folder.mkdir(parents=True, exist_ok=True)
    guard = ChgnetReference(relax=False, max_atoms=args.max_atoms, batch_size=1)
    todo = materials(args)
    order = np.random.default_rng(args.seed).permutation(len(todo))  # a partial run is diverse
    todo = [todo[i] for i in order][: args.limit or None]
    start = time.perf_counter()
    if args.extra:
        add_cuts(folder, args, guard, start)
        return
    with open(args.out / "log.txt", "a") as log:
        for k, mat in enumerate(todo):
            path = folder / f"{mat['id']}.json"
            if path.exists():
                continue
            if args.budget_minutes and time.perf_counter() - start > 60 * args.budget_minutes:
                print(f"budget of {args.budget_minutes:g} min reached; rerun to continue",
                      flush=True)
                break
            t0 = time.perf_counter()
            record = label_material(mat, args, guard)
            record["seconds"] = round(time.perf_counter() - t0, 2)
            atomic_write_text(path, json.dumps(record))
            sizes = [(p["n_atoms"], p["status"][:40]) for p in record["particles"]]
            line = (f"{k + 1}/{len(todo)} {mat['id']} {record['formula']} {record['seconds']} s "
                    f"total {time.perf_counter() - start:.0f} s particles {sizes}")
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()


if __name__ == "__main__":
    try:
        main()
    except InvdesignError as exc:
        sys.exit(f"invdesign: error: {exc}")
