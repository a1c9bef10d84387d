"""Networks of the VAE-UNet generator (after Court et al. 2020, conditioned on scattering patterns).

- `PatternEncoder`: the model-ready pattern rows -> an embedding e (pooled, then an MLP);
- `DensityVAE`: a conditional VAE over density grids; the encoder sees the grid and e, the decoder
  the latent z and e;
- `UNet3D`: density grid -> species logits (per voxel, over 0 = empty + the species vocabulary)
  and a mask logit (the SI's S' and S'_B);
- `CellHead`: e -> the six cell parameters.

All 3-D convolutions pad circularly: the grids are periodic unit cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

CELL_SCALE = (10.0, 10.0, 10.0, 90.0, 90.0, 90.0)  # a, b, c / 10 Å; angles / 90 deg


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3x3 circular-padded convolution + GroupNorm + SiLU."""
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular"),
        nn.GroupNorm(min(8, c_out), c_out),
        nn.SiLU(),
    )


class PatternEncoder(nn.Module):
    """Patterns -> embedding.

    Args:
        lengths: points of each input pattern (their order is the order of `forward`'s inputs).
        pooled: each pattern is average-pooled to this many bins before the MLP.
        hidden, emb: MLP width and embedding size.
    """

    def __init__(self, lengths: Sequence[int], pooled: int = 256, hidden: int = 256,
                 emb: int = 128) -> None:
        super().__init__()
        self.pooled = [min(pooled, int(n)) for n in lengths]
        self.mlp = nn.Sequential(
            nn.Linear(sum(self.pooled), hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, emb),
        )

    def forward(self, patterns: Sequence[torch.Tensor]) -> torch.Tensor:
        """patterns: tensors [B, L_k] -> [B, emb]."""
        pooled = [F.adaptive_avg_pool1d(p.unsqueeze(1), n).squeeze(1)
                  for p, n in zip(patterns, self.pooled, strict=True)]
        return self.mlp(torch.cat(pooled, dim=-1))  # [B, sum pooled] -> [B, emb]


class DensityVAE(nn.Module):
    """Conditional VAE over [B, 1, N, N, N] grids; N must be divisible by 2**len(channels).

    Args:
        grid: N, voxels per axis.
        emb: condition embedding size.
        latent: latent size.
        channels: encoder widths, one stride-2 stage each (the decoder mirrors them).
    """

    def __init__(self, grid: int, emb: int, latent: int = 64,
                 channels: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        factor = 2 ** len(channels)
        if grid % factor:
            raise ValueError(f"grid {grid} is not divisible by {factor} ({len(channels)} stages)")
        self.base, self.channels, self.latent = grid // factor, channels, latent
        flat = channels[-1] * self.base**3
        enc, c_in = [], 1
        for c in channels:
            enc.append(_conv(c_in, c, stride=2))
            c_in = c
        self.encoder = nn.Sequential(*enc)
        self.to_stats = nn.Linear(flat + emb, 2 * latent)
        self.from_latent = nn.Linear(latent + emb, flat)
        dec = []
        for c_hi, c_lo in zip(channels[::-1], channels[::-1][1:] + [channels[0]], strict=True):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), _conv(c_hi, c_lo)]
        self.decoder = nn.Sequential(*dec)
        self.out = nn.Conv3d(channels[0], 1, 3, padding=1, padding_mode="circular")

    def encode(self, x: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, 1, N, N, N], e [B, emb] -> (mu, logvar), each [B, latent]."""
        h = self.encoder(x).flatten(1)  # [B, C * base^3]
        mu, logvar = self.to_stats(torch.cat([h, e], dim=-1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """z [B, latent], e [B, emb] -> grid [B, 1, N, N, N]."""
        b = self.base
        h = self.from_latent(torch.cat([z, e], dim=-1)).view(-1, self.channels[-1], b, b, b)
        return self.out(self.decoder(h))


class UNet3D(nn.Module):
    """Density -> species logits [B, K, N, N, N] and mask logit [B, 1, N, N, N].

    Args:
        n_classes: K (class 0 = empty voxel).
        channels: widths per level; each level after the first halves the grid.
    """

    def __init__(self, n_classes: int, channels: Sequence[int] = (8, 16, 32)) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        self.down = nn.ModuleList()
        c_in = 1
        for k, c in enumerate(channels):
            self.down.append(nn.Sequential(_conv(c_in, c, stride=1 if k == 0 else 2), _conv(c, c)))
            c_in = c
        self.up = nn.ModuleList()
        for c_hi, c_lo in zip(channels[::-1], channels[::-1][1:], strict=False):
            self.up.append(nn.Sequential(_conv(c_hi + c_lo, c_lo), _conv(c_lo, c_lo)))
        self.species = nn.Conv3d(channels[0], n_classes, 1)
        self.mask = nn.Conv3d(channels[0], 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, skips[-2::-1], strict=True):
            x = F.interpolate(x, size=skip.shape[-3:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.species(x), self.mask(x)  # [B, K, N^3], [B, 1, N^3]


class CellHead(nn.Module):
    """Embedding -> (a, b, c Å, alpha, beta, gamma deg) [B, 6]."""

    def __init__(self, emb: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(emb, hidden), nn.SiLU(), nn.Linear(hidden, 6))
        self.register_buffer("scale", torch.tensor(CELL_SCALE), persistent=False)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return (1.0 + self.mlp(e)) * self.scale  # around 10 Å, 90 deg at initialisation
