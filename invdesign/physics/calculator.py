"""Scattering patterns of structures with DebyeCalculator, as tensors on the chosen device.

Only this package imports `debyecalculator`. Results stay on the device (`keep_on_device=True`) so
gradients flow back to positions when they require grad.

Guards: a structure of more than `max_atoms` atoms (the pair sum grows with the square of the
count) or wider than `MAX_SIM_EXTENT` (DebyeCalculator's distance grid grows with the extent) is
refused with an `InvdesignError` naming the limit, before any simulation; `simulate`,
`simulate_all` and `MeasuredGridCalculator` take `max_atoms=` to raise the atom limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PATTERNS, PatternSpec, Radiation
from invdesign.core.structure import Structure

#: Å^-1, q damping of the CHILI G(r) patterns (DebyeCalculator's default), used by `simulate` and
#: `simulate_all` alike.
_CHILI_QDAMP = 0.04
#: the most atoms simulated unless a caller passes a larger `max_atoms`
MAX_SIM_ATOMS = 50_000
#: Å, the widest structure simulated (twice the largest distance from its centroid)
MAX_SIM_EXTENT = 2_000.0


def check_simulable(n_atoms: int, positions: np.ndarray | torch.Tensor,
                    max_atoms: int = MAX_SIM_ATOMS) -> None:
    """Refuse, in one line naming the limit, a structure of too many atoms, or too wide (positions
    [n_atoms, 3] in Å), to simulate."""
    if n_atoms > max_atoms:
        raise InvdesignError(
            f"structure of {n_atoms} atoms is above the simulation limit of {max_atoms} atoms "
            "(the pair sum grows with the square of the count); pass max_atoms=... to "
            "simulate/simulate_all/MeasuredGridCalculator to raise it")
    xyz = torch.as_tensor(positions).detach().to("cpu", torch.float64)
    if n_atoms == 0:
        return
    # NaN positions pass (NaN patterns, judged by the caller); infinite ones are infinitely wide
    extent = (float("inf") if torch.isinf(xyz).any()
              else 2 * float(torch.linalg.norm(xyz - xyz.mean(dim=0), dim=1).max()))
    if extent > MAX_SIM_EXTENT:
        raise InvdesignError(
            f"structure is {extent:.4g} Å wide, above the simulation limit of "
            f"{MAX_SIM_EXTENT:g} Å (DebyeCalculator's distance grid grows with the width)")


@lru_cache(maxsize=32)
def _calculator(spec: PatternSpec, device: str, dtype: torch.dtype):
    # lazy: DebyeCalculator's import is slow
    from debyecalculator import DebyeCalculator  # noqa: PLC0415

    kwargs = dict(qmin=spec.qmin, qmax=spec.qmax, qstep=spec.qstep, biso=spec.biso,
                  qdamp=_CHILI_QDAMP, device=device, radiation_type=spec.radiation, dtype=dtype)
    if spec.function == "gr":
        kwargs.update(rmin=spec.rmin, rmax=spec.rmax, rstep=spec.rstep)
    return DebyeCalculator(**kwargs)


def simulate(structure: Structure, spec: PatternSpec, device: str = "cpu",
             dtype: torch.dtype = torch.float32, max_atoms: int = MAX_SIM_ATOMS) -> np.ndarray:
    """Pattern `spec` of a (finite) structure -> [2, n] array: grid row, value row.

    Unit cells are simulated as the finite set of atoms given (no periodic images), as
    DebyeCalculator does. Raises `InvdesignError` above `max_atoms` (`check_simulable`).
    """
    check_simulable(structure.n_atoms, structure.positions, max_atoms)
    calc = _calculator(spec, device, dtype)
    source = (structure.symbols, torch.as_tensor(structure.positions, dtype=dtype, device=device))
    fn = calc.gr if spec.function == "gr" else calc.iq
    grid, values = fn(source)
    grid, values = np.asarray(grid, dtype=np.float64), np.asarray(values, dtype=np.float64)
    n = spec.n_points
    return np.stack([grid[:n], values[:n]])


def simulate_all(structure: Structure, names: tuple[str, ...] = tuple(PATTERNS),
                 device: str = "cpu", max_atoms: int = MAX_SIM_ATOMS) -> dict[str, np.ndarray]:
    """All requested CHILI patterns (default: the six of Table 6) of a structure.

    The expensive part of every pattern is the O(n_atoms^2) pair sum. Here it runs once per
    element pair, with X-ray form factors, on one q grid that contains every requested pattern's
    q grid as a subgrid (DebyeCalculator's partial I(q)); the neutron pair sum follows from it by
    swapping form factors (f_a f_b -> b_a b_b, per element pair), and each pattern is read off the
    shared grid (I(q) by slicing; G(r) by the sine transform and q damping of
    `DebyeCalculator.gr` on its own q subgrid). Values agree with one `simulate` call per pattern
    to float32 rounding (tested). Requests whose grids do not nest fall back to `simulate`.
    """
    check_simulable(structure.n_atoms, structure.positions, max_atoms)
    specs = [PATTERNS[n] for n in names]
    shared = _shared_q_grid(specs)
    if shared is None:
        return {spec.name: simulate(structure, spec, device, max_atoms=max_atoms)
                for spec in specs}
    parts = _shared_parts(structure, shared, {spec.radiation for spec in specs}, device)
    lo, _, step = shared
    out = {}
    for spec in specs:
        iq, fq = parts[spec.radiation]
        start = int(round((spec.qmin - lo) / step))
        stride = int(round(spec.qstep / step))
        n_q = int(round((spec.qmax - spec.qmin) / spec.qstep))
        rows = slice(start, start + stride * n_q, stride)
        values = iq[rows] if spec.function == "iq" else _gr_from_fq(spec, fq[rows])
        out[spec.name] = np.stack([spec.grid(), values])
    return out


def _shared_q_grid(specs: Sequence[PatternSpec]) -> tuple[float, float, float] | None:
    """(qmin, qmax, qstep) of a grid holding every spec's q grid as a subgrid, or None.

    Only tried for two or more specs of one biso (one Debye-Waller factor).
    """
    if len(specs) < 2 or len({spec.biso for spec in specs}) != 1:
        return None
    step = min(spec.qstep for spec in specs)
    lo = min(spec.qmin for spec in specs)
    hi = max(spec.qmax for spec in specs)
    for spec in specs:
        ratio, offset = spec.qstep / step, (spec.qmin - lo) / step
        if abs(ratio - round(ratio)) > 1e-9 or abs(offset - round(offset)) > 1e-9:
            return None
    return lo, hi, step


def _shared_parts(structure: Structure, grid: tuple[float, float, float],
                  radiations: set[str], device: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{radiation: (I(q) with self-scattering, F(q))} on the shared grid, from one set of
    element-pair sums.

    Uses DebyeCalculator 1.1 internals (`_initialize_structures`, `_compute_iq_parts` with a
    partial): the per-pair sums f_a f_b sum_ij sinc(q d_ij) exp(-q^2 biso / 8 pi^2), the form
    factors, and the normalisation I -> F = q I_pair / (<f>^2 N) of `compute_sq`/`compute_fq`.
    """
    lo, hi, step = grid
    calcs = {
        radiation: _calculator(PatternSpec("shared", "shared", "iq", radiation, lo, hi, step,
                                           biso=PATTERNS["xrd"].biso), device, torch.float32)
        for radiation in ("xray", "neutron")
    }
    source = (structure.symbols, torch.as_tensor(structure.positions, dtype=torch.float32,
                                                 device=device))
    tuples = {
        radiation: calc._initialize_structures(source)[0] for radiation, calc in calcs.items()
    }
    xray = tuples["xray"]
    unique = [str(e) for e in np.unique(xray.elements)]
    counts = np.bincount(xray.structure_inverse.cpu().numpy(), minlength=len(unique))
    form = {radiation: t.unique_form_factors.double() for radiation, t in tuples.items()}
    nq = calcs["xray"].q.numel()
    pair = {radiation: torch.zeros(nq, dtype=torch.float64, device=device) for radiation in form}
    for a in range(len(unique)):
        for b in range(a, len(unique)):
            if a == b and counts[a] < 2:
                continue
            part, _ = calcs["xray"]._compute_iq_parts(xray, f"{unique[a]}-{unique[b]}",
                                                      include_self_scattering=False)
            part = part.double()
            pair["xray"] += part
            pair["neutron"] += part * (form["neutron"][a] * form["neutron"][b]) / (
                form["xray"][a] * form["xray"][b])
    out = {}
    for radiation in radiations:
        t, ff = tuples[radiation], form[radiation]
        # self-scattering sum_i (occ_i f_i)^2 / 2, grouped by element
        occ_sq = torch.zeros(len(unique), dtype=torch.float64, device=device).index_add_(
            0, t.structure_inverse, t.occupancy.double() ** 2)
        self_iq = (occ_sq.unsqueeze(-1) * ff**2).sum(dim=0) / 2
        iq = pair[radiation] + self_iq.expand(nq)
        q = calcs[radiation].q.squeeze(-1).double()
        fq = q * pair[radiation] / t.form_avg_sq.double() / t.size
        out[radiation] = (iq.cpu().numpy(), fq.cpu().numpy())
    return out


def _gr_from_fq(spec: PatternSpec, fq: np.ndarray) -> np.ndarray:
    """G(r) on the spec's r grid from F(q) on its q grid, as `DebyeCalculator.compute_gr` (with the
    calculator's default qdamp)."""
    r = spec.grid()
    gr = (2 / np.pi) * (fq * spec.qstep) @ _sin_qr(spec)
    return gr * np.exp(-(r * _CHILI_QDAMP) ** 2 / 2)


@lru_cache(maxsize=8)
def _sin_qr(spec: PatternSpec) -> np.ndarray:
    """[n_q, n_r] sin(q r) on the spec's q and r grids."""
    q = spec.qmin + spec.qstep * np.arange(int(round((spec.qmax - spec.qmin) / spec.qstep)))
    return np.sin(np.outer(q, spec.grid()))




# ------------------------------------------------------------------------------------------------
# Patterns on a measured grid with the instrument's parameters (forward simulation, refinement)

Source = Structure | tuple[Sequence[str], torch.Tensor]


@dataclass(frozen=True)
class Instrument:
    """Instrument parameters of a measured pattern.

    Attributes:
        function: 'gr' (reduced PDF G(r), grid r in Å) or 'iq' (intensity I(q), grid q in Å^-1).
        radiation: 'xray' or 'neutron' (form factors).
        qmin, qmax: Å^-1, q range of the Fourier transform ('gr'); unused for 'iq'.
        qdamp: Å^-1, Gaussian damping exp(-(r qdamp)^2 / 2) of G(r) from the finite q resolution.
        biso: Å^2, isotropic displacement of all atoms (Debye-Waller exp(-q^2 biso / 8 pi^2)).
        qstep: Å^-1, q spacing of the transform ('gr') or of the I(q) calculation before it is
            interpolated onto the measured q grid ('iq'); None picks min(0.05, pi / r_max) for 'gr'
            and 0.005 for 'iq'.
    """

    function: Literal["gr", "iq"] = "gr"
    radiation: Radiation = "xray"
    qmin: float = 1.0
    qmax: float = 30.0
    qdamp: float = 0.04
    biso: float = 0.3
    qstep: float | None = None


class MeasuredGridCalculator:
    """DebyeCalculator patterns of candidate structures on any measured grid, batched, on `device`.

    G(r): DebyeCalculator's F(q) (biso = 0) on q = qmin, qmin + qstep, ... < qmax is multiplied by
    the Debye-Waller factor and sine-transformed onto the measured r grid as `DebyeCalculator.gr`
    does,
        G(r) = 2/pi sum_q F(q) exp(-q^2 biso / 8 pi^2) sin(q r) qstep * exp(-(r qdamp)^2 / 2),
    so biso and qdamp are differentiable and any r grid (start, step, length) works.
    I(q): DebyeCalculator's I(q) on a fine uniform q grid, interpolated linearly onto the measured
    q grid.
    Results stay on the device; positions that require grad receive gradients.

    Args:
        instrument: the measured pattern's parameters.
        grid: [n] measured r (Å) or q (Å^-1), increasing.
        device: torch device name.
        dtype: torch.float32 or torch.float64.
        max_atoms: larger structures are refused (`check_simulable`).
    """

    def __init__(self, instrument: Instrument, grid: np.ndarray, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, max_atoms: int = MAX_SIM_ATOMS) -> None:
        self.instrument = instrument
        self.max_atoms = max_atoms
        self.device, self.dtype = device, dtype
        self.grid = torch.as_tensor(np.asarray(grid, dtype=np.float64), dtype=dtype, device=device)
        if instrument.function == "gr":
            step = instrument.qstep or min(0.05, float(np.pi / (float(grid[-1]) + 0.01)))
            self._calc = _measured_calculator(instrument.radiation, instrument.qmin,
                                              instrument.qmax, step, 0.0, device, dtype)
            q = self._calc.q.squeeze(-1)
            self.q = q
            self._sin_qr = torch.sin(q[:, None] * self.grid[None, :])  # [nq, nr]
            self.qstep = step
        else:
            step = instrument.qstep or 0.005
            lo = max(0.0, float(grid[0]) - step)
            hi = float(grid[-1]) + 2 * step
            self._calc = _measured_calculator(instrument.radiation, lo, hi, step, instrument.biso,
                                              device, dtype)
            self.q = self._calc.q.squeeze(-1)
            self.qstep = step

    def __call__(self, sources: Sequence[Source], biso: float | torch.Tensor | None = None,
                 qdamp: float | torch.Tensor | None = None) -> torch.Tensor:
        """[B, n] patterns of B structures (or (symbols, positions [n_atoms, 3] Å tensor) pairs).

        `biso` (Å^2) and `qdamp` (Å^-1) override the instrument's values for G(r); scalars or [B]
        tensors. For I(q) the instrument's biso is used (fixed).
        """
        return self.transform(self.raw(sources), biso, qdamp)

    def raw(self, sources: Sequence[Source]) -> torch.Tensor:
        """[B, nq] F(q) without Debye-Waller factor on `self.q` ('gr'), or [B, n] I(q) on the
        measured grid ('iq')."""
        rows = [self._one(src) for src in sources]
        if not rows:
            width = self.q.numel() if self.instrument.function == "gr" else self.grid.numel()
            return torch.zeros((0, width), dtype=self.dtype, device=self.device)
        return torch.stack(rows)

    def transform(self, out: torch.Tensor, biso: float | torch.Tensor | None = None,
                  qdamp: float | torch.Tensor | None = None) -> torch.Tensor:
        """[B, n] pattern on the measured grid from `raw` output (G(r): Debye-Waller factor, sine
        transform, q damping; I(q): unchanged)."""
        if self.instrument.function == "iq":
            return out
        biso = self.instrument.biso if biso is None else biso
        qdamp = self.instrument.qdamp if qdamp is None else qdamp
        biso = torch.as_tensor(biso, dtype=self.dtype, device=self.device).reshape(-1, 1)
        qdamp = torch.as_tensor(qdamp, dtype=self.dtype, device=self.device).reshape(-1, 1)
        debye_waller = torch.exp(-self.q.pow(2)[None, :] * biso / (8 * np.pi**2))  # [B|1, nq]
        gr = (2 / np.pi) * ((out * debye_waller * self.qstep) @ self._sin_qr)  # [B, nr]
        return gr * torch.exp(-(self.grid[None, :] * qdamp).pow(2) / 2)

    def _one(self, source: Source) -> torch.Tensor:
        if isinstance(source, Structure):
            symbols, xyz = source.symbols, torch.as_tensor(source.positions)
        else:
            symbols, xyz = list(source[0]), source[1]
        check_simulable(len(symbols), xyz, self.max_atoms)
        xyz = xyz.to(device=self.device, dtype=self.dtype)
        if self.instrument.function == "gr":
            return self._calc.fq((list(symbols), xyz), keep_on_device=True)[1]
        iq = self._calc.iq((list(symbols), xyz), keep_on_device=True)[1]
        return _interp(self.grid, self.q, iq)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Differentiable linear interpolation of fp(xp) at x (xp increasing and covering x)."""
    idx = torch.searchsorted(xp, x).clamp(1, xp.numel() - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    w = (x - x0) / (x1 - x0)
    return fp[idx - 1] * (1 - w) + fp[idx] * w


@lru_cache(maxsize=16)
def _measured_calculator(radiation: str, qmin: float, qmax: float, qstep: float, biso: float,
                         device: str, dtype: torch.dtype):
    # lazy: DebyeCalculator's import is slow
    from debyecalculator import DebyeCalculator  # noqa: PLC0415

    return DebyeCalculator(qmin=qmin, qmax=qmax, qstep=qstep, biso=biso, qdamp=0.0, device=device,
                           radiation_type=radiation, dtype=dtype)
