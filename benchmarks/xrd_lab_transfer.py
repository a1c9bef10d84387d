"""The lab-range XRD model on its training input and on the same cells' lab powder patterns.

`mlp-xrd_lab-unit_cell` (the default model of `sample --xrd`) is trained on CHILI's `xrd`: the
Debye I(q) of 5-25 Å-radius particles cut from each cell, on the `xrd_lab` view (q 1.1-5 Å^-1).
A user gives it a powder pattern of large crystallites, smoothed to its resolution
(`pipeline.inputs.model_inputs`). This measures what that gap costs. For `--items` unit cells of
CHILI-3K's test part (the model card's split; `generation.spaced_sources`: evenly spaced sources,
the smallest particle of each) the model is sampled `--k` times, the composition given, on:
- `chili`: the item's stored `xrd` on the view (what it was trained on);
- `lab`: the item's cell as a lab measures it: reflections of the cell (`powder_pattern`, Cu Kα1,
  2θ 10-90° in 0.02° steps, 500 Å crystallites, no strain), scaled to 10^4 counts over a flat
  background of 200, written as a two-column .xy and read back by `read_pattern` as `sample --xrd`
  reads a file, then mapped to the model grid by `model_inputs` (smoothed).
Per input: StructureMatcher match rate at k = 1 and `--k` against the item's true cell
(`evaluators.metrics.match`, ltol 0.3, stol 0.5, angle_tol 10).

    python benchmarks/xrd_lab_transfer.py --data DATA_DIR/chili3k    # shipped model
    python benchmarks/xrd_lab_transfer.py --data DATA_DIR/chili3k --checkpoint DIR --out FILE
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from generation import spaced_sources, true_structure

from invdesign.core.conditions import prepare_condition
from invdesign.core.patterns import VIEWS
from invdesign.data.datamodule import ChiliTaskDataModule
from invdesign.evaluators.forward.powder_pattern import Profile, powder_pattern, reflections
from invdesign.evaluators.metrics.match import composition_of, match_structure, match_summary
from invdesign.generators.checkpoint import read_metadata
from invdesign.io.measured import read_pattern
from invdesign.pipeline import defaults
from invdesign.pipeline.inputs import model_inputs
from invdesign.pipeline.planning import load_generator

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "xrd_lab_transfer.json"
CU = 1.5406


def lab_file(cell, path: Path) -> Path:
    """The cell's lab powder pattern as a two-column .xy (see the module docstring)."""
    refl = reflections(cell, CU / (2 * math.sin(math.radians(45.0))))
    tth = np.arange(10.0, 90.0, 0.02)
    y = powder_pattern(refl, refl.lattice, tth, (CU,), Profile(w=0.002, size=500.0))
    counts = 1e4 * y / max(float(y.max()), 1e-12) + 200.0
    path.write_text("# wavelength = 1.5406\n# x_unit = 2theta_deg\n" + "\n".join(
        f"{a:.3f} {b:.6g}" for a, b in zip(tth, counts, strict=True)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default=defaults.KIND_MODELS["xrd"])
    parser.add_argument("--checkpoint", default=None, help="a checkpoint folder instead")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", default="test", choices=("val", "test"),
                        help="the card split's part the items come from (choose settings on val)")
    parser.add_argument("--smooth", type=float, default=None,
                        help="Å^-1: the view's smoothing FWHM for this run (default: the view's)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    path = defaults.resolve_checkpoint(args.model, args.checkpoint)
    gen = load_generator(path)
    split = read_metadata(path)["config"]["split"]  # the model card's split
    dm = ChiliTaskDataModule(args.data, gen.task, split["kind"], split_seed=split["seed"],
                             in_memory="true")
    dm.setup()
    data = dm.parts[args.part]
    rows, rule = spaced_sources(data, args.items)
    name = gen.task.patterns[0]
    if args.smooth is not None:  # the view's resolution as a parameter of this study
        VIEWS[name] = dataclasses.replace(VIEWS[name], smooth_fwhm=args.smooth)
    matches: dict[str, list] = {"chili": [], "lab": []}
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            truth = true_structure(data, row)
            comp = composition_of(truth)
            measured = read_pattern(lab_file(truth, Path(tmp) / f"item{row}.xy"), kind="xrd")
            lab = model_inputs({"xrd": measured}, gen.task, None)["xrd"]
            inputs = {"chili": (lab.grid, data.patterns[name][row].double().numpy()),
                      "lab": (lab.grid, lab.values)}
            for key, pattern in inputs.items():
                cond = prepare_condition({name: pattern}, gen.task, composition=comp)
                rng = torch.Generator().manual_seed(args.seed)
                samples = gen.sample(cond, args.k, generator=rng)[0]
                matches[key].append(match_structure(samples, truth))
    record = {"model": path.name, "split": split["kind"], "part": args.part,
              "smooth_fwhm": VIEWS[name].smooth_fwhm, "items": len(rows),
              "items_rule": rule, "k": args.k, "seed": args.seed,
              "inputs": {key: {f"k{k}": match_summary(found, k) for k in sorted({1, args.k})}
                         for key, found in matches.items()},
              "seconds": round(time.perf_counter() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for key, value in record["inputs"].items():
        print(key, {k: (v["match_rate"], v["rmse"]) for k, v in value.items()})
    print(f"{len(rows)} items, {record['seconds']} s")


if __name__ == "__main__":
    main()
