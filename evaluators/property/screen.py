"""Screening API: predict formation energies of candidate files, rank them, optionally check the
best with the CHGNet recipe, and write a CSV + plot.

Two numbers per candidate (`invdesign.evaluators.property.materials`):
`formation_energy_per_atom` of its material (eV/atom; a unit cell: itself; a particle cut from a
cell: that cell, found as the file `<stem>_cell.cif` or `<stem>_cell.xyz` beside it, the way
`invdesign sample` writes cut particles, also for `<stem>_refined.xyz`; a metallic packing
written by `sample`: the bulk lattice of its element(s) from the file's `source`, `shape` and
`nn`; any other particle: the prediction on the particle minus its excess energy;
`formation_energy_basis` says which) and `particle_excess_energy_per_atom` of a discrete particle
(eV/atom above its bulk; empty with `excess_status` saying why when the excess model or its
checkpoint is not installed, or for a particle above 20,000 atoms). Ranked by the first, then
the second.

`screen_folder(folder, ...) -> ScreenResult`; `write_screen_csv(result, out)`; `plot_screen(result,
png)`. Candidate files: *.cif (unit cells) and *.xyz / *.extxyz (particles, or unit cells when the
file has a lattice), found recursively. A file that cannot be read is listed with its reason and
skipped; a structure that is not a valid candidate (overlapping atoms, a particle of fewer than 2
atoms: `invdesign.core.geometry.invalid_reason`) is not predicted, ranked last with status
'invalid: reason'. A folder without any valid candidate is refused (`InvdesignError`).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from invdesign.core.errors import InvdesignError
from invdesign.core.geometry import invalid_reason
from invdesign.core.structure import Structure
from invdesign.core.validate import finite_in_range, int_in_range
from invdesign.io.atomic import atomic_path

SUFFIXES = (".cif", ".xyz", ".extxyz")
NO_PREDICTION = (
    "no prediction: the model's inputs cannot be computed for this structure "
    "(e.g. CHGNet refuses a pair closer than 0.7 Å)"
)
#: Status of a structure that is not predicted because it is not a valid candidate.
INVALID = "invalid: "
COLUMNS = (
    "rank",
    "file",
    "formula",
    "n_atoms",
    "formation_energy_per_atom",
    "formation_energy_basis",
    "particle_excess_energy_per_atom",
    "chgnet_formation_energy_per_atom",
    "status",
    "excess_status",
)


def read_candidate(path: str | os.PathLike) -> Structure:
    """One structure from a CIF or XYZ file; else `InvdesignError` naming file and reason."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix.lower() == ".cif":
                # lazy: heavy library, loaded on use (CLI start-up)
                from pymatgen.core import Structure as PmgStructure  # noqa: PLC0415

                structure = Structure.from_pymatgen(PmgStructure.from_file(path))
            else:
                # lazy: heavy library, loaded on use (CLI start-up)
                from ase.io import read  # noqa: PLC0415

                atoms = read(path, format="extxyz")
                periodic = bool(atoms.pbc.any()) and atoms.cell.volume > 1e-6
                structure = Structure.from_ase(atoms, kind="unit_cell" if periodic else "particle")
    except InvdesignError as exc:
        raise InvdesignError(exc.message, path) from exc
    except Exception as exc:  # every parser failure becomes one readable reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvdesignError(f"unreadable structure file ({reason})", path) from exc
    if structure.n_atoms == 0:
        raise InvdesignError("structure file holds no atoms", path)
    return structure


def source_cell(path: Path) -> Structure | None:
    """The unit cell a particle file was cut from, when `invdesign sample` wrote it beside the
    particle (`<stem>_cell.cif`, else `<stem>_cell.xyz`; a refined particle `<stem>_refined.xyz`
    shares its candidate's); None when there is none or it cannot be read as a unit cell."""
    stem = path.stem.removesuffix("_refined")
    for suffix in (".cif", ".xyz"):
        cell_file = path.with_name(f"{stem}_cell{suffix}")
        if cell_file.is_file():
            try:
                cell = read_candidate(cell_file)
            except InvdesignError:
                continue
            if cell.is_periodic:
                return cell
    return None


