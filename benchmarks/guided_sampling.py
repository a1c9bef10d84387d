"""Guided against unguided sampling of shipped diffusion checkpoints on a few grouped test items.

Issue 27 item 1 (a first measurement, not the benchmark rows): for each checkpoint, free samples
(count, composition and cell predicted) of `--items` grouped-split test structures, with the
forward-model guidance off and on (`--guidance-scales`, `--guidance-start`), the same seed for
every run. Reported per run: median and per-item sample Rw (`training.evaluate.pattern_rw`: the
sample's DebyeCalculator pattern against the stored input; unit cells cut as the input was), and
for unit cells the StructureMatcher match rate at k = `--samples` (`evaluators.metrics.match`) and
the valid fraction.

Items: the grouped split (seed 42) of CHILI-3K's 636 source names (every CHILI-3K unit cell; the
particle task's split equals it when every source has a particle of <= 200 atoms, which holds for
the sources picked here since their 5 Å particle is kept), `--items` test sources picked with
numpy's default_rng(`--pick-seed`), built with `--build` into `--data` (radii 5 and 10 Å only: the
same graphs as the full build's at those radii), one graph per source: its smallest particle.

    nice python benchmarks/guided_sampling.py --data WORK/chili3k-test5 --build \\
        --checkpoints checkpoints/diffusion-xpdf-pos_abs checkpoints/diffusion-xpdf-unit_cell
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from generation import extra_variant, generation_records, one_per_source, save_records
from omegaconf import OmegaConf

from invdesign.core.structure import Structure
from invdesign.data.build.chili3k import build_chili3k, chili3k_sources
from invdesign.data.datamodule import TaskData, load_task_part
from invdesign.data.dataset import ChiliDataset
from invdesign.data.splits import grouped_split
from invdesign.evaluators.metrics.match import (
    composition_of,
    match_structure,
    match_summary,
    valid_fraction,
)
from invdesign.generators.checkpoint import load_checkpoint, read_metadata
from invdesign.io.atomic import atomic_write_text
from invdesign.training.evaluate import pattern_rw

ROOT = Path(__file__).resolve().parents[1]
RADII = (5.0, 10.0)


def test_sources(items: int, seed: int) -> list[tuple[str, str, str]]:
    """(name, crystal type, metal) of `items` grouped-split test sources of CHILI-3K."""
    sources = chili3k_sources(simulate=False)
    names = [s.name for s in sources]
    test = set(np.asarray(names, dtype=object)[grouped_split(range(len(names)), names, 42)["test"]])
    chosen = sorted((s.name, s.crystal_type, s.metal) for s in sources if s.name in test)
    pick = np.random.default_rng(seed).choice(len(chosen), items, replace=False)
    return [chosen[k] for k in sorted(pick)]


def build(folder: Path, picked: list[tuple[str, str, str]]) -> None:
    for _, ctype, metal in picked:
        build_chili3k(folder, metals=[metal], radii=RADII, crystal_types=[ctype], workers=1,
                      progress=False)


def truth_cell(data: TaskData, row: int) -> Structure:
    m = data.mask[row]
    return Structure.from_cell_parameters(data.species[row][m].numpy(),
                                          data.target[row][m].double().numpy(),
                                          data.cell_params[row].double().numpy())


def run(checkpoint: Path, folder: Path, args: argparse.Namespace, scale: float) -> dict[str, Any]:
    gen = load_checkpoint(checkpoint)
    gen.eval()
    data = load_task_part(ChiliDataset(folder), gen.task, "grouped", 42, "all")
    rows = one_per_source(data)
    batch = data.batch(rows, tuple(args.condition_on))
    start = time.perf_counter()
    samples = gen.sample(batch.condition, args.samples,
                         generator=torch.Generator().manual_seed(args.seed),
                         guidance_scale=scale, guidance_start=args.guidance_start)
    seconds = time.perf_counter() - start
    firsts = [group[0] for group in samples]
    values = pattern_rw(firsts, data, rows)
    out: dict[str, Any] = {
        "checkpoint": checkpoint.name, "task": gen.task.name, "guidance_scale": scale,
        "guidance_start": args.guidance_start, "samples": args.samples, "seed": args.seed,
        "items": [data.meta[r]["source"] + " " + data.meta[r]["size_key"] for r in rows],
        "rw": [round(v, 4) for v in values], "rw_median": statistics.median(values),
        "sample_seconds": round(seconds, 1), "condition_on": list(args.condition_on),
    }
    if gen.task.kind == "unit_cell":
        truths = [truth_cell(data, r) for r in rows]
        matches = [match_structure(group, t) for group, t in zip(samples, truths, strict=True)]
        out.update(match_summary(matches, args.samples))
        out["valid_fraction"] = valid_fraction(samples, [composition_of(t) for t in truths])
    return out


def sampling_hparams(pairs: list[str]) -> dict[str, Any]:
    """{name: value} of `--sampling-hparams name=value ...`, read as config overrides are
    (OmegaConf's dotlist: ints, floats, words)."""
    return OmegaConf.to_container(OmegaConf.from_dotlist(pairs))


def trained_extra(checkpoint: Path) -> str:
    """What the variant name says of a checkpoint's training-only folders, read from the config
    in its header (`generation.extra_variant`, as `chili_table5.py` names its runs)."""
    data = read_metadata(checkpoint)["config"].get("data", {})
    return extra_variant(bool(data.get("extra")), data.get("extra_share"))


def records(checkpoint: Path, folder: Path, args: argparse.Namespace,
            scale: float) -> list[dict[str, Any]]:
    """Issue 27's generation records (`generation.py`) of one checkpoint on the picked items,
    k = 1 and `--samples`."""
    gen = load_checkpoint(checkpoint)
    changed = sampling_hparams(args.sampling_hparams)
    if changed and gen.name != "diffusion":
        raise SystemExit(f"{checkpoint}: --sampling-hparams are the diffusion sampler's")
    if changed:
        gen.hp = gen.space.hp = gen.hp.replace(**changed)  # sampling-only fields
    data = load_task_part(ChiliDataset(folder), gen.task, "grouped", 42, "all")
    rows = one_per_source(data)
    variant = ("guided" if scale > 0 else "plain") + "".join(
        f"+{c}" for c in args.condition_on) + trained_extra(checkpoint) + "".join(
        f"+{k}={v}" for k, v in changed.items())
    sampling = ({"guidance_scale": scale, "guidance_start": args.guidance_start}
                if gen.name == "diffusion" else {})
    if not sampling and scale > 0:
        raise SystemExit(f"{checkpoint}: only the diffusion generator samples with guidance")
    rule = (f"{len(rows)} grouped-split test sources of CHILI-3K picked with "
            f"numpy default_rng({args.pick_seed}) (benchmarks/guided_sampling.py), the smallest "
            "particle of each")
    start = time.perf_counter()
    out = generation_records(gen, data, split="grouped", ks=sorted({1, args.samples}),
                             items=len(rows), seed=args.seed, variant=variant,
                             polish_samples=args.polish, sampling=sampling, rows=rows,
                             condition_on=tuple(args.condition_on), items_rule=rule,
                             rank=args.rank)
    for r in out:
        r["seconds"] = round(time.perf_counter() - start, 1)
        r["guidance_start"] = args.guidance_start if scale > 0 else None
        r["guidance_scale"] = scale
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of the test sources")
    parser.add_argument("--build", action="store_true", help="build the picked sources first")
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--pick-seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=1, help="k samples per item")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance-scales", type=float, nargs="+", default=[0.0, 0.5],
                        help="one run per scale (0: unguided)")
    parser.add_argument("--guidance-start", type=float, default=0.8)
    parser.add_argument("--condition-on", nargs="*", default=[],
                        choices=["composition", "n_atoms", "cell"],
                        help="give the generator these (DiffCSP's protocol: composition n_atoms)")
    parser.add_argument("--generation-results", type=Path, default=None,
                        help="write issue 27's generation records (k = 1 and --samples) here "
                             "instead of the per-item rows")
    parser.add_argument("--sampling-hparams", nargs="*", default=[],
                        help="diffusion sampling hyper-parameters to change, name=value "
                             "(e.g. corrector_steps=3); with --generation-results")
    parser.add_argument("--rank", action="store_true",
                        help="with --generation-results: simulate every sample (best-of-k Rw, "
                             "match rate of the best-fitting sample)")
    parser.add_argument("--polish", action="store_true",
                        help="with --generation-results: also the Rw of the polished first sample")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path,
                        default=ROOT / "benchmarks" / "results" / "guided_sampling.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    picked = test_sources(args.items, args.pick_seed)
    print("test sources:", ", ".join(name for name, _, _ in picked), flush=True)
    if args.build:
        build(args.data, picked)
    if args.generation_results is not None:
        for checkpoint in args.checkpoints:
            for scale in args.guidance_scales:
                found = records(checkpoint, args.data, args, scale)
                save_records(args.generation_results, found)
                for r in found:
                    print(json.dumps(r), flush=True)
        return
    rows = json.loads(args.results.read_text()) if args.results.is_file() else []
    for checkpoint in args.checkpoints:
        for scale in args.guidance_scales:
            row = run(checkpoint, args.data, args, scale)
            print(json.dumps(row), flush=True)
            rows.append(row)
            atomic_write_text(args.results, json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
