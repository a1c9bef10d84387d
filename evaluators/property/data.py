"""Property data sets: CSV files of CIF strings with one target column, and graph preparation.

Accepted CSV layouts (header row required):
    perov5 / CDVAE: `,material_id,cif,formula,heat_all,heat_ref,...` -> pass `target="heat_ref"`;
    MP-20 / ours: `material_id,formation_energy_per_atom,cif` (target defaults to
    formation_energy_per_atom).
An optional `kind` column marks finite particles (`particle`): their CIF holds the atoms in a vacuum
box and the cell is dropped on reading. Label sets made by `invdesign.evaluators.property.labels`
use this layout.
"""

from __future__ import annotations

import csv
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure as PmgStructure
from pymatgen.io.cif import CifWriter

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.property.graphs import build_graph, graph_data
from invdesign.io.atomic import atomic_path

DEFAULT_TARGET = "formation_energy_per_atom"


@dataclass
class PropertyData:
    """Structures with one scalar target each. targets: [n] (unit of the CSV column)."""

    structures: list[Structure]
    targets: np.ndarray
    ids: list[str]
    target_name: str
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.structures)

    def subset(self, index: Sequence[int]) -> PropertyData:
        index = list(index)
        return PropertyData(
            [self.structures[i] for i in index],
            self.targets[index],
            [self.ids[i] for i in index],
            self.target_name,
            self.source,
        )


def structure_from_cif(text: str, kind: str = "unit_cell") -> Structure:
    """Parse one CIF string with pymatgen; `kind="particle"` drops the (vacuum) cell."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pmg = PmgStructure.from_str(text, fmt="cif")
    structure = Structure.from_pymatgen(pmg)
    if kind == "particle":
        return Structure(structure.species, structure.positions, None, "particle").centred()
    return structure


def structure_to_cif(structure: Structure, box_padding: float = 10.0) -> str:
    """CIF text of a unit cell, or of a particle centred in a cubic vacuum box (padding Å/side)."""

    if not structure.is_periodic:
        pos = structure.positions - structure.positions.min(0) + box_padding
        edge = (
            float((structure.positions.max(0) - structure.positions.min(0)).max()) + 2 * box_padding
        )
        structure = Structure(structure.species, pos, np.eye(3) * edge, "unit_cell")
    return str(CifWriter(structure.to_pymatgen()))


def read_property_csv(
    path: str | os.PathLike,
    target: str | None = None,
    limit: int | None = None,
) -> PropertyData:
    """Read a CSV of CIF strings + target. `DataFormatError` names file, column or row."""
    path = Path(path)
    target = target or DEFAULT_TARGET
    if not path.is_file():
        raise InvdesignError("property CSV not found", path)
    csv.field_size_limit(sys.maxsize)
    structures, targets, ids, extra = [], [], [], {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for needed in ("cif", target):
            if needed not in columns:
                raise DataFormatError(f"no column {needed!r} (columns: {', '.join(columns)})", path)
        for row_number, row in enumerate(reader, start=2):
            if limit is not None and len(structures) >= limit:
                break
            try:
                structures.append(structure_from_cif(row["cif"], row.get("kind") or "unit_cell"))
                targets.append(float(row[target]))
            except (ValueError, InvdesignError) as exc:
                raise DataFormatError(
                    f"row {row_number}: cannot read structure/target ({exc})", path
                ) from exc
            ids.append(row.get("material_id") or str(row_number - 2))
            for key, value in row.items():
                if key and key not in ("cif", target, "material_id"):
                    extra.setdefault(key, []).append(value)
    if not structures:
        raise DataFormatError("no data rows", path)
    return PropertyData(structures, np.asarray(targets, float), ids, target, str(path), extra)


def write_property_csv(path: str | os.PathLike, data: PropertyData) -> None:
    """Write `material_id,<target>,cif,kind,formula[,extra...]` atomically (temp file + os.replace);
    `data.extra` maps further column names to one value per row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        extra = list(data.extra)
        writer.writerow(["material_id", data.target_name, "cif", "kind", "formula", *extra])
        for i, (sid, s, y) in enumerate(zip(data.ids, data.structures, data.targets, strict=True)):
            row = [sid, f"{y:.6f}", structure_to_cif(s), s.kind, s.formula]
            writer.writerow(row + [data.extra[key][i] for key in extra])


def make_graphs(
    structures: Sequence[Structure],
    targets: np.ndarray | None = None,
    descriptors: np.ndarray | None = None,
    k: int = 12,
    line_k: int | None = None,
    atom_features: Sequence[np.ndarray] | None = None,
    plain: bool = False,
) -> list:
    """One `CrystalGraph` per structure (a plain `batching.GraphData` with `plain`: for
    prediction, without torch_geometric) with optional `y` [1], raw `desc` [1, n_desc] and
    per-atom `atom_fea` [n_atoms, n] (see `predictor.model_inputs`)."""
    make = graph_data if plain else build_graph
    graphs = []
    for i, structure in enumerate(structures):
        graph = make(structure, k=k, line_k=line_k)
        if targets is not None:
            graph.y = torch.tensor([float(targets[i])], dtype=torch.float32)
        if descriptors is not None:
            graph.desc = torch.as_tensor(descriptors[i], dtype=torch.float32).unsqueeze(0)
        if atom_features is not None:
            graph.atom_fea = torch.as_tensor(atom_features[i], dtype=torch.float32)
        graphs.append(graph)
    return graphs
