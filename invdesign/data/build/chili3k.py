"""CHILI-3K: 12 crystal types x 53 metal oxides, particles of 5..25 Å radius, six patterns each.

`build_chili3k_source(source, out_dir)` is the unit of work (one unit cell -> one
`<Type>_<Formula>.h5`), a pure top-level function of its inputs; `build_chili3k` validates the
request and runs the sources (here, or on a Dask cluster).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.crystals.crystal_types import (
    CHILI3K_METALS,
    CRYSTAL_TYPES,
    check_metal,
    get_crystal_type,
)
from invdesign.crystals.crystal_types import unit_cell as make_unit_cell
from invdesign.data.build.record import make_record
from invdesign.data.build.runner import BuildSummary, Outcome, output_path, run_tasks
from invdesign.data.hdf5_io import write_chili_file
from invdesign.physics.cutter import cut_particles

CHILI_RADII: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 25.0)


@dataclass(frozen=True)
class Chili3kSource:
    """One CHILI-3K unit cell to build.

    Attributes:
        crystal_type: one of `CRYSTAL_TYPES`.
        metal: one of `CHILI3K_METALS`.
        radii: particle radii in Å.
        simulate: compute the six patterns (False: graphs only, for quick tests).
        device: torch device for cutting and simulation.
    """

    crystal_type: str
    metal: str
    radii: tuple[float, ...] = CHILI_RADII
    simulate: bool = True
    device: str = "cpu"

    @property
    def name(self) -> str:
        """File stem `<CrystalType>_<Formula>`, e.g. 'Fluorite_ZrO2', 'Perovskite_ZrZrO3'."""
        ctype = get_crystal_type(self.crystal_type)
        if self.crystal_type == "Perovskite":
            metal = self.metal * 2
        else:
            metal = self.metal + (str(ctype.n_metal) if ctype.n_metal > 1 else "")
        oxygen = "O" + (str(ctype.n_oxygen) if ctype.n_oxygen > 1 else "")
        return f"{self.crystal_type}_{metal}{oxygen}"


def build_chili3k_source(source: Chili3kSource, out_dir: Path) -> Outcome:
    """Build one CHILI-3K file `out_dir/<name>.h5` (atomic write). Pure function of `source`."""

    cell = make_unit_cell(source.crystal_type, source.metal)
    metal_z = elements.atomic_number(source.metal)
    particles = cut_particles(
        cell, source.radii, metals=[metal_z], ligands=[8], device=source.device
    )
    record = make_record(
        source.name,
        cell,
        particles,
        source.crystal_type,
        simulate=source.simulate,
        device=source.device,
    )
    write_chili_file(output_path(out_dir, source.name), record)
    return Outcome(source.name, "written")


def check_radii(radii: Sequence[float]) -> tuple[float, ...]:
    """Validate particle radii (finite, > 0, at most 100 Å, no repeats); InvdesignError
    otherwise."""
    values = tuple(float(r) for r in radii)
    if not values:
        raise InvdesignError("no particle radii given")
    bad = [r for r in values if not math.isfinite(r) or r <= 0 or r > 100]
    if bad:
        raise InvdesignError(f"particle radii must be in (0, 100] Å, got {bad[0]:g}")
    if len(set(values)) != len(values):
        raise InvdesignError(f"particle radii repeat: {list(values)}")
    return tuple(sorted(values))


def chili3k_sources(
    metals: Sequence[str] | None = None,
    crystal_types: Sequence[str] | None = None,
    radii: Sequence[float] = CHILI_RADII,
    simulate: bool = True,
    device: str = "cpu",
) -> list[Chili3kSource]:
    """The validated source list, ordered by metal then crystal type (as in `CHILI3K_METALS`,
    `CRYSTAL_TYPES`)."""
    metal_list = list(CHILI3K_METALS) if metals is None else [check_metal(m) for m in metals]
    type_list = (
        list(CRYSTAL_TYPES)
        if crystal_types is None
        else [get_crystal_type(t).name for t in crystal_types]
    )
    radii = check_radii(radii)
    return [
        Chili3kSource(t, m, radii, simulate, device)
        for m in dict.fromkeys(metal_list)
        for t in dict.fromkeys(type_list)
    ]


def build_chili3k(
    out: str | os.PathLike,
    metals: Sequence[str] | None = None,
    radii: Sequence[float] = CHILI_RADII,
    workers: int = 1,
    crystal_types: Sequence[str] | None = None,
    simulate: bool = True,
    device: str = "cpu",
    progress: bool = True,
    scheduler: str | None = None,
) -> BuildSummary:
    """Build CHILI-3K (or the selection) into `out`, one HDF5 file per unit cell; resumes an earlier
    run."""
    sources = chili3k_sources(metals, crystal_types, radii, simulate, device)
    return run_tasks(
        sources, build_chili3k_source, out, workers=workers, desc="CHILI-3K", progress=progress,
        scheduler=scheduler,
    )
