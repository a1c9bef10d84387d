"""A CHILI-100K-like set made here: synthetic crystals, the structure-type library, perov5 cells.

Sources (`--sources`, default all that need no file: synthetic and library):
- synthetic: `--n` cells planned from `--seed` (`synthetic_plan`: space groups weighted by AFLOW
  prototype counts, charge-balanced oxides, chalcogenides, halides, nitrides and intermetallics, at
  most 20 atoms per cell), placed with pyxtal, scaled to radius-based volumes and briefly relaxed
  with CHGNet (`synthetic_relax`); cells that fall apart or keep rising in energy are rejected with
  their reason;
- library: the 94 types of `invdesign.crystals.library` with their example compounds and lattices;
- perov5: the cells of a perov5 CSV (`--perov5-csv`, a `cif` column of CIF strings).

One unit of work (`build_synthetic_source`) turns one cell into one file in the official CHILI
layout (particles of `--radii`, the patterns of `--patterns`); it depends only on its task (each
synthetic task carries its own seed), so the files are the same for any worker count or order.
Duplicates: repeated (space group, composition) draws are dropped at planning time; after the build
a deterministic pass (`remove_duplicates`) compares the written cells of equal composition with
pymatgen's StructureMatcher (`invdesign.crystals.dedup.same_structure`), in task order, keeps the
first of each group, deletes the others' files and lists them in `duplicates.tsv`, so a resumed
build does not make them again.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PATTERNS
from invdesign.core.structure import Structure
from invdesign.data.build import rejections
from invdesign.data.build.chili3k import CHILI_RADII, check_radii
from invdesign.data.build.cifs import LIGAND_NUMBERS, METAL_NUMBERS
from invdesign.data.build.record import make_record
from invdesign.data.build.runner import (
    REPORT_NAME,
    BuildSummary,
    Outcome,
    output_path,
    run_tasks,
    write_report,
)
from invdesign.data.build.synthetic_plan import MAX_ATOMS, CellPlan, plan_compositions
from invdesign.data.hdf5_io import read_chili_file, write_chili_file
from invdesign.data.layout import size_key
from invdesign.io.atomic import atomic_write_text

SOURCES: tuple[str, ...] = ("synthetic", "library", "perov5")
DEFAULT_SOURCES: tuple[str, ...] = ("synthetic", "library")
RELAX_STEPS = 30
MAX_RELAX_STEPS = 2000
MAX_N = 1_000_000
DUPLICATES_NAME = "duplicates.tsv"


@dataclass(frozen=True)
class SyntheticSource:
    """One cell to build (picklable; a pure description of the work).

    Attributes:
        name: file stem.
        origin: 'synthetic', 'library' or 'perov5'.
        plan: the planned synthetic cell (origin 'synthetic').
        library_type: structure-type name (origin 'library').
        cif: CIF text (origin 'perov5').
        crystal_type: CHILI crystal-type label ('Unknown' unless a CHILI-3K type).
        radii: particle radii in Å.
        patterns: CHILI pattern names to simulate (empty: graphs only).
        relax_steps: CHGNet steps cap for synthetic cells (0: no relaxation).
        fmax: relaxation force threshold, eV/Å.
        device: torch device for cutting and simulation.
    """

    name: str
    origin: str
    plan: CellPlan | None = None
    library_type: str = ""
    cif: str = ""
    crystal_type: str = "Unknown"
    radii: tuple[float, ...] = CHILI_RADII
    patterns: tuple[str, ...] = tuple(PATTERNS)
    relax_steps: int = RELAX_STEPS
    fmax: float = 0.1
    device: str = "cpu"


# ----------------------------------------------------------------------------- unit of work
def source_cell(source: SyntheticSource) -> Structure:
    """The unit cell of a source (synthetic cells placed and relaxed; InvdesignError on refusal)."""
    if source.origin == "synthetic":
        # lazy: pyxtal and CHGNet load only in the processes that build synthetic cells
        from invdesign.data.build.synthetic_relax import make_cell  # noqa: PLC0415

        assert source.plan is not None
        return make_cell(source.plan, source.relax_steps, source.fmax)
    if source.origin == "library":
        return _library_types()[source.library_type].cell()
    if source.origin == "perov5":
        return _cell_from_cif(source.cif, source.name)
    raise InvdesignError(f"unknown source {source.origin!r}; choose from {', '.join(SOURCES)}")


def build_synthetic_source(source: SyntheticSource, out_dir: Path) -> Outcome:
    """Build one file `out_dir/<name>.h5` (atomic write). Pure function of `source`."""
    # lazy: threadpoolctl only matters in the worker
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    # One BLAS thread: the cell filter's tiny matrix functions (scipy expm/logm) otherwise spin
    # BLAS threads and ran 5x slower on a busy 2-core machine (measured).
    with threadpool_limits(limits=1):
        return _build(source, out_dir)


def _build(source: SyntheticSource, out_dir: Path) -> Outcome:
    """`_make`, remembering a refusal (`rejections`) so a resumed build skips it."""
    try:
        outcome = _make(source, out_dir)
    except InvdesignError as exc:
        rejections.record(out_dir, source.name, rejections.fingerprint(source), str(exc))
        raise
    rejections.forget(out_dir, source.name)
    return outcome


def _make(source: SyntheticSource, out_dir: Path) -> Outcome:
    # lazy: the cutter loads DebyeCalculator (torch)
    from invdesign.physics.cutter import cut_particles  # noqa: PLC0415

    cell = source_cell(source)
    if not set(cell.species.tolist()) & set(METAL_NUMBERS):
        raise InvdesignError(f"{cell.formula} holds none of CHILI-100K's metals")
    particles = cut_particles(cell, source.radii, metals=METAL_NUMBERS, ligands=LIGAND_NUMBERS,
                              device=source.device)
    if not particles:
        raise InvdesignError("every particle radius gives a single atom")
    record = make_record(source.name, cell, particles, source.crystal_type, simulate=False)
    if source.patterns:
        # lazy: DebyeCalculator (torch) only when simulating
        from invdesign.physics.calculator import simulate_all  # noqa: PLC0415

        by_size = {size_key(_size(p)): p for p in particles}
        for entry in record.particles:
            values = simulate_all(by_size[size_key(entry.size)], source.patterns,
                                  device=source.device)
            entry.patterns = {name: v.astype(np.float32) for name, v in values.items()}
    write_chili_file(output_path(out_dir, source.name), record)
    return Outcome(source.name, "written")


def _size(particle: Structure) -> float:
    """The size `make_record` files a particle under (`np_size`, else twice its largest radius)."""
    if "np_size" in particle.info:
        return float(particle.info["np_size"])
    return float(2.0 * np.linalg.norm(particle.positions, axis=1).max())


# ----------------------------------------------------------------------------- sources
@cache
def _library_types() -> dict:
    # lazy: the library imports pymatgen's symmetry tools
    from invdesign.crystals.library import builtin_types  # noqa: PLC0415

    return {t.name: t for t in builtin_types()}


@cache
def _chili_names() -> dict[str, str]:
    """Library type name -> CHILI-3K crystal type, for the library entries that are one."""
    text = resources.files("invdesign.crystals").joinpath(
        "resources/structure_types.yaml").read_text()
    return {e["name"]: e["chili"] for e in yaml.safe_load(text) if "chili" in e}


def _cell_from_cif(text: str, name: str) -> Structure:
    # lazy: pymatgen's CIF parser is heavy
    from pymatgen.io.cif import CifParser  # noqa: PLC0415

    try:
        structures = CifParser.from_str(text).parse_structures(primitive=False)
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for a bad CIF
        raise InvdesignError(f"unreadable CIF ({type(exc).__name__})") from None
    if not structures or not structures[0].is_ordered:
        raise InvdesignError("CIF holds no ordered structure")
    return Structure.from_pymatgen(structures[0])


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def synthetic_tasks(n: int, seed: int, max_atoms: int = MAX_ATOMS) -> list[SyntheticSource]:
    """The planned synthetic cells as tasks named `syn<seed>_<index>_<formula>_sg<number>`."""
    return [SyntheticSource(f"syn{seed}_{p.index:06d}_{p.formula}_sg{p.spacegroup}", "synthetic",
                            plan=p) for p in plan_compositions(n, seed, max_atoms)]


def library_tasks() -> list[SyntheticSource]:
    """One task per built-in structure type (its example compound), `lib_<type>_<example>`."""
    chili = _chili_names()
    return [SyntheticSource(f"lib_{_safe(t.name)}_{_safe(t.example)}", "library",
                            library_type=t.name, crystal_type=chili.get(t.name, "Unknown"))
            for t in _library_types().values()]


def perov5_tasks(csv_path: str | os.PathLike) -> list[SyntheticSource]:
    """One task per row of a perov5 CSV (`material_id`, `cif` columns), `perov5_<id>`."""
    path = Path(csv_path)
    if not path.is_file():
        raise InvdesignError("perov5 CSV not found (give --perov5-csv FILE)", path)
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvdesignError(f"cannot read perov5 CSV ({type(exc).__name__}: {exc})",
                             path) from None
    if not rows or "cif" not in rows[0]:
        raise InvdesignError("perov5 CSV needs a 'cif' column", path)
    tasks, seen = [], set()
    for k, row in enumerate(rows):
        name = f"perov5_{_safe(row.get('material_id') or str(k))}"
        if name in seen:
            name = f"{name}_{k}"
        seen.add(name)
        tasks.append(SyntheticSource(name, "perov5", cif=row["cif"]))
    return tasks


def check_sources(sources: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(sources))
    unknown = [s for s in chosen if s not in SOURCES]
    if not chosen or unknown:
        raise InvdesignError(f"unknown source {unknown[0] if unknown else '(none)'!r}; "
                             f"choose from {', '.join(SOURCES)}")
    return chosen


def check_patterns(patterns: Sequence[str] | None) -> tuple[str, ...]:
    if patterns is None:
        return tuple(PATTERNS)
    chosen = tuple(dict.fromkeys(patterns))
    unknown = [p for p in chosen if p not in PATTERNS and p != "none"]
    if unknown:
        raise InvdesignError(f"unknown pattern {unknown[0]!r}; choose from "
                             f"{', '.join(PATTERNS)} or none")
    return tuple(p for p in chosen if p != "none")


def synthetic_sources(
    n: int = 0,
    seed: int = 0,
    sources: Sequence[str] = DEFAULT_SOURCES,
    perov5_csv: str | os.PathLike | None = None,
    radii: Sequence[float] = CHILI_RADII,
    patterns: Sequence[str] | None = None,
    relax_steps: int = RELAX_STEPS,
    max_atoms: int = MAX_ATOMS,
    device: str = "cpu",
) -> list[SyntheticSource]:
    """The validated task list: synthetic cells, then library types, then perov5 rows."""
    chosen = check_sources(sources)
    if not 0 <= int(n) <= MAX_N:
        raise InvdesignError(f"--n must be in 0..{MAX_N:,}, got {n}")
    if "synthetic" in chosen and int(n) == 0:
        raise InvdesignError("--n must be at least 1 for the synthetic source")
    if not 0 <= int(relax_steps) <= MAX_RELAX_STEPS:
        raise InvdesignError(f"--relax-steps must be in 0..{MAX_RELAX_STEPS}, got {relax_steps}")
    if "perov5" in chosen and perov5_csv is None:
        raise InvdesignError("--sources perov5 needs --perov5-csv FILE")
    settings = {"radii": check_radii(radii), "patterns": check_patterns(patterns),
                "relax_steps": int(relax_steps), "device": device}
    tasks: list[SyntheticSource] = []
    if "synthetic" in chosen:
        tasks += synthetic_tasks(int(n), int(seed), max_atoms)
    if "library" in chosen:
        tasks += library_tasks()
    if "perov5" in chosen:
        tasks += perov5_tasks(perov5_csv)
    return [_with(t, settings) for t in tasks]


def _with(task: SyntheticSource, settings: dict) -> SyntheticSource:
    return replace(task, **settings)


def remembered_rejections(out_dir: Path, tasks: Sequence[SyntheticSource]) -> dict[str, str]:
    """name -> reason for the tasks without a file that an earlier run refused as they are now."""
    found = {}
    for task in tasks:
        reason = rejections.recorded(out_dir, task.name, rejections.fingerprint(task))
        if reason is not None and not output_path(out_dir, task.name).exists():
            found[task.name] = reason
    return found


# ----------------------------------------------------------------------------- duplicates
def read_duplicates(out_dir: Path) -> dict[str, str]:
    """name -> the name it duplicates, from `duplicates.tsv` (empty when absent)."""
    path = Path(out_dir) / DUPLICATES_NAME
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()[1:]
    return dict(line.split("\t")[:2] for line in lines if "\t" in line)


def remove_duplicates(out_dir: Path, names: Sequence[str]) -> dict[str, str]:
    """Compare the written cells of `names` (task order) with equal reduced composition; delete
    the files of all but the first of each group of matches. Returns name -> kept name for the
    removed ones (also appended to `duplicates.tsv`)."""
    from invdesign.crystals.dedup import same_structure  # noqa: PLC0415 - lazy: pymatgen

    groups: dict[tuple, list[tuple[str, Structure]]] = defaultdict(list)
    removed: dict[str, str] = {}
    for name in names:
        path = output_path(out_dir, name)
        if not path.is_file():
            continue
        cell = read_chili_file(path, sizes=[]).cell()
        counts = np.unique(cell.species, return_counts=True)
        divisor = int(np.gcd.reduce(counts[1]))
        key = tuple(zip(counts[0].tolist(), (counts[1] // divisor).tolist(), strict=True))
        match = next((kept for kept, other in groups[key] if same_structure(other, cell)), None)
        if match is None:
            groups[key].append((name, cell))
        else:
            removed[name] = match
            path.unlink()
    if removed:
        known = read_duplicates(out_dir) | removed
        lines = ["name\tduplicate_of"] + [f"{k}\t{v}" for k, v in known.items()]
        atomic_write_text(Path(out_dir) / DUPLICATES_NAME, "\n".join(lines) + "\n")
    return removed


# ----------------------------------------------------------------------------- build
def build_synthetic(
    out: str | os.PathLike,
    n: int = 0,
    seed: int = 0,
    sources: Sequence[str] = DEFAULT_SOURCES,
    perov5_csv: str | os.PathLike | None = None,
    radii: Sequence[float] = CHILI_RADII,
    patterns: Sequence[str] | None = None,
    relax_steps: int = RELAX_STEPS,
    max_atoms: int = MAX_ATOMS,
    workers: int = 1,
    device: str = "cpu",
    progress: bool = True,
    scheduler: str | None = None,
    retry_rejected: bool = False,
) -> BuildSummary:
    """Build the synthetic set into `out`, one HDF5 file per cell; resumes an earlier run.

    Rejected cells (with their reason) and removed duplicates are listed in
    `out/build_report.tsv`. A cell refused before with the same task (`rejections`) is not tried
    again unless `retry_rejected`. `scheduler` is the address of a running Dask scheduler, passed
    on to the runner.
    """
    tasks = synthetic_sources(n, seed, sources, perov5_csv, radii, patterns, relax_steps,
                              max_atoms, device)
    out_dir = Path(out)
    known = read_duplicates(out_dir) if out_dir.is_dir() else {}
    refused = {} if retry_rejected or not out_dir.is_dir() else remembered_rejections(out_dir,
                                                                                       tasks)
    todo = [t for t in tasks if t.name not in known and t.name not in refused]
    inputs = [perov5_csv] if perov5_csv is not None else []
    summary = run_tasks(todo, build_synthetic_source, out, workers=workers, desc="synthetic",
                        progress=progress, inputs=inputs, scheduler=scheduler)
    removed = remove_duplicates(summary.report.parent, [t.name for t in todo])
    known |= removed
    results = {o.name: o for o in summary.outcomes}
    outcomes = [
        Outcome(t.name, "rejected", f"duplicate of {known[t.name]} (StructureMatcher)")
        if t.name in known else Outcome(t.name, "rejected", refused[t.name])
        if t.name in refused else results[t.name]
        for t in tasks
    ]
    report = write_report(summary.report.parent / REPORT_NAME, outcomes)
    return BuildSummary(outcomes, report)
