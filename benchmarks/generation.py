"""Generation records of issue 27 item 2 for `chili_table5.py` (`--generation`) and its results file
`benchmarks/results/generation.json`: per (task, model, variant, split, k, seed) one record

    {task, model, variant, split, k, match_rate, rmse, rw_median, rw_median_refined,
     valid_fraction, seed, n_items, items_rule}

- free samples (count, composition and cell predicted unless `condition_on` gives them), max(k)
  per test item, on the given rows (`spaced_sources`: unit cells evenly spaced, the smallest
  particle of each) or `items` test items evenly spaced over the part (`numpy.linspace`);
- unit cells: StructureMatcher match rate and RMSE at each k (`evaluators.metrics.match`,
  DiffCSP's protocol); particles: None (no matcher for finite clusters here);
- `rw_median`: median Rw of each item's first sample (`training.evaluate.pattern_rw`; unit cells
  cut as the input was); `rw_median_refined`: the same after `evaluators.forward.polish` (only
  with `polish=True`, else None; particles: the polished particle's Rw at CHILI's biso, cells: the
  cell refined as an attenuated crystal, then cut as the input was, like `rw_median`; records
  before 2026-12-03 give the attenuated-crystal fit's own Rw instead, see generation_NOTES.md);
  `rw_median_refined_fit`: the polish's own final Rw (cells: of the attenuated-crystal model);
- `valid_fraction`: `validity.check_validity` over all samples, against the item's composition.
`model` is the generator's name ('diffusion_prototype' for the diffusion model with the prototype
prior); `variant` says how it sampled (e.g. 'plain', 'guided').
"""

from __future__ import annotations

import fcntl
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.data.datamodule import TaskData
from invdesign.evaluators.forward.polish import chili_pattern, polish
from invdesign.evaluators.metrics.match import (
    composition_of,
    match_structure,
    match_summary,
    valid_fraction,
)
from invdesign.generators.base import Generator
from invdesign.io.atomic import atomic_write_text
from invdesign.training.evaluate import pattern_rw

KEY = ("task", "model", "variant", "split", "k", "seed")


def model_name(gen: Generator) -> str:
    """mlp, vae, diffusion or diffusion_prototype."""
    prior = getattr(getattr(gen, "hp", None), "prior", None)
    return "diffusion_prototype" if gen.name == "diffusion" and prior == "prototype" else gen.name


def extra_variant(extra: bool, share: Any) -> str:
    """What a variant name says of a model's training-only folders (`data.extra`): '+extra'
    (every graph in every epoch), '+extra_share=S' (`data.extra_share`) or nothing."""
    if not extra:
        return ""
    return f"+extra_share={share}" if share not in (None, "", "null", "None") else "+extra"


def one_per_source(data: TaskData) -> list[int]:
    """Rows of `data`: each source's smallest particle (one item per unit cell)."""
    best: dict[str, tuple[float, int]] = {}
    for row, meta in enumerate(data.meta):
        size = float(meta["size_key"].rstrip("Å"))
        if meta["source"] not in best or size < best[meta["source"]][0]:
            best[meta["source"]] = (size, row)
    return sorted(row for _, row in best.values())


def spaced_sources(data: TaskData, items: int) -> tuple[list[int], str]:
    """`items` of `one_per_source(data)` evenly spaced (`numpy.linspace`), and how they were
    picked (the records' `items_rule`)."""
    sources = one_per_source(data)
    picks = np.unique(np.linspace(0, len(sources) - 1, min(items, len(sources))).round())
    rows = [sources[int(i)] for i in picks]
    return rows, (f"{len(rows)} of the part's {len(sources)} unit cells evenly spaced "
                  "(numpy.linspace over sources in file order), the smallest particle of each")


def true_structure(data: TaskData, row: int) -> Structure:
    """The item's true structure (unit cell from fractional coordinates, or particle)."""
    m = data.mask[row]
    species, xyz = data.species[row][m].numpy(), data.target[row][m].double().numpy()
    if data.task.kind == "unit_cell":
        return Structure.from_cell_parameters(species, xyz, data.cell_params[row].double().numpy())
    return Structure(species, xyz, None, "particle", {})


