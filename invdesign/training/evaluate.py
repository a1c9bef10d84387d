"""Evaluate any generator on task data through its `sample` interface.

Two passes per item, so every generator is measured the same way:
- at the true atom count (`Condition.n_atoms` given, CHILI's protocol): `chili_mae` (the sample's
  atoms in the order the generator returns them against the targets sorted by |r|; generators
  without a slot order return atoms sorted by |r|), `matched_mae` / `matched_rmsd` (Hungarian
  pairing, minimum image for fractional coordinates), `aligned_mae` / `aligned_rmsd` (the same after
  the best rotation or reflection of a particle, the best origin shift of a cell: the frame a
  rotation- or translation-invariant generator cannot know) and `species_accuracy` (matched pairs
  with the right species);
- free (count predicted): `count_accuracy`, `count_mae` and `composition_accuracy` (order-free
  species agreement).
Coordinates are compared in the task's units: fractional for unit cells, Å for particles.

With `rw_items > 0`, the free samples of that many items (evenly spaced over the data) are also
forward-simulated (`pattern_rw`): the Rw of each sample's pattern against the item's input pattern
as stored (scale fitted by least squares), reported as `rw_median`, `rw_mean` and `rw_items`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from ase.geometry import cellpar_to_cell

from invdesign.core.errors import DataFormatError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition
from invdesign.data.datamodule import LazyTaskData, TaskData
from invdesign.data.splits import split_name
from invdesign.evaluators.metrics import structure as metrics
from invdesign.generators.base import Generator


def task_coordinates(structure: Structure) -> np.ndarray:
    """[n, 3] fractional coordinates of a unit cell, Å positions of a particle."""
    return structure.frac_positions if structure.is_periodic else structure.positions


@torch.no_grad()
def evaluate_generator(
    generator: Generator,
    data: TaskData | LazyTaskData,
    batch_size: int = 256,
    condition_on: tuple[str, ...] = (),
    seed: int = 0,
    rw_items: int = 0,
) -> dict[str, Any]:
    """Metrics of `generator` on every item of `data` (see the module docstring)."""
    generator.eval()
    device = generator.device
    rng = torch.Generator().manual_seed(seed)
    periodic = data.task.kind == "unit_cell"
    fixed_pred, free_pred, truth = [], [], []
    for start in range(0, len(data), batch_size):
        rows = list(range(start, min(start + batch_size, len(data))))
        batch = data.batch(rows, tuple(c for c in condition_on if c != "n_atoms"))
        cond = batch.condition.to(device)
        with_count = Condition(
            cond.patterns, cond.composition, cond.cell_params, batch.n_atoms.to(device)
        )
        fixed_pred += [s[0] for s in generator.sample(with_count, 1, generator=rng)]
        free_pred += [s[0] for s in generator.sample(cond, 1, generator=rng)]
        for r in range(len(rows)):
            m = batch.mask[r]
            truth.append((batch.target[r][m].double().numpy(), batch.species[r][m].numpy()))
    true_xyz = [t[0] for t in truth]
    true_z = [t[1] for t in truth]
    fixed_xyz = [task_coordinates(s) for s in fixed_pred]
    out: dict[str, Any] = {
        "n_samples": len(truth),
        "chili_mae": metrics.chili_mae(fixed_xyz, true_xyz),
        **metrics.matched_summary(
            fixed_xyz, true_xyz, periodic, [s.species for s in fixed_pred], true_z
        ),
        **metrics.aligned_summary(fixed_xyz, true_xyz, periodic),
        "count_accuracy": metrics.count_accuracy(
            [s.n_atoms for s in free_pred], [len(z) for z in true_z]
        ),
        "count_mae": float(
            np.mean([abs(s.n_atoms - len(z)) for s, z in zip(free_pred, true_z, strict=True)])
        ),
        "composition_accuracy": metrics.species_accuracy([s.species for s in free_pred], true_z),
    }
    if rw_items > 0:
        spaced = np.linspace(0, len(data) - 1, min(rw_items, len(data))).round()
        rows = np.unique(spaced).astype(int)
        # data left on disk (`LazyTaskData`): read just these rows
        chosen, at = ((data.read(rows.tolist()), list(range(len(rows))))
                      if isinstance(data, LazyTaskData) else (data, rows.tolist()))
        values = pattern_rw([free_pred[r] for r in rows], chosen, at)
        out.update({"rw_median": float(np.median(values)), "rw_mean": float(np.mean(values)),
                    "rw_items": len(values)})
    return out


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    data_root: str | os.PathLike,
    part: str = "test",
    split_kind: str | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint and evaluate it on `part` ('train', 'val', 'test' or 'all') of the split
    named in its config (or `split_kind`), with the split seed and condition extras it was trained
    with."""
    # lazy: heavy modules, loaded on use (CLI start-up)
    from invdesign.data.datamodule import load_task_part  # noqa: PLC0415

    # lazy: heavy modules, loaded on use (CLI start-up)
    from invdesign.data.dataset import ChiliDataset  # noqa: PLC0415

    # lazy: heavy modules, loaded on use (CLI start-up)
    from invdesign.generators.checkpoint import load_checkpoint, read_metadata  # noqa: PLC0415

    meta = read_metadata(checkpoint)
    generator = load_checkpoint(checkpoint, device=device)
    cfg = meta.get("config") or {}
    split_cfg = cfg.get("split", {})
    kind = split_kind or split_name(split_cfg.get("kind", "chili_random"),
                                    split_cfg.get("fold"))
    cond_on = tuple(cfg.get("data", {}).get("condition_on", ()))
    ds = ChiliDataset(data_root)
    task = generator.task
    data = load_task_part(ds, task, kind, int(split_cfg.get("seed", 42)), part)
    check_finite(data, [ds.records[i].path for i in data.indices])
    out = evaluate_generator(generator, data, condition_on=cond_on)
    out.update(
        {
            "task": task.name,
            "split": kind,
            "part": part,
            "data": str(ds.data_root),
            "generator": meta["generator"],
            "seed": cfg.get("seed"),
            "data_fingerprint": ds.fingerprint,
            "same_data_as_training": ds.fingerprint
            == meta.get("metrics", {}).get("training", {}).get("data_fingerprint"),
        }
    )
    return out


