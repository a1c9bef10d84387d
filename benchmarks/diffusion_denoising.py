"""How well a diffusion checkpoint denoises, noise level by noise level.

For each training step t the part's structures are noised to t (several noise draws) and the
predicted noise is scored against predicting zero: ratio = MSE(predicted - true noise) / MSE(true
noise). 1 means the denoiser has learnt nothing at that noise level, 0 a perfect one. Sampling needs
a low ratio at small noise to end on sharp structures; this is the figure that showed the shipped
particle model cannot denoise local structure (`benchmarks/results/chili3k_table5_NOTES.md`).

    python benchmarks/diffusion_denoising.py --checkpoint checkpoints/diffusion-xpdf-pos_abs \\
        --data DATA_DIR/chili3k [--split grouped] [--part val] [--items 64] [--draws 4]

Prints one row per timestep: the noise's standard deviation per coordinate (Å for particles,
fractional units for unit cells), the ratio on the chosen part and, for particles, the ratio of an
oracle that knows each true particle: it estimates every noisy atom's clean position as the
posterior mean over the true positions of its species (Gaussian likelihood, the one-to-one pairing
ignored). The oracle knows more than any model can; only the exact posterior, which also uses the
one-to-one pairing, can score lower. Where the model is far above it, the denoiser, not the
ambiguity of the noisy structure, is what limits.
"""

from __future__ import annotations

import argparse
import time

import torch

from invdesign.data.datamodule import load_task_part
from invdesign.data.dataset import ChiliDataset
from invdesign.generators.checkpoint import load_checkpoint
from invdesign.generators.diffusion.denoisers import remove_mean

TIMESTEPS = (2, 5, 10, 20, 50, 100, 200, 400, 700)


def oracle_ratio(batch, noise_sd: float, draws: int, rng: torch.Generator) -> float:
    """MSE ratio of the known-particle oracle (module docstring) at per-coordinate noise `noise_sd`
    (Å, in the clean particle's frame, i.e. the variance-exploding sigma), centre-of-mass-free
    noise as in training."""
    mask = batch.mask  # [B, M]
    m = mask.unsqueeze(-1).double()
    x0 = remove_mean(batch.target.double(), mask)  # [B, M, 3]
    same = (batch.species.unsqueeze(2) == batch.species.unsqueeze(1)) & mask.unsqueeze(1)
    err = ref = 0.0
    for _ in range(draws):
        eps = remove_mean(torch.randn(x0.shape, generator=rng, dtype=torch.float64), mask)
        y = x0 + noise_sd * eps
        logits = -torch.cdist(y, x0) ** 2 / (2 * noise_sd**2)  # [B, M (noisy), M (true)]
        weights = logits.masked_fill(~same, float("-inf")).softmax(-1).nan_to_num(0.0)
        eps_hat = (y - weights @ x0) / noise_sd * m
        err += float(((eps_hat - eps) ** 2).sum())
        ref += float((eps**2).sum())
    return err / ref


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
    periodic = model.task.kind == "unit_cell"
    unit = "fractional" if periodic else "Å"
    print(f"{args.checkpoint}: {model.task.name}, {args.split} {args.part}, "
          f"{batch.mask.shape[0]} structures x {args.draws} noise draws")
    print(f"{'t':>5} {'noise (' + unit + ')':>18} {'MSE ratio':>10} {'oracle':>8}")
    start = time.time()
    for t in args.timesteps:
        rng = torch.Generator().manual_seed(t)
        err = zero = 0.0
        for _ in range(args.draws):
            e, z = model.noise_prediction_error(batch, t, rng)
            err, zero = err + e, zero + z
        level = model.noise_level(t)
        oracle = "-"
        if not periodic:  # the oracle works in the clean frame: x_t / sqrt(abar_t)
            abar = float(model.train_scheduler.alphas_cumprod[t])
            oracle = f"{oracle_ratio(batch, level / abar**0.5, args.draws, rng):.3f}"
        print(f"{t:>5} {level:>18.4f} {err / zero:>10.3f} {oracle:>8}", flush=True)
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