def generation_records(gen: Generator, data: TaskData, *, split: str, ks: list[int],
                       items: int, seed: int, variant: str = "plain", polish_samples: bool = False,
                       sampling: dict[str, Any] | None = None, rows: list[int] | None = None,
                       condition_on: tuple[str, ...] = (), items_rule: str | None = None,
                       rank: bool = False) -> list[dict[str, Any]]:
    """One record per k (module docstring); `sampling` are options of `gen.sample`.

    `rows` (default: `items` rows evenly spaced over `data`, described by `items_rule`) are the
    test items; `condition_on` gives the generator what it would otherwise predict
    ('composition', 'n_atoms', 'cell'; DiffCSP's protocol knows the cell's composition).
    `rank` also simulates every sample: per k, `rw_median_best_of_k` (median over items of the
    lowest Rw among the first k samples) and, for unit cells, `match_rate_ranked` (the fraction
    of items whose lowest-Rw sample among the first k matches: the one answer a user ranking k
    samples by their fit would take)."""
    if rows is None:
        rows = np.unique(np.linspace(0, len(data) - 1, min(items, len(data))).round())
        rows = rows.astype(int).tolist()
        items_rule = (f"{len(rows)} test items evenly spaced (numpy.linspace) over "
                      f"{len(data)}")
    batch = data.batch(rows, condition_on)
    gen.eval()
    samples = gen.sample(batch.condition, max(ks), generator=torch.Generator().manual_seed(seed),
                         **(sampling or {}))
    firsts = [group[0] for group in samples]
    every = None  # [items, max(ks)] Rw of every sample (`rank`)
    if rank:
        flat = [s for group in samples for s in group]
        every = np.asarray(pattern_rw(flat, data, [r for r in rows for _ in range(max(ks))]))
        every = every.reshape(len(rows), max(ks))
    rw_values = every[:, 0].tolist() if every is not None else pattern_rw(firsts, data, rows)
    truths = [true_structure(data, r) for r in rows]
    refined = refined_fit = None
    if polish_samples:
        spec = pattern_spec(data.task.patterns[0])
        done = []
        for sample, row in zip(firsts, rows, strict=True):
            stored = data.raw_pattern(spec.name, row)
            target = chili_pattern(spec.grid(), stored, spec, name=data.meta[row]["source"])
            done.append(polish([sample], target)[0])
        # unit cells: the polished cell cut as the input was made (as `rw_median`), not the
        # attenuated-crystal model's own Rw, whose misfit to a cut particle is a floor of ~0.17
        refined = statistics.median(
            pattern_rw([p.structure for p in done], data, rows) if data.task.kind == "unit_cell"
            else [p.rw_after for p in done])
        refined_fit = statistics.median(p.rw_after for p in done)
    valid = valid_fraction(samples, [composition_of(t) for t in truths])
    matches = ([match_structure(group, t) for group, t in zip(samples, truths, strict=True)]
               if data.task.kind == "unit_cell" else None)
    out = []
    for k in ks:
        summary = match_summary(matches, k) if matches is not None else {}
        ranked: dict[str, Any] = {}
        if every is not None:
            ranked["rw_median_best_of_k"] = float(np.median(every[:, :k].min(1)))
            if matches is not None:
                best = every[:, :k].argmin(1)
                ranked["match_rate_ranked"] = float(np.mean(
                    [m.rms[int(b)] is not None for m, b in zip(matches, best, strict=True)]))
        out.append({**ranked,
            "task": data.task.name, "model": model_name(gen), "variant": variant, "split": split,
            "k": k, "match_rate": summary.get("match_rate"), "rmse": summary.get("rmse"),
            "rw_median": statistics.median(rw_values), "rw_median_refined": refined,
            "rw_median_refined_fit": refined_fit,
            "valid_fraction": valid, "seed": seed, "n_items": len(rows),
            "items_rule": items_rule, "condition_on": list(condition_on),
        })
    return out


def save_records(path: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge `records` into the JSON list at `path` (same KEY replaced), under a file lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.stem}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(path.read_text()) if path.is_file() else []
        for new in records:
            key = tuple(new[k] for k in KEY)
            rows = [r for r in rows if tuple(r.get(k) for k in KEY) != key] + [new]
        atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
    return rows