def check_finite(data: TaskData, files: list[str]) -> None:
    """Refuse data whose patterns, pattern ranges, target coordinates or cells hold NaN or inf
    (metrics over them would be NaN or meaningless): `DataFormatError` naming the first such file.

    Args:
        data: the task tensors (patterns [N, L], target [N, max_atoms, 3], cell_params [N, 6]).
        files: [N] the file each row was read from.
    """
    n = len(data)
    # min-max normalising turns a NaN row into zeros: the stored (min, span) keep the NaN
    parts = [(f"{name} pattern", values) for name, values in data.patterns.items()]
    parts += [(f"{name} pattern", values) for name, values in data.pattern_range.items()]
    parts += [("coordinates", data.target.masked_fill(~data.mask[..., None], 0.0)),
              ("cell parameters", data.cell_params)]
    for what, values in parts:
        bad = ~torch.isfinite(values.reshape(n, -1)).all(dim=1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            size = data.meta[row].get("size_key", "") if data.meta else ""
            raise DataFormatError(
                f"{what} of graph {size or data.indices[row]} holds NaN or inf "
                f"({int(bad.sum())} of {n} graphs); evaluation refuses non-finite data",
                files[row])


#: Sampled cells denser than this many times the true cell are not cut (`pattern_rw`).
MAX_DENSITY_RATIO = 3.0


def pattern_rw(samples: list[Structure], data: TaskData, rows: list[int],
               radii: tuple[float, ...] | None = None, device: str = "cpu") -> list[float]:
    """Rw of each sample's forward-simulated pattern (DebyeCalculator, the task's first pattern on
    the model grid) against the stored input pattern of its row of `data`, scale fitted.

    A particle is simulated as it is. A unit cell is first cut the way its input was made: metals
    within the cutting radius of the most central metal, plus the ligands bonded to them
    (DebyeCalculator's cutter). The stored size is the diameter including those ligands, so the
    radius is taken as the largest of the builder's `radii` (default CHILI's 5-25 Å) not above half
    that size. A sample that yields no particle, or a cell more than `MAX_DENSITY_RATIO` times as
    dense (atoms per volume) as the true one (collapsed: cutting it would make a huge particle),
    scores Rw = 1 (no signal).
    """
    # lazy: heavy modules, loaded on use (CLI start-up)
    from invdesign.core.patterns import pattern_spec  # noqa: PLC0415

    # lazy: heavy modules, loaded on use (CLI start-up)
    from invdesign.data.build.chili3k import CHILI_RADII  # noqa: PLC0415

    # lazy: heavy modules, loaded on use (CLI start-up)
    from invdesign.evaluators.metrics.pattern import rw  # noqa: PLC0415

    # lazy: heavy modules, loaded on use (CLI start-up)
    from invdesign.physics.calculator import simulate  # noqa: PLC0415

    # lazy: heavy modules, loaded on use (CLI start-up)
    from invdesign.physics.cutter import cut_sphere  # noqa: PLC0415

    spec = pattern_spec(data.task.patterns[0])
    radii = CHILI_RADII if radii is None else radii
    out = []
    for sample, row in zip(samples, rows, strict=True):
        particle = sample
        if sample.is_periodic:
            true_cell = cellpar_to_cell(data.cell_params[row].double().numpy())
            true_density = int(data.n_atoms[row]) / abs(np.linalg.det(true_cell))
            density = sample.n_atoms / max(abs(np.linalg.det(sample.cell)), 1e-9)
            half = float(data.meta[row]["size_key"].rstrip("Å")) / 2.0
            radius = max((r for r in radii if r <= half + 1e-6), default=half)
            particle = (cut_sphere(sample, radius, device)
                        if density <= MAX_DENSITY_RATIO * true_density else None)
        if particle is None or particle.n_atoms < 2:
            out.append(1.0)
            continue
        calc = simulate(particle, spec, device)[1]
        value, _ = rw(data.raw_pattern(spec.name, row), calc)
        out.append(min(float(value), 1.0))
    return out

