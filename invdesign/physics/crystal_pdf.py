"""PDFfit2's real-space PDF of a periodic crystal, optionally attenuated by a sphere, in torch.

The model (PDFgui / PDFfit2, Farrow et al. 2007):

    G(r) = gamma0(r; d) [ 1 / (N r) sum_i sum_{j != i} (f_i f_j / <f>^2) T_ij(r) - 4 pi rho0 r ]

with T_ij a unit-area Gaussian centred at the pair distance r_ij (every periodic image), of width
sigma_ij^2 = (U_i + U_j) (1 - delta2 / r_ij^2); N atoms in the cell, rho0 = N / V; f = Z for
X-rays (PDFfit2 uses f(0)) and the coherent neutron scattering length for neutrons (pymatgen's
table); gamma0(r; d) = 1 - 3 r / (2 d) + r^3 / (2 d^3) for r < d, 0 beyond (sphere of diameter
`spdiameter` d; None: bulk crystal). G is damped by exp(-(qdamp r)^2 / 2) and band limited to
0..qmax (the termination ripples: a sine transform, the q range cut at qmax, and back).

How it is computed (speed: the pair sum is the costly part):
- the periodic pairs (i, j, lattice shift) are enumerated once, at construction, out to
  (rmax + extension + TAIL) x (1 + rmax_margin), each unordered pair once (weight 2), as index
  tensors; the extension is N_RIPPLES termination periods 2 pi / qmax (PDFfit2 also computes
  beyond rmax and cuts there, which this reproduces);
- every call recomputes their distances from the lattice parameters (through the metric tensor, so
  only the cell parameters matter, not its orientation) and the fractional coordinates;
- the pairs are histogrammed per element pair on a fine uniform grid (linear sharing between the
  two nearest nodes: exact in value to O(step^2 / sigma^2), its slope in r_ij is the secant over
  one step), and the Gaussians are applied by FFT, per element pair and, when delta2 is used, per
  band of equal width in 1 / r^2 (N_BANDS bands from 0.85 x the shortest pair distance; within a
  band the width uses its centre);
- the fine curve is band limited by FFT and interpolated linearly to the requested r (any grid).
`grid` is the screen's fast path: many lattice scales x Uiso x diameters x qdamps at once.

`__call__` is differentiable in lattice, frac, uiso, delta2, qdamp and spdiameter. The scale is
PDFgui's (a fitted scale of 1 against PDFfit2), twice DebyeCalculator's G(r).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure

FINE_STEP = 0.005  # Å, step of the internal grid
N_BANDS = 32  # bands of equal width in 1 / r^2 for the delta2 sharpening (module docstring)
N_RIPPLES = 6  # the pair sum extends this many termination periods 2 pi / qmax beyond rmax
MIN_EXTENSION = 3.0  # Å, at least this much beyond rmax (peak tails)
GRID_SPLIT = 4  # `grid` bins the pairs on a grid this many times finer than the model's, once
TAIL = 1.0  # Å, pairs this far beyond the cut of G still spread their tails inside it (smoothness)
MAX_PAIRS = 30_000_000  # refuse cells whose pair list would not fit in memory


def scattering_weights(species: Sequence[int] | np.ndarray, radiation: str) -> np.ndarray:
    """[n] PDFfit2's pair weights per atom: Z for 'xray' (f at q = 0), the coherent scattering
    length (fm) for 'neutron'."""
    z = np.asarray(species, dtype=np.int64)
    if radiation == "xray":
        return z.astype(np.float64)
    if radiation == "neutron":
        # lazy: the module pulls in pymatgen's plotting (seconds), needed for neutrons only
        from pymatgen.analysis.diffraction.neutron import ATOMIC_SCATTERING_LEN  # noqa: PLC0415

        out = []
        for zi in z:
            sym = elements.symbol(int(zi))
            if sym not in ATOMIC_SCATTERING_LEN:
                raise InvdesignError(f"no neutron scattering length for {sym}")
            out.append(float(ATOMIC_SCATTERING_LEN[sym]))
        return np.asarray(out)
    raise InvdesignError(f"radiation must be 'xray' or 'neutron', not {radiation!r}")


def metric_tensor(lattice: torch.Tensor) -> torch.Tensor:
    """[3, 3] metric tensor (Å^2) of lattice [6] = a, b, c (Å), alpha, beta, gamma (deg)."""
    a, b, c = lattice[0], lattice[1], lattice[2]
    ca, cb, cg = torch.cos(torch.deg2rad(lattice[3:6]))
    return torch.stack([
        torch.stack([a * a, a * b * cg, a * c * cb]),
        torch.stack([a * b * cg, b * b, b * c * ca]),
        torch.stack([a * c * cb, b * c * ca, c * c]),
    ])


def cell_volume(lattice: torch.Tensor) -> torch.Tensor:
    """Volume (Å^3) of lattice [6] (a, b, c in Å; angles in degrees)."""
    return torch.sqrt(torch.linalg.det(metric_tensor(lattice)))


def shape_function(r: torch.Tensor, diameter: torch.Tensor) -> torch.Tensor:
    """[n] gamma0(r) of a sphere of `diameter` Å: 1 - 3/2 x + 1/2 x^3 for x = r / d < 1, else 0."""
    x = r / diameter
    return torch.where(x < 1, 1 - 1.5 * x + 0.5 * x**3, torch.zeros_like(x))


def enumerate_pairs(frac: np.ndarray, cell: np.ndarray, cutoff: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered periodic pair within `cutoff` Å: (i [p], j [p], shift [p, 3] integer),
    distance |frac_j + shift - frac_i| in the cell; i < j with any shift, or i == j with a shift
    whose first non-zero component is positive (so each pair appears once)."""
    frac = np.asarray(frac, dtype=np.float64)
    n = len(frac)
    recip = np.linalg.inv(cell).T  # rows: reciprocal vectors / 2 pi
    reach = np.ceil(cutoff * np.linalg.norm(recip, axis=1)).astype(int) + 1
    grids = np.meshgrid(*[np.arange(-k, k + 1) for k in reach], indexing="ij")
    shifts = np.stack([g.ravel() for g in grids], axis=1)
    ii, jj = np.triu_indices(n)  # i <= j
    d0 = frac[jj] - frac[ii]  # [m, 3]
    est = n * n * len(shifts) * (4 / 3 * np.pi * cutoff**3) / max(
        len(shifts) * abs(np.linalg.det(cell)), 1e-9)
    if est > MAX_PAIRS:
        raise InvdesignError(f"crystal PDF: about {est:.3g} pairs within {cutoff:.0f} Å; "
                             f"the cell ({n} atoms) is too large for this range")
    out_i, out_j, out_s = [], [], []
    chunk = max(1, 2_000_000 // max(len(ii), 1))
    for start in range(0, len(shifts), chunk):
        s = shifts[start:start + chunk]  # [k, 3]
        vec = (d0[None, :, :] + s[:, None, :]) @ cell  # [k, m, 3]
        dist = np.linalg.norm(vec, axis=-1)
        first = np.where(s[:, 0] != 0, s[:, 0], np.where(s[:, 1] != 0, s[:, 1], s[:, 2]))
        self_ok = first > 0  # [k]
        keep = (dist < cutoff) & ((ii != jj)[None, :] | self_ok[:, None])
        ks, ms = np.nonzero(keep)
        out_i.append(ii[ms])
        out_j.append(jj[ms])
        out_s.append(s[ks])
    return (np.concatenate(out_i), np.concatenate(out_j),
            np.concatenate(out_s).astype(np.float64).reshape(-1, 3))


class CrystalPDF:
    """G(r) (Å^-2) of a crystal by PDFfit2's model on a fixed r grid.

    Args:
        cell: the unit cell (kind 'unit_cell'); its species fix the pair weights and its cell the
            pair list.
        r: [m] r values (Å) where G is wanted (any increasing grid).
        radiation: 'xray' or 'neutron'.
        qmax: Å^-1, the band limit (0: no termination ripples).
        rmax_margin: relative extra reach of the pair list, so a lattice shrunk by up to this
            fraction still has every pair it needs.
        fine_step: Å, step of the internal grid.
    """

    def __init__(self, cell: Structure, r: np.ndarray, *, radiation: str, qmax: float,
                 rmax_margin: float = 0.06, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64, fine_step: float = FINE_STEP) -> None:
        if cell.kind != "unit_cell" or cell.cell is None:
            raise InvdesignError("CrystalPDF needs a unit cell")
        r = np.asarray(r, dtype=np.float64).reshape(-1)
        if r.size < 2 or np.any(np.diff(r) <= 0) or r[0] < 0:
            raise InvdesignError("CrystalPDF: r must be increasing, non-negative, 2+ points")
        self.device, self.dtype = torch.device(device), dtype
        self.qmax = float(qmax)
        self.n_atoms = cell.n_atoms
        self.species = cell.species.copy()
        self.frac0 = cell.frac_positions
        self.lattice0 = np.asarray(cell.cell_parameters(), dtype=np.float64)
        self.step = float(fine_step)
        ext = max(MIN_EXTENSION, N_RIPPLES * 2 * np.pi / self.qmax if self.qmax > 0 else 0.0)
        self.r_top = float(r[-1]) + ext
        n_fine = int(np.ceil((self.r_top + TAIL) / self.step)) + 1
        self.n_fine = n_fine
        t = dict(device=self.device, dtype=dtype)
        self.r_fine = torch.arange(n_fine, **t) * self.step

        self.cut = (self.r_fine <= self.r_top).to(dtype)  # G is cut here, as PDFfit2's range
        i, j, shift = enumerate_pairs(self.frac0, cell.cell,
                                      (self.r_top + TAIL) * (1 + rmax_margin))
        f = scattering_weights(self.species, radiation)
        fmean = f.mean()
        if fmean == 0:
            raise InvdesignError("CrystalPDF: mean scattering factor of the cell is zero")
        self.weight = torch.as_tensor(2 * f[i] * f[j] / fmean**2, **t)  # [p]
        unique = np.unique(self.species)
        code = np.searchsorted(unique, self.species)
        a, b = np.minimum(code[i], code[j]), np.maximum(code[i], code[j])
        group_of_pair = a * len(unique) + b
        groups, pair_group = np.unique(group_of_pair, return_inverse=True)
        self.unique = unique
        self.group_elements = np.stack([groups // len(unique), groups % len(unique)], 1)  # [g, 2]
        self.atom_code = torch.as_tensor(code, device=self.device)
        self.pair_group = torch.as_tensor(pair_group, device=self.device)
        d0 = self.frac0[j] - self.frac0[i] + shift  # [p, 3]
        order = np.argsort(np.linalg.norm(d0 @ cell.cell, axis=1))  # locality of the histogram
        i, j, shift, d0, pair_group = i[order], j[order], shift[order], d0[order], pair_group[order]
        self.weight = self.weight[torch.as_tensor(order, device=self.device)]
        self.pair_group = torch.as_tensor(pair_group, device=self.device)
        self.i = torch.as_tensor(i, device=self.device)
        self.j = torch.as_tensor(j, device=self.device)
        self.shift = torch.as_tensor(shift, **t)
        # products of the separation components: r^2 = quad @ (G00, G11, G22, G01, G02, G12)
        self.quad = torch.as_tensor(np.stack([d0[:, 0]**2, d0[:, 1]**2, d0[:, 2]**2,
                                              2 * d0[:, 0] * d0[:, 1], 2 * d0[:, 0] * d0[:, 2],
                                              2 * d0[:, 1] * d0[:, 2]], axis=1), **t)
        self.n_pairs = len(i)

        # delta2 bands: pairs from 0.85 x the shortest distance to the end, equal steps in 1 / r^2
        dist0 = np.linalg.norm(d0 @ cell.cell, axis=1)
        u_hi = 1 / max(0.85 * float(dist0.min()) if len(dist0) else 1.0, self.step) ** 2
        u_lo = 1 / float(self.r_fine[-1]) ** 2
        u_bin = 1 / np.maximum(self.r_fine.cpu().numpy(), self.step) ** 2
        band = np.clip(((u_hi - u_bin) / (u_hi - u_lo) * N_BANDS).astype(int), 0, N_BANDS - 1)
        edges = u_hi - (u_hi - u_lo) * np.arange(N_BANDS + 1) / N_BANDS
        self.band_u = torch.as_tensor(0.5 * (edges[:-1] + edges[1:]), **t)  # [b] centre 1/r^2
        self.band_mask = torch.as_tensor(band[None, :] == np.arange(N_BANDS)[:, None], **t)
        # linear interpolation fine grid -> requested r
        pos = r / self.step
        lo = np.clip(np.floor(pos).astype(np.int64), 0, n_fine - 2)
        self.r = torch.as_tensor(r, **t)
        self.interp_lo = torch.as_tensor(lo, device=self.device)
        self.interp_w = torch.as_tensor(pos - lo, **t)
        self.aligned = bool(np.all(np.abs(pos - lo) < 1e-9))
        # band limit: odd extension of length 2 L, frequencies q_k = pi k / (L step)
        self.fft_len = 2 * int(2 ** np.ceil(np.log2(2 * n_fine)))
        q = np.arange(self.fft_len // 2 + 1) * 2 * np.pi / (self.fft_len * self.step)
        self.q_mask = torch.as_tensor((q <= self.qmax) if self.qmax > 0 else np.ones_like(q),
                                      **t)

    def default_lattice(self) -> torch.Tensor:
        """[6] the cell's own lattice parameters."""
        return torch.as_tensor(self.lattice0, device=self.device, dtype=self.dtype)

    def default_frac(self) -> torch.Tensor:
        """[n, 3] the cell's own fractional coordinates."""
        return torch.as_tensor(self.frac0, device=self.device, dtype=self.dtype)

    def distances(self, lattice: torch.Tensor, frac: torch.Tensor | None = None) -> torch.Tensor:
        """[p] distances (Å) of the enumerated pairs for these lattice parameters and positions."""
        g = metric_tensor(lattice)
        if frac is None:
            gvec = torch.stack([g[0, 0], g[1, 1], g[2, 2], g[0, 1], g[0, 2], g[1, 2]])
            return torch.sqrt(self.quad @ gvec)
        d = frac[self.j] - frac[self.i] + self.shift  # [p, 3]
        return torch.sqrt(((d @ g) * d).sum(-1))

    def _fine(self, lattice, frac, uiso, delta2, qdamp, spdiameter) -> torch.Tensor:
        """[n_fine] G on the internal grid (before the band limit)."""
        t = dict(device=self.device, dtype=self.dtype)
        dist = self.distances(lattice, frac)
        # histogram per element-pair group, shared linearly between the two nearest bins
        n_groups, n_fine = len(self.group_elements), self.n_fine
        pos = dist / self.step
        # a lattice with no real metric (angles no cell can have) gives NaN distances: no pairs
        finite = torch.isfinite(pos.detach())
        pos = torch.where(finite, pos, torch.zeros_like(pos))
        lo = torch.floor(pos.detach()).long()
        inside = finite & (lo < n_fine - 1)
        lo = torch.where(inside, lo, torch.zeros_like(lo))
        w = torch.where(inside, self.weight, torch.zeros_like(self.weight))
        frac_w = pos - lo
        idx = self.pair_group * n_fine + lo
        hist = torch.zeros(n_groups * n_fine, **t)
        hist = hist.index_add(0, torch.cat([idx, idx + 1]),
                              torch.cat([w * (1 - frac_w), w * frac_w])).view(n_groups, n_fine)
        # one Uiso per element (atoms of one element: their mean)
        counts = torch.bincount(self.atom_code, minlength=len(self.unique)).to(self.dtype)
        u_el = torch.zeros(len(self.unique), **t).index_add(0, self.atom_code, uiso) / counts
        ge = torch.as_tensor(self.group_elements, device=self.device)
        u_pair = u_el[ge[:, 0]] + u_el[ge[:, 1]]  # [g]
        if n_groups == 0:  # no pair within reach: no peaks, G(r) is the -4 pi rho0 r baseline
            dens = hist.sum(0) + (uiso.sum() + delta2) * 0  # zeros that keep the autograd graph
            return self._baseline(dens, lattice, spdiameter, qdamp)
        if delta2.requires_grad or float(delta2) != 0:  # widths vary with r: one FFT per band
            corr = torch.clamp(1 - delta2 * self.band_u, min=1e-4)  # [b]
            hist = hist[:, None, :] * self.band_mask[None, :, :]  # [g, b, n_fine]
        else:
            corr = torch.ones(1, **t)
            hist = hist[:, None, :]
        sigma2 = torch.clamp(u_pair[:, None] * corr[None, :], min=1e-8)  # [g, b]
        # Padding against the FFT's wrap-around: 6 sigma, at most the grid's own length (a wider
        # Gaussian smears G flat anyway; an optimiser's trial of a huge or NaN Uiso must not ask
        # for an FFT of billions of points).
        sigma_max = float(torch.sqrt(sigma2.detach().max()))
        width = n_fine if not math.isfinite(sigma_max) else min(
            n_fine, int(math.ceil(6 * sigma_max / self.step)))
        n_fft = int(2 ** math.ceil(math.log2(n_fine + 2 * width)))
        q = torch.arange(n_fft // 2 + 1, **t) * (2 * math.pi / (n_fft * self.step))
        spec = torch.fft.rfft(hist, n=n_fft)  # [g, b, f]
        blur = torch.exp(-0.5 * sigma2[:, :, None] * q**2)
        dens = torch.fft.irfft((spec * blur).sum((0, 1)), n=n_fft)[:n_fine]
        return self._baseline(dens / self.step, lattice, spdiameter, qdamp)

    def _baseline(self, dens, lattice, spdiameter, qdamp) -> torch.Tensor:
        """[n_fine] G from the pair density `dens` [n_fine] (Å^-1): dens / (N r) - 4 pi rho0 r,
        times the sphere's shape function and the qdamp envelope, cut at the model's reach."""
        r = self.r_fine
        rho0 = self.n_atoms / cell_volume(lattice)
        g = torch.zeros_like(r)
        g = torch.where(r > 0, dens / (self.n_atoms * torch.clamp(r, min=self.step)), g)
        g = g - 4 * math.pi * rho0 * r
        if spdiameter is not None:
            g = g * shape_function(r, spdiameter)
        return g * torch.exp(-0.5 * (qdamp * r) ** 2) * self.cut

    def band_limit(self, g: torch.Tensor) -> torch.Tensor:
        """[..., n_fine] g restricted to 0..qmax by a sine transform (odd extension) and back."""
        if self.qmax <= 0:
            return g
        n = self.n_fine
        half = torch.cat([g, g.new_zeros(*g.shape[:-1], self.fft_len // 2 - n)], dim=-1)
        full = torch.cat([half, g.new_zeros(*g.shape[:-1], 1), -half[..., 1:].flip(-1)], dim=-1)
        spec = torch.fft.rfft(full) * self.q_mask
        return torch.fft.irfft(spec, n=self.fft_len)[..., :n]

    def to_output(self, g: torch.Tensor) -> torch.Tensor:
        """[..., m] the fine curve g [..., n_fine] at the constructor's r (linear interpolation)."""
        lo = self.interp_lo
        below = g.index_select(-1, lo)
        if self.aligned:  # r on the fine grid's nodes
            return below
        return below + (g.index_select(-1, lo + 1) - below) * self.interp_w

    @torch.no_grad()
    def grid(self, lattice: torch.Tensor, scales: np.ndarray, uisos: np.ndarray,
             diameters: list[float | None], qdamps: np.ndarray) -> torch.Tensor:
        """[S, U, D, Q, m] G(r) for every isotropic lattice scale x one Uiso for all atoms x
        sphere diameter (None: bulk) x qdamp, with delta2 = 0 and the cell's positions: the fast
        path of a screen (one pair histogram per scale, the Gaussians applied by FFT)."""
        t = dict(device=self.device, dtype=self.dtype)
        base = self.distances(torch.as_tensor(lattice, **t))
        r, n_fine = self.r_fine, self.n_fine
        uisos = torch.as_tensor(np.asarray(uisos, dtype=np.float64), **t)
        width = int(np.ceil(6 * float(torch.sqrt(2 * uisos.max())) / self.step))
        n_fft = int(2 ** np.ceil(np.log2(n_fine + 2 * width)))
        q = torch.arange(n_fft // 2 + 1, **t) * 2 * math.pi / (n_fft * self.step)
        blur = torch.exp(-0.5 * q[None, :] ** 2 * 2 * uisos[:, None])  # [U, f]
        env = torch.stack([torch.ones_like(r) if d is None or d <= 0
                           else shape_function(r, torch.tensor(d, **t)) for d in diameters])
        damp = torch.exp(-0.5 * (torch.as_tensor(np.asarray(qdamps, float), **t)[:, None]
                                 * r[None, :]) ** 2) * self.cut  # [Q, n]
        volume = cell_volume(torch.as_tensor(lattice, **t))
        # the pairs once on a grid GRID_SPLIT times finer; each scale re-bins those nodes
        fine = self.step / GRID_SPLIT
        smin = float(np.min(scales))
        n_x = int(np.ceil(n_fine / smin)) * GRID_SPLIT + 2
        pos = base / fine
        lo = torch.floor(pos).long()
        inside = lo < n_x - 1
        lo = torch.where(inside, lo, torch.zeros_like(lo))
        w = torch.where(inside, self.weight, torch.zeros_like(self.weight))
        f = pos - lo
        nodes = torch.zeros(n_x, **t).index_add(0, torch.cat([lo, lo + 1]),
                                                torch.cat([w * (1 - f), w * f]))
        used = nodes.nonzero().squeeze(1)
        node_r, node_w = used.to(self.dtype) * fine, nodes[used]
        out = []
        for s in np.asarray(scales, dtype=np.float64):
            pos = node_r * float(s) / self.step
            lo = torch.floor(pos).long()
            inside = lo < n_fine - 1
            lo = torch.where(inside, lo, torch.zeros_like(lo))
            w = torch.where(inside, node_w, torch.zeros_like(node_w))
            f = pos - lo
            hist = torch.zeros(n_fine, **t).index_add(
                0, torch.cat([lo, lo + 1]), torch.cat([w * (1 - f), w * f]))
            dens = torch.fft.irfft(torch.fft.rfft(hist, n=n_fft)[None, :] * blur,
                                   n=n_fft)[:, :n_fine] / self.step  # [U, n]
            rho0 = self.n_atoms / (volume * float(s) ** 3)
            g = dens / (self.n_atoms * torch.clamp(r, min=self.step)) - 4 * math.pi * rho0 * r
            g = g[:, None, None, :] * env[None, :, None, :] * damp[None, None, :, :]
            out.append(self.to_output(self.band_limit(g)))
        return torch.stack(out)

    def __call__(self, *, lattice: torch.Tensor, frac: torch.Tensor | None = None,
                 uiso: torch.Tensor, delta2: torch.Tensor | float = 0.0,
                 qdamp: torch.Tensor | float = 0.0,
                 spdiameter: torch.Tensor | float | None = None) -> torch.Tensor:
        """[m] G(r) (Å^-2) on the constructor's r.

        Args:
            lattice: [6] a, b, c (Å), alpha, beta, gamma (deg).
            frac: [n, 3] fractional coordinates (None: the cell's).
            uiso: [n] Å^2 per atom (the model uses their mean per element) or a scalar for all.
            delta2: Å^2, correlated-motion sharpening; qdamp: Å^-1.
            spdiameter: Å, sphere diameter; None or <= 0: the bulk crystal.
        """
        t = dict(device=self.device, dtype=self.dtype)
        lattice = torch.as_tensor(lattice, **t)
        uiso = torch.as_tensor(uiso, **t)
        if uiso.dim() == 0:
            uiso = uiso.expand(self.n_atoms)
        if spdiameter is not None:
            spdiameter = torch.as_tensor(spdiameter, **t)
            if float(spdiameter.detach()) <= 0:
                spdiameter = None
        g = self._fine(lattice, None if frac is None else torch.as_tensor(frac, **t), uiso,
                       torch.as_tensor(delta2, **t), torch.as_tensor(qdamp, **t), spdiameter)
        return self.to_output(self.band_limit(g))
