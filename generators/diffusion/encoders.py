"""Invariant embeddings of the condition: scattering patterns, the diffusion time and the species.

All outputs are rotation-invariant scalars; the denoiser adds them to its node scalars.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from invdesign.core.patterns import pattern_spec


class PatternConv(nn.Module):
    """One pattern [B, L] -> [B, dim]: stride-4 1D convolutions down to ~16 points, then an MLP.

    Args:
        length: L, grid points of the pattern (`PatternSpec.n_points`).
        dim: output width.
        channels: channels of the first convolution (doubled once).
        pooled: points kept by the final adaptive average pooling.
    """

    def __init__(self, length: int, dim: int, channels: int = 16, pooled: int = 16) -> None:
        super().__init__()
        n_down = max(0, int(math.log(max(length / pooled, 1.0), 4)))
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(n_down):
            c_out = channels if i == 0 else 2 * channels
            layers += [nn.Conv1d(c_in, c_out, kernel_size=9, stride=4, padding=4), nn.SiLU()]
            c_in = c_out
        layers.append(nn.AdaptiveAvgPool1d(pooled))
        self.conv = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * pooled, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        self.length = length

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y: [B, L] min-max normalised values -> [B, dim]."""
        return self.mlp(self.conv(y.unsqueeze(1)))  # [B, 1, L] -> [B, C, pooled] -> [B, dim]


class PatternEncoder(nn.Module):
    """Several patterns (name -> [B, L]) -> one [B, dim] embedding (sum of per-pattern encoders)."""

    def __init__(self, patterns: tuple[str, ...], dim: int) -> None:
        super().__init__()
        self.names = tuple(pattern_spec(p).name for p in patterns)
        self.encoders = nn.ModuleDict(
            {name: PatternConv(pattern_spec(name).n_points, dim) for name in self.names}
        )

    def forward(self, patterns: dict[str, torch.Tensor]) -> torch.Tensor:
        """patterns: name -> [B, L] -> [B, dim]."""
        return sum(self.encoders[name](patterns[name]) for name in self.names)  # type: ignore[return-value]


class TimeEmbedding(nn.Module):
    """Integer diffusion timesteps [B] -> [B, dim] (diffusers' sinusoidal `Timesteps` + MLP)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.sinusoid = Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = TimestepEmbedding(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = self.sinusoid(t)  # [B, dim] float32
        return self.mlp(emb.to(self.mlp.linear_1.weight.dtype))
