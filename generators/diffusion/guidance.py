"""Data-consistent sampling: reconstruction guidance by the differentiable forward model.

At each guided reverse step the denoiser's clean-structure estimate x0_hat (implied by its noise
prediction eps at state x_t) is simulated through the forward model, its misfit L against the
condition pattern is differentiated with respect to x0_hat, and the sampler's next state is moved
along -grad L (any diffusers sampler: DDPM, DDIM, DPM-Solver++). This is diffusion posterior
sampling (Chung et al. 2023) with the denoiser's Jacobian taken as the identity (one
forward-model pass and its backward per guided step, no backward through the network).

The step is a scaled Polyak step on the misfit L: x0 <- x0 - scale L / |grad L|^2 grad L per
structure (scale 1 would zero a linear misfit), each structure's step shrunk so no atom moves more
than `MAX_STEP` Å. The step is applied to the state the sampler returns (its clean-signal part:
sqrt(abar) x0 on the particles' variance-preserving process, x0 itself on the torus), as DPS steps
x_{t-1} along the misfit's gradient. `guidance_start` is the fraction of the reverse trajectory
after which steps are guided (late guidance: the estimate is then close to a structure and the
forward model's gradient meaningful).

The misfit L = 1 - cos(target, calc) (= Rw^2 / (1 + cos) with the least-squares scale):
- PDFs (G(r) from r = 0): the model-ready pattern is min-max normalised, G(0) = 0, so the raw
  pattern is proportional to (y - y[0]), the target; Rw with it is the benchmark's Rw;
- I(q) patterns (SAXS, XRD): both curves are centred (min-max normalising hides the offset).

Unit cells: the lattice is guided too (`CellMisfit.steer_cells`, on by default,
`guidance_cell`): the cell head predicts lengths within a few per cent and angles within a few
degrees, and a length a few per cent off moves every PDF peak beyond r ~ 10 Å, so positions alone
cannot fit. Each guided step takes a Polyak step on the log lengths and the angles (at most
`MAX_CELL_STEP`, kept only when it lowers the misfit, within `CELL_SCAN` and `ANGLE_RANGE` of the
predicted cell); after the last step the lattice of the final positions is fitted
(`CellMisfit.fit_cells`: an isotropic scan within `CELL_SCAN`, then lattice steps). The sampled
structures carry the guided cells.

Forward models: particles through DebyeCalculator (`physics.calculator.MeasuredGridCalculator`
with CHILI's pattern parameters); unit cells through the attenuated-crystal PDF
(`physics.crystal_pdf.CrystalPDF`: the periodic cell times the sphere shape function of the
particle the input was cut as, its diameter read off the pattern), PDF patterns only, on r up to
min(diameter, `CELL_R_MAX`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from ase.geometry import cellpar_to_cell

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PatternSpec
from invdesign.core.structure import Structure
from invdesign.physics.calculator import Instrument, MeasuredGridCalculator
from invdesign.physics.crystal_pdf import CrystalPDF

#: Å, the most an atom moves in one guided step
MAX_STEP = 0.3
#: Å, unit cells: the misfit covers r up to min(particle diameter, this)
CELL_R_MAX = 20.0
#: Å, a unit cell's pair list is rebuilt once an atom has moved this far from where it was built
REBUILD = 1.0
#: Å^-1, CHILI's q damping (`physics.calculator`)
CHILI_QDAMP = 0.04
#: the particle diameter read off a PDF: the last r where |G| exceeds this fraction of its maximum
DIAMETER_LEVEL = 0.01
#: Å^3, unit cells denser than this volume per atom (no solid is: diamond has 5.7) are not guided
MIN_VOLUME_PER_ATOM = 3.0
#: relative: a guided cell length stays within this of the predicted one, and the final lattice
#: fit scans isotropic scales over the same range (+-)
CELL_SCAN = 0.12
CELL_SCAN_STEP = 0.004
#: deg: a guided angle stays within this of the predicted one
ANGLE_RANGE = 15.0
#: the most one guided step changes a log length (relative change) or an angle (radians)
MAX_CELL_STEP = 0.005
#: lattice steps of the final lattice fit after the isotropic scan
CELL_ITERATIONS = 20
#: tries of a lattice step (each a quarter of the one before) before it is given up
CELL_BACKTRACK = 3
#: relative lattice change after which a cell's pair list is rebuilt (CrystalPDF's margin: 0.06)
CELL_REBUILD = 0.04

Misfit = Callable[[torch.Tensor], torch.Tensor]


def pattern_loss(calc: torch.Tensor, target: torch.Tensor, offset: bool) -> torch.Tensor:
    """[...] 1 - cos(target, calc) over the last axis ([..., m] each), both centred first with
    `offset`. With the least-squares scale Rw^2 = 1 - cos^2, so this is Rw^2 / (1 + cos): zero at
    a perfect fit, and, unlike Rw with a scale kept >= 0, with a gradient on anti-correlated
    curves too."""
    if offset:
        calc = calc - calc.mean(-1, keepdim=True)
        target = target - target.mean(-1, keepdim=True)
    cos = (calc * target).sum(-1) / (calc.norm(dim=-1) * target.norm(dim=-1)).clamp_min(1e-30)
    return 1.0 - cos


def raw_target(pattern: torch.Tensor, spec: PatternSpec) -> tuple[torch.Tensor, bool]:
    """(target values [L], fit an offset?) from a model-ready (min-max normalised) pattern [L]:
    G(r) patterns from r = 0 shifted so G(0) = 0 (their raw shape up to a scale)."""
    pattern = pattern.detach().double().cpu()
    if spec.function == "gr" and spec.rmin == 0:
        return pattern - pattern[0], False
    return pattern, True


def diameter_from_pdf(target: np.ndarray, r: np.ndarray) -> float:
    """Å, the sphere diameter d a G(r) [L] on r [L] shows: a finite particle has no pairs beyond
    its diameter, and the sphere's shape function 1 - 3x/2 + x^3/2 (x = r / d) falls to 1 % at
    x = 0.92, so d = (the last r where |G| is above `DIAMETER_LEVEL` of its maximum) / 0.92."""
    level = DIAMETER_LEVEL * float(np.abs(target).max())
    above = np.nonzero(np.abs(target) > level)[0]
    if len(above) == 0:
        raise InvdesignError("the condition pattern is flat: no particle size to guide by")
    return float(r[min(above[-1] + 1, len(r) - 1)]) / 0.92


class ParticleMisfit:
    """Rw of particles' DebyeCalculator patterns against their condition patterns.

    Args:
        spec: the pattern type of the condition (its grid and simulation parameters).
        patterns: [B, L] model-ready condition patterns, one per structure.
        species: per structure [n_b] atomic numbers.
        coord_scale: Å per model unit of the coordinates the misfit is called with.
    """

    def __init__(self, spec: PatternSpec, patterns: torch.Tensor, species: Sequence[np.ndarray],
                 coord_scale: float) -> None:
        instrument = Instrument(spec.function, spec.radiation, spec.qmin, spec.qmax, CHILI_QDAMP,
                                spec.biso, spec.qstep)
        self.calc = MeasuredGridCalculator(instrument, spec.grid(), dtype=torch.float32)
        rows = [raw_target(p, spec) for p in patterns]
        self.targets = [t.float() for t, _ in rows]
        self.offset = rows[0][1]
        self.symbols = [[elements.symbol(int(z)) for z in zs] for zs in species]
        self.coord_scale = coord_scale

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        """[B] misfit of the estimates x0 [B, M, 3] (model units; padding ignored)."""
        out = []
        for b, symbols in enumerate(self.symbols):
            xyz = x0[b, : len(symbols)].float() * self.coord_scale
            calc = self.calc([(symbols, xyz)])[0]
            out.append(pattern_loss(calc, self.targets[b], self.offset))
        return torch.stack(out).to(x0.dtype)


class CellMisfit:
    """Rw of unit cells' attenuated-crystal PDFs against their condition patterns (module
    docstring). PDF conditions only.

    Args:
        spec: the pattern type (a G(r) from r = 0).
        patterns: [B, L] model-ready condition patterns.
        species: per structure [n_b] atomic numbers.
        cells: [B, 6] lattice parameters (Å, degrees).
    """

    def __init__(self, spec: PatternSpec, patterns: torch.Tensor, species: Sequence[np.ndarray],
                 cells: torch.Tensor) -> None:
        if spec.function != "gr" or spec.rmin != 0:
            raise InvdesignError(
                f"guided sampling of unit cells needs a PDF condition; {spec.name} is not one")
        self.spec = spec
        self.uiso = spec.biso / (8 * math.pi**2)
        self.species = [np.asarray(z, dtype=np.int64) for z in species]
        self.cells = cells.detach().double().cpu().clone()
        self.cells0 = self.cells.clone()  # the predicted cells: the lattice guidance's anchor
        r = spec.grid()
        self.windows: list[tuple[np.ndarray, torch.Tensor, float]] = []
        for p in patterns:
            target, _ = raw_target(p, spec)
            diameter = diameter_from_pdf(target.numpy(), r)
            keep = r <= min(diameter, CELL_R_MAX)
            self.windows.append((r[keep], target[torch.as_tensor(keep)], diameter))
        self.models: list[CrystalPDF | None] = [None] * len(self.species)
        volumes = [abs(float(np.linalg.det(cellpar_to_cell(c.numpy())))) for c in self.cells]
        #: structures left unguided: collapsed cells, or cells whose pair list is refused
        self.skip = [v < MIN_VOLUME_PER_ATOM * len(z) for v, z in zip(volumes, self.species,
                                                                      strict=True)]

    def _model(self, b: int, frac: np.ndarray) -> tuple[CrystalPDF, torch.Tensor]:
        """The structure's CrystalPDF (rebuilt when an atom left its pair list's reach) and the
        fractional coordinates unwrapped next to the ones it was built with."""
        model = self.models[b]
        if model is not None:
            moved = frac - model.frac0
            moved -= np.round(moved)
            lengths = np.asarray(self.cells[b, :3])
            strained = np.abs(lengths / model.lattice0[:3] - 1.0).max()
            if float(np.abs(moved * lengths).max()) <= REBUILD and strained <= CELL_REBUILD:
                return model, torch.as_tensor(model.frac0, dtype=torch.float64)
        cell = Structure.from_cell_parameters(self.species[b], np.mod(frac, 1.0),
                                              self.cells[b].numpy())
        model = CrystalPDF(cell, self.windows[b][0], radiation=self.spec.radiation,
                           qmax=self.spec.qmax)
        self.models[b] = model
        return model, torch.as_tensor(model.frac0, dtype=torch.float64)

    def _prepared(self, b: int, frac: torch.Tensor) -> tuple[CrystalPDF, torch.Tensor] | None:
        """Structure b's CrystalPDF and its positions frac [n, 3] unwrapped next to the ones the
        pair list was built with (minimum image; differentiable in frac); None when b is left
        unguided."""
        if self.skip[b]:
            return None
        try:
            model, base = self._model(b, frac.detach().cpu().numpy())
        except InvdesignError:  # a pair list too large to hold
            self.skip[b] = True
            return None
        step = frac - base
        return model, base + step - torch.round(step.detach())

    def _misfit(self, model: CrystalPDF, b: int, lattice: torch.Tensor,
                frac: torch.Tensor) -> torch.Tensor:
        """Misfit of structure b at this lattice [6] and these unwrapped positions [n, 3]."""
        _, target, diameter = self.windows[b]
        calc = model(lattice=lattice, frac=frac, uiso=self.uiso, qdamp=CHILI_QDAMP,
                     spdiameter=diameter)
        return pattern_loss(calc, target, False)

    def _scan(self, model: CrystalPDF, b: int, lattice: torch.Tensor,
              scales: np.ndarray) -> torch.Tensor:
        """[S] misfits of structure b at the isotropic `scales` of `lattice` [6] with the pair
        list's own positions (CrystalPDF's fast grid path)."""
        _, target, diameter = self.windows[b]
        calc = model.grid(lattice, scales, np.array([self.uiso]), [diameter],
                          np.array([CHILI_QDAMP]))[:, 0, 0, 0, :]  # [S, m]
        return pattern_loss(calc, target, False)

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        """[B] misfit of the estimates x0 [B, M, 3] (fractional; padding ignored)."""
        out = []
        for b, z in enumerate(self.species):
            frac = x0[b, : len(z)].double()
            prepared = self._prepared(b, frac)
            out.append(frac.new_zeros(()) if prepared is None
                       else self._misfit(prepared[0], b, self.cells[b], prepared[1]))
        return torch.stack(out).to(x0.dtype)

    def steer_cells(self, x0: torch.Tensor, scale: float) -> None:
        """One guided step of the lattices (`self.cells`) for the estimates x0 [B, M, 3]
        (fractional): `_cell_step` with the Polyak factor `scale`."""
        for b, z in enumerate(self.species):
            self._cell_step(b, x0[b, : len(z)].detach().double().cpu(), scale)

    def fit_cells(self, fracs: Sequence[np.ndarray]) -> None:
        """The final lattice fit of the sampled structures (fractional coordinates [n_b, 3]
        each): the isotropic scale scanned within `CELL_SCAN` of the predicted cell (the forward
        model's fast grid path), kept when it fits better than the guided cell, then up to
        `CELL_ITERATIONS` lattice steps."""
        for b, frac in enumerate(fracs):
            frac = torch.as_tensor(np.asarray(frac, dtype=np.float64))
            self.models[b] = None  # the pair list at the final positions
            prepared = self._prepared(b, frac)
            if prepared is None:
                continue
            model = prepared[0]
            scales = np.arange(1 - CELL_SCAN, 1 + CELL_SCAN + 1e-9, CELL_SCAN_STEP)
            head = self.cells0[b]
            losses = self._scan(model, b, torch.cat([head[:3], self.cells[b, 3:]]), scales)
            best = int(torch.argmin(losses))
            if float(losses[best]) < float(self._scan(model, b, self.cells[b],
                                                      np.array([1.0]))[0]):
                self.cells[b, :3] = head[:3] * float(scales[best])
            for _ in range(CELL_ITERATIONS):
                if not self._cell_step(b, frac, 1.0):
                    break

    def _cell_step(self, b: int, frac: torch.Tensor, scale: float) -> bool:
        """A Polyak step on structure b's lattice (log lengths and angles in radians) at
        positions frac [n, 3], within `CELL_SCAN` / `ANGLE_RANGE` of the predicted cell, shortened
        until it lowers the misfit (`CELL_BACKTRACK` tries); whether one was taken."""
        prepared = self._prepared(b, frac)
        if prepared is None:
            return False
        model, frac = prepared

        def misfit(v: torch.Tensor) -> torch.Tensor:
            return self._misfit(model, b, torch.cat([v[:3].exp(), torch.rad2deg(v[3:])]), frac)

        def packed(cell: torch.Tensor) -> torch.Tensor:
            return torch.cat([cell[:3].log(), torch.deg2rad(cell[3:])])

        with torch.enable_grad():
            v = packed(self.cells[b]).requires_grad_(True)
            loss = misfit(v)
            (grad,) = torch.autograd.grad(loss, v)
        grad, loss = torch.nan_to_num(grad), loss.detach()
        norm2 = float(grad.pow(2).sum())
        if not math.isfinite(float(loss)) or norm2 == 0:
            return False
        delta = (-scale * float(loss) / norm2 * grad).clamp(-MAX_CELL_STEP, MAX_CELL_STEP)
        head = packed(self.cells0[b])
        reach = torch.tensor([math.log(1 + CELL_SCAN)] * 3 + [math.radians(ANGLE_RANGE)] * 3,
                             dtype=head.dtype)
        for _ in range(CELL_BACKTRACK):
            trial = torch.minimum(torch.maximum(v.detach() + delta, head - reach), head + reach)
            with torch.no_grad():
                if float(misfit(trial)) < float(loss):
                    self.cells[b] = torch.cat([trial[:3].exp(), torch.rad2deg(trial[3:])])
                    return True
            delta = delta / 4
        return False


class Guide:
    """The guided step of the clean estimate at one reverse step (module docstring).

    Args:
        misfit: estimates [B, M, 3] -> [B] misfit, differentiable.
        scale: the Polyak step's factor (0: no guidance).
        mask: [B, M] real atoms.
        torus: fractional coordinates (variance-exploding y = x0 + sigma eps) or particles
            (variance-preserving x = sqrt(abar) x0 + sqrt(1 - abar) eps).
        unit: [B, 3] Å per model unit along each axis (particles: coord_scale; cells: a, b, c),
            for the `MAX_STEP` limit.
    """

    def __init__(self, misfit: Misfit, scale: float, mask: torch.Tensor, torus: bool,
                 unit: torch.Tensor, cells: CellMisfit | None = None) -> None:
        self.misfit, self.scale, self.torus = misfit, float(scale), torus
        self.cells = cells
        self.mask = mask.unsqueeze(-1).to(torch.float32)
        self.unit = unit.to(torch.float32).unsqueeze(1)  # [B, 1, 3]
        self.history: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        """[B, M, 3] the step of the clean estimate implied by state x and noise prediction eps
        (model units; zero on padding)."""
        if self.torus:
            x0 = x - ((1 - abar) / abar).sqrt() * eps
        else:
            x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        mask = self.mask.to(x.device, x.dtype)
        unit = self.unit
        if self.cells is not None:
            self.cells.steer_cells(x0, self.scale)
            unit = self.cells.cells[:, :3].to(torch.float32).unsqueeze(1)  # the guided lengths
        with torch.enable_grad():
            est = x0.detach().requires_grad_(True)
            cosine = self.misfit(est)
            grad = (None if not cosine.requires_grad  # every structure left unguided
                    else torch.autograd.grad(cosine.sum(), est, allow_unused=True)[0])
        grad = torch.zeros_like(est) if grad is None else torch.nan_to_num(grad) * mask
        loss = cosine.detach()
        self.history.append(loss.cpu())
        norm2 = grad.pow(2).sum((1, 2)).clamp_min(1e-20)
        step = (self.scale * loss / norm2).view(-1, 1, 1) * grad
        longest = (step * unit.to(step)).norm(dim=-1).amax(dim=1)  # [B] Å
        step = step * (MAX_STEP / longest.clamp_min(1e-12)).clamp(max=1.0).view(-1, 1, 1)
        return -step

    def valid(self) -> torch.Tensor:
        """[B] the structures the forward model guides (unit cells it skips report misfit 0)."""
        skip = getattr(self.misfit, "skip", None)
        n = len(self.mask)
        return torch.ones(n, dtype=torch.bool) if skip is None else ~torch.as_tensor(skip)

    def adopt(self, parents: Sequence[int]) -> None:
        """Each structure b takes over structure parents[b]'s guided lattice (after population
        resampling, `resampling.py`; particles carry no per-structure state)."""
        if isinstance(self.misfit, CellMisfit):
            idx = torch.as_tensor(list(parents))
            self.misfit.cells = self.misfit.cells[idx].clone()
            self.misfit.cells0 = self.misfit.cells0[idx].clone()


def build_guide(spec: PatternSpec, patterns: torch.Tensor, species: Sequence[np.ndarray],
                mask: torch.Tensor, scale: float, *, cells: torch.Tensor | None = None,
                coord_scale: float = 1.0, guide_cell: bool = True) -> Guide:
    """The guide of one chunk of B structures: unit cells (`cells` [B, 6] given; fractional
    coordinates; `guide_cell`: their lattices are guided too, the result in `guide.cells.cells`)
    or particles (coordinates in units of `coord_scale` Å); `patterns` [B, L] their model-ready
    condition patterns, `mask` [B, M] their real atoms."""
    if cells is None:
        misfit: Misfit = ParticleMisfit(spec, patterns, species, coord_scale)
        unit = torch.full((len(species), 3), float(coord_scale))
        return Guide(misfit, scale, mask, False, unit)
    misfit = CellMisfit(spec, patterns, species, cells)
    return Guide(misfit, scale, mask, True, cells[:, :3].detach().cpu(),
                 misfit if guide_cell else None)
