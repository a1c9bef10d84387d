"""Diffusion sampling speed: structures per second for 16 samples of a 200-atom particle.

    python benchmarks/diffusion_sampling_speed.py [--checkpoint FILE] [--sampler dpmsolver]
        [--steps N] [--threads 2] [--config configs/experiment/diffusion_xpdf_pos_abs.yaml]

Without a checkpoint the network is built untrained from the config's hyper-parameters (speed does
not depend on the weights); a config with the prototype prior needs a checkpoint (its library
comes from training data). The atom count is fixed at 200 through `Condition.n_atoms` (a prior
that cuts particles from a crystal gives the cut nearest it); the default sampler and steps are
the model's. Prints one line per repeat and the best figure.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from invdesign.core.patterns import pattern_spec
from invdesign.core.tasks import Condition, TaskSpec
from invdesign.generators.base import build_generator

ROOT = Path(__file__).resolve().parents[1]


def load_model(checkpoint: str | None, config: Path):
    if checkpoint:
        from invdesign.generators.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint)
    cfg = OmegaConf.load(config)
    hparams = OmegaConf.to_container(cfg.generator.hparams, resolve=True)
    if hparams.get("prior") == "prototype":
        raise SystemExit(f"{config}: the prototype prior's library comes from training data; "
                         "give --checkpoint")
    return build_generator("diffusion", TaskSpec.parse(cfg.task.name), **hparams)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument(
        "--config", type=Path, default=ROOT / "configs/experiment/diffusion_xpdf_pos_abs.yaml"
    )
    parser.add_argument("--sampler", default=None, help="ddpm, ddim or dpmsolver (model default)")
    parser.add_argument("--steps", type=int, default=None, help="model default when omitted")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--atoms", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint, args.config).eval()
    task = model.task
    patterns = {p: torch.rand(1, pattern_spec(p).n_points) for p in task.patterns}
    composition = [{78: 1.0}]
    cond = Condition(patterns, composition=composition, n_atoms=torch.tensor([args.atoms]))
    sampler = args.sampler or model.hparams()["sampler"]
    steps = args.steps or model.hparams()["sampling_steps"]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"task {task.name}; prior {model.hparams().get('prior')}; "
          f"{args.n} samples x {args.atoms} atoms; sampler {sampler}, "
          f"{steps} steps; {args.threads} threads; {n_params} parameters")
    best = 0.0
    for repeat in range(args.repeats):
        start = time.perf_counter()
        out = model.sample(cond, args.n, generator=torch.Generator().manual_seed(repeat),
                           sampler=sampler, steps=steps)
        seconds = time.perf_counter() - start
        cut = model.hparams().get("prior") in ("cell", "prototype")
        assert len(out[0]) == args.n
        assert abs(out[0][0].n_atoms - args.atoms) <= (0.2 * args.atoms if cut else 0)
        rate = args.n / seconds
        best = max(best, rate)
        print(f"repeat {repeat}: {seconds:.1f} s, {rate:.2f} structures/s")
    print(f"best: {best:.2f} structures/s ({args.n} x {args.atoms}-atom particles, {sampler}, "
          f"{steps} steps)")


if __name__ == "__main__":
    main()
