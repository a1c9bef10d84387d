"""CHILI-style files from a folder of CIFs (CHILI-100K recipe): clean, cut, graph, simulate, write.

`build_cif_source(source, out_dir)` is the unit of work (one CIF -> one `<stem>.h5`, or a rejection
with its reason in the build report); `build_cifs` lists the folder and runs them (here, or on a
Dask cluster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.crystals.crystal_types import CHILI100K_METALS, CHILI100K_NON_METALS
from invdesign.data.build.chili3k import CHILI_RADII, check_radii
from invdesign.data.build.cif_cleaning import clean_cif
from invdesign.data.build.record import make_record
from invdesign.data.build.runner import BuildSummary, Outcome, output_path, run_tasks
from invdesign.data.hdf5_io import write_chili_file
from invdesign.physics.cutter import cut_particles

METAL_NUMBERS: tuple[int, ...] = tuple(elements.atomic_number(s) for s in CHILI100K_METALS)
LIGAND_NUMBERS: tuple[int, ...] = tuple(elements.atomic_number(s) for s in CHILI100K_NON_METALS)


@dataclass(frozen=True)
class CifSource:
    """One CIF to build: its path, the particle radii (Å), whether to simulate patterns, the
    device."""

    path: str
    radii: tuple[float, ...] = CHILI_RADII
    simulate: bool = True
    device: str = "cpu"

    @property
    def name(self) -> str:
        return Path(self.path).stem


def build_cif_source(source: CifSource, out_dir: Path) -> Outcome:
    """Clean one CIF and, if usable, write `out_dir/<stem>.h5` (atomic). Pure function of
    `source`."""

    cleaned = clean_cif(source.path)
    if not cleaned.ok:
        return Outcome(source.name, "rejected", cleaned.reason)
    cell = cleaned.structure
    particles = cut_particles(
        cell, source.radii, metals=METAL_NUMBERS, ligands=LIGAND_NUMBERS, device=source.device
    )
    if not particles:
        return Outcome(source.name, "rejected", "every particle radius gives a single atom")
    record = make_record(
        source.name, cell, particles, "Unknown", simulate=source.simulate, device=source.device
    )
    write_chili_file(output_path(out_dir, source.name), record)
    return Outcome(source.name, "written")


def list_cifs(cif_dir: str | os.PathLike) -> list[Path]:
    """The `*.cif` files of a folder (sorted); InvdesignError if it is missing or holds none."""
    folder = Path(cif_dir)
    if not folder.is_dir():
        raise InvdesignError("CIF folder does not exist", folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".cif" and p.is_file())
    if not files:
        raise InvdesignError("no *.cif files in the folder", folder)
    return files


def build_cifs(
    cif_dir: str | os.PathLike,
    out: str | os.PathLike,
    radii=CHILI_RADII,
    workers: int = 1,
    simulate: bool = True,
    device: str = "cpu",
    progress: bool = True,
    scheduler: str | None = None,
) -> BuildSummary:
    """Build every usable CIF of `cif_dir` into `out`; rejected files are listed with their reason
    in `out/build_report.tsv`. Raises InvdesignError when no CIF at all is usable."""
    radii = check_radii(radii)
    files = list_cifs(cif_dir)
    sources = [CifSource(str(p), radii, simulate, device) for p in files]
    summary = run_tasks(  # `out` may sit in `cif_dir` (it only gets .h5 files) but hold no CIF
        sources, build_cif_source, out, workers=workers, desc="CIFs", progress=progress,
        inputs=files, scheduler=scheduler,
    )
    if summary.count("written") + summary.count("exists") == 0:
        first = next(o for o in summary.outcomes if o.status in ("rejected", "failed"))
        raise InvdesignError(
            f"no usable CIF ({len(sources)} rejected, first: {first.name}: {first.reason}; "
            f"see {summary.report})",
            cif_dir,
        )
    return summary