def _material(path: Path, structure: Structure) -> tuple[Structure | None, str]:
    """The material cell of a candidate file and its basis (see the module docstring)."""
    # lazy: heavy library, loaded on use (CLI start-up)
    from invdesign.evaluators.property.materials import (  # noqa: PLC0415
        BASIS_SOURCE,
        material_cell,
    )

    if not structure.is_periodic:
        cell = source_cell(path)
        if cell is not None:
            return cell, BASIS_SOURCE
    return material_cell(structure)


@dataclass
class ScreenResult:
    """rows: ranked candidates (COLUMNS keys); failures: (file, reason) of unreadable files;
    excess_missing: why no particle got an excess energy ('' when the excess model ran)."""

    rows: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    n_above_max: int = 0
    excess_missing: str = ""


def screen_folder(
    folder: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    max_ef: float | None = None,
    check: str | None = None,
    top: int = 10,
    device: str = "cpu",
    excess_checkpoint: str | os.PathLike | None = None,
) -> ScreenResult:
    """Rank the candidates under `folder` by the predicted formation energy of their material
    (lowest first), then a particle's predicted excess energy.

    Args:
        checkpoint: property checkpoint (None: checkpoints/property-default).
        max_ef: keep only candidates with predicted E_f <= max_ef (eV/atom).
        check: "chgnet" to add the relaxed CHGNet-recipe E_f of the `top` best-ranked candidates
            (of their material cell when known, else of the structure itself).
        excess_checkpoint: particle-excess checkpoint (None: the shipped one; when it is not
            installed the excess column stays empty and `excess_missing` says why).
    """
    # lazy: heavy library, loaded on use (CLI start-up)
    from invdesign.evaluators.property.evaluator import FormationEnergyEvaluator  # noqa: PLC0415

    # lazy: heavy library, loaded on use (CLI start-up)
    from invdesign.evaluators.property.materials import (  # noqa: PLC0415
        MaterialEnergies,
        load_excess,
    )

    if max_ef is not None:
        max_ef = finite_in_range(max_ef, "--max-ef", unit="eV/atom")
    top = int_in_range(top, "--top", 1)
    folder = Path(folder)
    if not folder.is_dir():
        raise InvdesignError("candidate folder not found", folder)
    if check not in (None, "chgnet"):
        raise InvdesignError(f"unknown --check {check!r}; the only check is 'chgnet'")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise InvdesignError(f"no {'/'.join(SUFFIXES)} files", folder)
    evaluator = FormationEnergyEvaluator(checkpoint, device=device)
    if excess_checkpoint is not None and not Path(excess_checkpoint).exists():
        raise InvdesignError("particle-excess checkpoint not found", excess_checkpoint)
    excess, excess_reason = load_excess(excess_checkpoint, device)
    if excess is None and excess_checkpoint is not None:  # asked for: its problem is an error
        raise InvdesignError(excess_reason, excess_checkpoint)
    energies = MaterialEnergies(evaluator, excess, excess_reason)
    result, structures, names, paths = ScreenResult(), [], [], []
    for path in files:
        try:
            structures.append(read_candidate(path))
            names.append(str(path.relative_to(folder)))
            paths.append(path)
        except InvdesignError as exc:
            result.failures.append((str(path.relative_to(folder)), exc.message))
    reasons = [invalid_reason(s, min_atoms=1 if s.is_periodic else 2) for s in structures]
    if structures and all(reasons):
        first = next(i for i, why in enumerate(reasons) if why)
        raise InvdesignError(f"no valid candidate to screen ({len(structures)} invalid; "
                             f"{names[first]}: {reasons[first]})", folder)
    if not structures:
        name, why = result.failures[0]
        raise InvdesignError(f"no readable candidate to screen ({name}: {why})", folder)
    valid = [i for i, why in enumerate(reasons) if why is None]
    found = {i: _material(paths[i], structures[i]) for i in valid}
    records = iter(energies.evaluate([structures[i] for i in valid], [found[i][0] for i in valid],
                                     [found[i][1] for i in valid]))
    rows = []
    for i, (name, s, why) in enumerate(zip(names, structures, reasons, strict=True)):
        rec = {} if why else next(records)
        energy = rec.get("formation_energy_per_atom", math.nan)
        status = INVALID + why if why else NO_PREDICTION if math.isnan(energy) else "ok"
        rows.append({
            "file": name,
            "formula": s.formula,
            "n_atoms": s.n_atoms,
            "formation_energy_per_atom": energy,
            "formation_energy_basis": rec.get("formation_energy_basis", ""),
            "particle_excess_energy_per_atom": rec.get("particle_excess_energy_per_atom",
                                                       math.nan),
            "chgnet_formation_energy_per_atom": math.nan,
            "status": status,
            "excess_status": rec.get("excess_status", ""),
            # the CHGNet check is of the material the prediction is for
            "_structure": found[i][0] if i in found and found[i][0] is not None else s,
        })
    if excess is None and any(not s.is_periodic for s in structures):
        result.excess_missing = excess_reason
    if max_ef is not None:  # rows without a prediction stay, ranked last
        kept = [r for r in rows if not r["formation_energy_per_atom"] > max_ef]
        result.n_above_max = len(rows) - len(kept)
        rows = kept
    rows.sort(key=_rank_key)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    if check == "chgnet" and rows:
        # lazy: heavy library, loaded on use (CLI start-up)
        from invdesign.evaluators.property.reference import ChgnetReference  # noqa: PLC0415

        best = [r for r in rows if r["status"] == "ok"][:top]
        for row, rec in zip(
            best, ChgnetReference(relax=True).evaluate([r["_structure"] for r in best]), strict=True
        ):
            row["chgnet_formation_energy_per_atom"] = rec["formation_energy_per_atom"]
            row["status"] = rec["status"]
    for row in rows:
        row.pop("_structure")
    result.rows = rows
    return result


