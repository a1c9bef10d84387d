"""The VAE-UNet generator: pattern -> density grid -> species grid -> segmented atoms (unit cells).

After Court et al. (2020), conditioned on scattering patterns. Training (`loss`) voxelises each
ground-truth cell (`voxels.voxelise`, cached per cell) and fits three parts at once:
- the conditional VAE reconstructs the log1p density grid (MSE per voxel + beta * KL / voxels, the
  ELBO up to a constant factor at beta = 1; a larger beta keeps the latent from carrying the
  structure, so that prior draws decode to what the pattern says);
- the UNet maps the true density grid to the species grid (cross entropy over 0 = empty + the
  species vocabulary) and the binary mask (BCE), with `unet_on_recon` also on decoded grids;
- the cell head predicts the cell parameters from the pattern embedding (L1 on a, b, c / 10 Å and
  angles / 90 deg).
Sampling (`sample`) decodes latent draws (N(0, temperature^2 I)), runs the UNet and segments the
result with Algorithm S1 (`segmentation.segment`); the cell comes from the condition when given,
else from the cell head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ase.geometry import cellpar_to_cell
from scipy.optimize import linear_sum_assignment

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.generators.base import Generator, register_generator
from invdesign.generators.mlp.model import counts_from_fractions, plausible_cell
from invdesign.generators.vae.model import CELL_SCALE, CellHead, DensityVAE, PatternEncoder, UNet3D
from invdesign.generators.vae.segmentation import Segmentation, segment
from invdesign.generators.vae.voxels import radius_voxels, voxelise

_CACHE_LIMIT = 8192  # voxelised training cells kept in memory (CHILI-3K has 636 distinct cells)
FILL_DISTANCE = 1.5  # Å: atoms added to reach a given count keep this far from the others


@register_generator("vae")
class VAEGenerator(Generator):
    """Conditional VAE over density grids + 3-D UNet + watershed segmentation.

    Args:
        task: a unit-cell task (`*->unit_cell_pos_frac`).
        grid: voxels per cell axis (divisible by 2**len(vae_channels)).
        latent, emb, pooled: latent size, pattern-embedding size, pooled bins per pattern.
        vae_channels, unet_channels: convolution widths of the VAE stages and UNet levels.
        species_vocab: atomic numbers the UNet can label voxels with (from the training data).
        label_frac, sigma_frac: voxelisation radii as fractions of the ionic radius (0.8: on
            CHILI-3K's compressed cells the full radius merges same-species neighbours that
            Algorithm S1 cannot split; see benchmarks/watershed_roundtrip.py).
        beta: KL weight; mask_weight, cell_weight: weights of the mask and cell losses.
        unet_on_recon: also train the UNet on decoded grids (detached): True, the VAE's
            reconstructions (latent from the encoder); 'prior', grids decoded from prior draws
            (at `temperature`), which is what the UNet reads at sampling time.
        components: connected components of 'species' or 'binary' in the segmentation.
        temperature: standard deviation of the prior draws at sampling (1 = the prior N(0, I);
            below 1 draws nearer the decoder's mode for the pattern, 0 = the latent mean only).
    """

    def __init__(
        self,
        task: TaskSpec,
        grid: int = 32,
        latent: int = 64,
        emb: int = 128,
        pooled: int = 256,
        vae_channels: Sequence[int] = (16, 32, 64),
        unet_channels: Sequence[int] = (8, 16, 32),
        species_vocab: Sequence[int] = (8,),
        label_frac: float = 0.8,
        sigma_frac: float = 0.5,
        beta: float = 1.0,
        mask_weight: float = 1.0,
        cell_weight: float = 1.0,
        unet_on_recon: bool | str = False,
        components: str = "species",
        temperature: float = 1.0,
    ) -> None:
        super().__init__(task)
        if task.kind != "unit_cell":
            raise InvdesignError(f"the vae generator makes unit cells; task {task.name!r} is not "
                                 "'*->unit_cell_pos_frac'")
        self.grid, self.latent = int(grid), int(latent)
        self.emb, self.pooled = int(emb), int(pooled)
        self.vae_channels = [int(c) for c in vae_channels]
        self.unet_channels = [int(c) for c in unet_channels]
        self.species_vocab = sorted({int(z) for z in species_vocab})
        self.label_frac, self.sigma_frac = float(label_frac), float(sigma_frac)
        self.beta, self.mask_weight = float(beta), float(mask_weight)
        self.cell_weight = float(cell_weight)
        if unet_on_recon not in (False, True, "prior"):
            raise InvdesignError("unet_on_recon must be false, true or 'prior', not "
                                 f"{unet_on_recon!r}")
        self.unet_on_recon = unet_on_recon
        if components not in ("species", "binary"):
            raise InvdesignError(f"components must be 'species' or 'binary', not {components!r}")
        self.components = components
        if not temperature >= 0:
            raise InvdesignError(f"temperature must be >= 0, not {temperature!r}")
        self.temperature = float(temperature)
        lengths = [pattern_spec(p).n_points for p in task.patterns]
        self.encoder = PatternEncoder(lengths, self.pooled, hidden=2 * self.emb, emb=self.emb)
        self.vae = DensityVAE(self.grid, self.emb, self.latent, self.vae_channels)
        self.unet = UNet3D(len(self.species_vocab) + 1, self.unet_channels)
        self.cell_head = CellHead(self.emb)
        lookup = torch.full((119,), -100, dtype=torch.long)  # Z -> class (1..V), -100 unknown
        lookup[0] = 0
        lookup[torch.tensor(self.species_vocab)] = torch.arange(1, len(self.species_vocab) + 1)
        self.register_buffer("_class_of_z", lookup, persistent=False)
        self._voxel_cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def hparams_from_data(cls, data: Any) -> dict[str, Any]:
        """Hyper-parameters read from the training data: the species vocabulary."""
        return {"species_vocab": data.species_vocab()}

    def hparams(self) -> dict[str, Any]:
        return {
            "grid": self.grid, "latent": self.latent, "emb": self.emb, "pooled": self.pooled,
            "vae_channels": self.vae_channels, "unet_channels": self.unet_channels,
            "species_vocab": self.species_vocab, "label_frac": self.label_frac,
            "sigma_frac": self.sigma_frac, "beta": self.beta, "mask_weight": self.mask_weight,
            "cell_weight": self.cell_weight, "unet_on_recon": self.unet_on_recon,
            "components": self.components, "temperature": self.temperature,
        }

    # ------------------------------------------------------------------ data -> grids
    def _embed(self, condition: Condition) -> torch.Tensor:
        return self.encoder([condition.patterns[p] for p in self.task.patterns])  # [B, emb]

    def _voxelised(self, species: np.ndarray, frac: np.ndarray,
                   params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = b"".join([species.astype(np.int64).tobytes(), np.round(frac, 4).tobytes(),
                        np.round(params, 3).tobytes()])
        if key not in self._voxel_cache:
            if len(self._voxel_cache) >= _CACHE_LIMIT:
                self._voxel_cache.clear()
            cell = Structure.from_cell_parameters(species, frac, params)
            vox = voxelise(cell, (self.grid,) * 3, self.label_frac, self.sigma_frac)
            self._voxel_cache[key] = (np.log1p(vox.density), vox.species.astype(np.int64))
        return self._voxel_cache[key]

    def grids(self, batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Ground-truth grids of a batch: log1p density [B, 1, N, N, N] and voxel classes
        [B, N, N, N] (0 empty, 1..V vocabulary, -100 for species outside the vocabulary)."""
        dens, species = [], []
        for i in range(batch.target.shape[0]):
            m = batch.mask[i].cpu().numpy()
            d, s = self._voxelised(batch.species[i].cpu().numpy()[m],
                                   batch.target[i].double().cpu().numpy()[m],
                                   batch.cell_params[i].double().cpu().numpy())
            dens.append(d)
            species.append(s)
        x = torch.from_numpy(np.stack(dens)).float().unsqueeze(1).to(self.device)
        z = torch.from_numpy(np.stack(species)).to(self.device)
        return x, self._class_of_z[z]

    # ------------------------------------------------------------------ training
    def loss(self, batch: TaskBatch) -> dict[str, torch.Tensor]:
        x, classes = self.grids(batch)  # [B, 1, N, N, N], [B, N, N, N]
        e = self._embed(batch.condition)  # [B, emb]
        mu, logvar = self.vae.encode(x, e)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = self.vae.decode(z, e)  # [B, 1, N, N, N]
        n_vox = x[0].numel()
        recon_loss = F.mse_loss(recon, x)
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1).mean() / n_vox
        occupied = (classes != 0).float()
        if self.unet_on_recon == "prior":
            with torch.no_grad():
                decoded = self.vae.decode(torch.randn_like(mu) * self.temperature, e)
        else:
            decoded = recon.detach()
        inputs = torch.cat([x, decoded]) if self.unet_on_recon else x
        targets = classes.repeat(2, 1, 1, 1) if self.unet_on_recon else classes
        logits, mask_logit = self.unet(inputs)
        species_loss = F.cross_entropy(logits, targets, ignore_index=-100)
        mask_target = occupied.repeat(2, 1, 1, 1) if self.unet_on_recon else occupied
        mask_loss = F.binary_cross_entropy_with_logits(mask_logit[:, 0], mask_target)
        scale = torch.tensor(CELL_SCALE, device=x.device)
        cell_loss = F.l1_loss(self.cell_head(e) / scale, batch.cell_params / scale)
        total = (recon_loss + self.beta * kl + species_loss + self.mask_weight * mask_loss
                 + self.cell_weight * cell_loss)
        return {"loss": total, "recon": recon_loss, "kl": kl, "species": species_loss,
                "mask": mask_loss, "cell": cell_loss}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def decode(self, condition: Condition, n: int,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Latent draws (N(0, temperature^2 I)) -> grids: density [B*n, 1, N^3], species
        log-probs [B*n, K, N^3], mask logits [B*n, N^3] and cell [B, 6]; rows i*n .. i*n+n-1
        belong to item i."""
        e = self._embed(condition)
        z = torch.randn(e.shape[0] * n, self.latent, generator=generator).to(e.device)
        z = z * self.temperature
        density = self.vae.decode(z, e.repeat_interleave(n, dim=0))
        logits, mask = zip(*(self.unet(chunk) for chunk in density.split(8)), strict=True)
        cell = condition.cell_params if condition.cell_params is not None else self.cell_head(e)
        return {"density": density, "logp": torch.cat(logits).log_softmax(1),
                "mask": torch.cat(mask)[:, 0], "cell": cell}

    @torch.no_grad()
    def sample(self, condition: Condition, n: int,
               generator: torch.Generator | None = None) -> list[list[Structure]]:
        """n unit cells per item: each latent draw is decoded, labelled by the UNet and segmented.

        The atom count is the segmentation's, capped at the task's max_atoms by keeping the largest
        regions. With `condition.n_atoms` the count is exactly that: the largest regions are kept,
        or, when the segmentation finds fewer atoms, the missing ones are placed at the densest
        voxels away from the atoms found (`_fill`); without it, at least one atom. Species: with
        `condition.composition` the counts follow the composition and atoms take species by an
        optimal assignment on the UNet's mean log-probabilities over their regions; without it,
        the majority vote.
        """
        out = {k: v.float().cpu() for k, v in self.decode(condition, n, generator).items()}
        results: list[list[Structure]] = []
        for i in range(condition.batch_size):
            params = out["cell"][i].double().numpy()
            params = params if condition.cell_params is not None else plausible_cell(params)
            limit, exact = self.task.max_atoms, None
            if condition.n_atoms is not None:
                exact = int(condition.n_atoms[i])
                if not 1 <= exact <= limit:
                    raise InvdesignError(f"n_atoms must be within 1..{limit}, got {exact}")
                limit = exact
            comp = None if condition.composition is None else condition.composition[i]
            items = []
            for j in range(i * n, (i + 1) * n):
                items.append(self._structure(out["logp"][j].numpy(), out["mask"][j].numpy(),
                                             out["density"][j, 0].numpy(), params, limit,
                                             exact is not None, comp))
            results.append(items)
        return results

    def _structure(self, logp: np.ndarray, mask_logit: np.ndarray, density: np.ndarray,
                   params: np.ndarray, limit: int, exact: bool,
                   comp: dict[int, float] | None) -> Structure:
        """One cell from the UNet output: logp [K, N, N, N], mask_logit and density [N, N, N];
        at most `limit` atoms, exactly `limit` when `exact`."""
        vocab = np.asarray(self.species_vocab)
        binary = mask_logit > 0
        species = np.where(binary, vocab[logp[1:].argmax(0)], 0)
        cell = cellpar_to_cell(params)
        shape = species.shape
        seg = segment(species, binary, radius_vox=radius_voxels(cell, shape, species),
                      components=self.components, max_atoms=4 * limit)  # type: ignore[arg-type]
        seg = _largest(seg, limit)
        if seg.n_atoms < (limit if exact else 1):
            seg = _fill(seg, density, logp, vocab, cell, limit if exact else 1)
        z = seg.species if comp is None else self._assign(seg, logp, comp)
        # the home cell of voxel-centred grids: [-1/2, N - 1/2) voxels, so an atom on a cell
        # corner comes out near 0, not near 1 (CHILI's targets lie in [0, 1), 0 on many sites)
        half = 0.5 / np.asarray(shape, dtype=float)
        frac = np.mod(seg.frac_positions + half, 1.0) - half
        order = np.argsort(np.linalg.norm(frac, axis=1), kind="stable")  # ascending |r|, as CHILI
        return Structure.from_cell_parameters(z[order], frac[order], params)

    def _assign(self, seg: Segmentation, logp: np.ndarray, comp: dict[int, float]) -> np.ndarray:
        """Species from a composition: counts by largest remainder, atoms by optimal assignment."""
        zs = list(comp)
        counts = counts_from_fractions([comp[z] for z in zs], seg.n_atoms)
        flat = logp.reshape(logp.shape[0], -1)  # [K, N^3]
        floor = float(flat.min()) - 10.0
        score = np.full((seg.n_atoms, len(zs)), floor)
        for k, z in enumerate(zs):
            if z in self.species_vocab:
                row = flat[1 + self.species_vocab.index(z)]
                score[:, k] = [row[r].mean() for r in seg.regions]
        columns = np.repeat(np.arange(len(zs)), counts)
        rows, cols = linear_sum_assignment(-score[:, columns])
        out = np.empty(seg.n_atoms, dtype=np.int64)
        out[rows] = np.asarray(zs)[columns[cols]]
        return out


def _largest(seg: Segmentation, limit: int) -> Segmentation:
    """The `limit` atoms with the largest regions (all when there are no more)."""
    if seg.n_atoms <= limit:
        return seg
    keep = np.sort(np.argsort([-len(r) for r in seg.regions], kind="stable")[:limit])
    return Segmentation(seg.positions[keep], seg.species[keep], [seg.regions[k] for k in keep],
                        seg.shape)


def _fill(seg: Segmentation, density: np.ndarray, logp: np.ndarray, vocab: np.ndarray,
          cell: np.ndarray, count: int) -> Segmentation:
    """`seg` topped up to `count` atoms: each new atom goes to the densest voxel at least
    `FILL_DISTANCE` Å (minimum image) from every atom so far, or to the voxel farthest from them
    when none is that far, with the UNet's most likely species there; its region is that voxel."""
    shape = np.asarray(density.shape, dtype=float)
    frac = np.indices(density.shape).reshape(3, -1).T / shape  # [V, 3]
    flat = density.ravel()
    best = logp[1:].reshape(len(vocab), -1).argmax(0)  # [V] most likely non-empty class
    positions, species, regions = list(seg.positions), list(seg.species), list(seg.regions)
    nearest = np.full(flat.size, np.inf)  # [V] Å to the closest atom so far
    for p in positions:
        nearest = np.minimum(nearest, _distance(frac, p / shape, cell))
    while len(positions) < count:
        far = nearest >= FILL_DISTANCE
        v = int(np.flatnonzero(far)[flat[far].argmax()]) if far.any() else int(nearest.argmax())
        positions.append(frac[v] * shape)
        species.append(int(vocab[best[v]]))
        regions.append(np.array([v]))
        nearest = np.minimum(nearest, _distance(frac, frac[v], cell))
    return Segmentation(np.asarray(positions, dtype=float).reshape(-1, 3),
                        np.asarray(species, dtype=np.int64), regions, seg.shape)


def _distance(frac: np.ndarray, point: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """[V] minimum-image distances in Å from fractional `point` [3] to `frac` [V, 3]."""
    delta = frac - point
    delta -= np.round(delta)
    return np.linalg.norm(delta @ cell, axis=1)
