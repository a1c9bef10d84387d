"""Record what the shipped generator checkpoints sample from the ZnO example.

Writes `tests/references/shipped_samples.json`: per checkpoint and per condition ('pattern': the
pattern alone; 'composition': with the ZnO composition), the species, positions (Å for particles,
fractional for unit cells) and cell parameters of n=2 samples drawn with a fixed seed and few
sampler steps (diffusion models), rounded to 1e-4. `tests/generators/test_shipped_samples.py`
compares today's samples to it, so a refactor is shown to sample the same. The diffusion entries
were first recorded before the diffusion generator was split, the MLP and VAE ones before the
package was restructured into layers (same values from this script then and now).

Run from the repository root: `python tools/make_sample_references.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from invdesign.core.conditions import prepare_condition
from invdesign.core.tasks import Condition
from invdesign.generators.base import Generator
from invdesign.generators.checkpoint import load_checkpoint
from invdesign.io.measured import read_pattern

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "references" / "shipped_samples.json"
EXAMPLE = ROOT / "examples" / "ZnO_wurtzite_1nm.gr"
CHECKPOINTS = (
    "mlp-xpdf-pos_abs",
    "mlp-xpdf-unit_cell",
    "vae-xpdf-unit_cell",
    "diffusion-xpdf-pos_abs",
    "diffusion-xpdf-unit_cell",
    "diffusion-prototype-xpdf-pos_abs",
    "diffusion-prototype-xpdf-unit_cell",
)
#: Composition of the 'composition' condition (Zn, O).
COMPOSITION = {30: 0.5, 8: 0.5}
N_SAMPLES = 2
SEED = 7
SAMPLER = "ddpm"
STEPS = 4


def conditions(generator: Generator) -> dict[str, Condition]:
    """The conditions sampled: the ZnO example's G(r) alone, and with its composition."""
    pattern = read_pattern(EXAMPLE)
    patterns = {generator.task.patterns[0]: (pattern.x, pattern.y)}
    return {
        "pattern": prepare_condition(patterns, generator.task),
        "composition": prepare_condition(patterns, generator.task, composition=COMPOSITION),
    }


def samples(generator: Generator, condition: Condition) -> list[dict[str, Any]]:
    """N_SAMPLES structures from `condition` (seed SEED) as rounded JSON rows; diffusion models
    with sampler SAMPLER in STEPS steps."""
    rng = torch.Generator().manual_seed(SEED)
    options = {"sampler": SAMPLER, "steps": STEPS} if generator.sampling_options else {}
    out = generator.sample(condition, N_SAMPLES, rng, **options)[0]
    rows = []
    for s in out:
        periodic = s.kind == "unit_cell"
        xyz = s.frac_positions if periodic else s.positions
        rows.append({
            "species": [int(z) for z in s.species],
            "positions": [[round(float(v), 4) for v in p] for p in xyz],
            "cell": ([round(float(v), 4) for v in s.cell_parameters()] if periodic else None),
        })
    return rows


def record(name: str) -> dict[str, list[dict[str, Any]]]:
    """Every condition's samples of checkpoint `name`."""
    generator = load_checkpoint(ROOT / "checkpoints" / name)
    return {case: samples(generator, c) for case, c in conditions(generator).items()}


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one line per sampled structure (small diffs when the reference changes)."""
    rows = {}

    def mark(row: dict[str, Any]) -> str:
        key = f"@row{len(rows)}@"
        rows[key] = json.dumps(row)
        return key

    marked = {name: {case: [mark(r) for r in items] for case, items in cases.items()}
              for name, cases in data["checkpoints"].items()}
    text = json.dumps({**data, "checkpoints": marked}, indent=1)
    for key, row in rows.items():
        text = text.replace(f'"{key}"', row)
    return text


def main() -> None:
    torch.set_num_threads(1)
    data = {
        "about": (f"n={N_SAMPLES} samples of {EXAMPLE.name}, torch.Generator seed {SEED}, "
                  f"sampler {SAMPLER}, {STEPS} steps; particles Å, unit cells fractional"),
        "checkpoints": {name: record(name) for name in CHECKPOINTS},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(_dumps(data) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
