"""How well a diffusion checkpoint denoises, noise level by noise level.

For each training step t the part's structures are noised to t (several noise draws) and the
predicted noise is scored against predicting zero: ratio = MSE(predicted - true noise) / MSE(true
noise). 1 means the denoiser has learnt nothing at that noise level, 0 a perfect one. Sampling needs
a low ratio at small noise to end on sharp structures; this is the figure that showed the shipped
particle model cannot denoise local structure (`benchmarks/results/chili3k_table5_NOTES.md`).

    python benchmarks/diffusion_denoising.py --checkpoint checkpoints/diffusion-xpdf-pos_abs \\
        --data /work/data/chili3k [--split grouped] [--part val] [--items 64] [--draws 4]

Prints one row per timestep: the noise's standard deviation per coordinate (Å for particles,
fractional units for unit cells) and the ratio on the chosen part.
"""

from __future__ import annotations

import argparse
import time

import torch
from invdesign.generators.checkpoint import load_checkpoint
from invdesign.generators.data import load_task_part

from invdesign.data.dataset import ChiliDataset

TIMESTEPS = (2, 5, 10, 20, 50, 100, 200, 400, 700)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="diffusion checkpoint folder or file")
    parser.add_argument("--data", required=True, help="CHILI-layout data folder")
    parser.add_argument("--split", default="grouped", help="grouped or chili_random")
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--part", default="val", help="train, val, test or all")
    parser.add_argument("--items", type=int, default=64, help="first N structures of the part")
    parser.add_argument("--draws", type=int, default=4, help="noise draws per timestep")
    parser.add_argument("--timesteps", type=int, nargs="+", default=list(TIMESTEPS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_checkpoint(args.checkpoint)
    if model.name != "diffusion":
        parser.error(f"{args.checkpoint}: a {model.name} checkpoint, not a diffusion one")
    data = load_task_part(
        ChiliDataset(args.data), model.task, args.split, args.split_seed, args.part
    )
    batch = data.batch(list(range(min(args.items, len(data)))))
    unit = "fractional" if model.task.kind == "unit_cell" else "Å"
    print(f"{args.checkpoint}: {model.task.name}, {args.split} {args.part}, "
          f"{batch.mask.shape[0]} structures x {args.draws} noise draws")
    print(f"{'t':>5} {'noise (' + unit + ')':>18} {'MSE ratio':>10}")
    start = time.time()
    for t in args.timesteps:
        rng = torch.Generator().manual_seed(t)
        err = zero = 0.0
        for _ in range(args.draws):
            e, z = model.noise_prediction_error(batch, t, rng)
            err, zero = err + e, zero + z
        print(f"{t:>5} {model.noise_level(t):>18.4f} {err / zero:>10.3f}", flush=True)
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