def _rank_key(row: dict) -> tuple[float, float]:
    """Predicted E_f of the material (none last), then the excess energy (none last)."""
    energy, excess = row["formation_energy_per_atom"], row["particle_excess_energy_per_atom"]
    return (math.inf if math.isnan(energy) else energy,
            math.inf if math.isnan(excess) else excess)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def write_screen_csv(result: ScreenResult, out: str | os.PathLike) -> Path:
    """Ranked rows, then unreadable files (status 'unreadable: reason'); atomic write."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in result.rows:
            writer.writerow([_fmt(row[c]) for c in COLUMNS])
        for name, reason in result.failures:
            failed = {"file": name, "status": f"unreadable: {reason}"}
            writer.writerow([failed.get(c, "") for c in COLUMNS])
    return out


def plot_screen(result: ScreenResult, png: str | os.PathLike) -> Path:
    """Ranking plot (predicted E_f by rank) and, when checked, parity of prediction vs CHGNet."""
    import matplotlib  # noqa: PLC0415 - lazy: heavy library, loaded on use (CLI start-up)

    matplotlib.use("Agg")
    # lazy: heavy library, loaded on use (CLI start-up)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    checked = [r for r in result.rows if not math.isnan(r["chgnet_formation_energy_per_atom"])]
    fig, axes = plt.subplots(
        1, 2 if checked else 1, figsize=(10 if checked else 5.5, 4), squeeze=False
    )
    ranks = [r["rank"] for r in result.rows]
    axes[0, 0].plot(ranks, [r["formation_energy_per_atom"] for r in result.rows], "o-", ms=3)
    axes[0, 0].set(xlabel="rank", ylabel="predicted E_f (eV/atom)", title="ranking")
    if checked:
        x = [r["chgnet_formation_energy_per_atom"] for r in checked]
        y = [r["formation_energy_per_atom"] for r in checked]
        lo, hi = min(x + y), max(x + y)
        axes[0, 1].plot([lo, hi], [lo, hi], "k--", lw=1)
        axes[0, 1].scatter(x, y, s=15)
        axes[0, 1].set(
            xlabel="CHGNet recipe E_f (eV/atom)",
            ylabel="predicted E_f (eV/atom)",
            title=f"parity, top {len(checked)}",
        )
    fig.tight_layout()
    png = Path(png)
    try:
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return png
