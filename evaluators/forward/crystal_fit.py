"""Fits of attenuated crystals (a unit cell x sphere shape function, PDFgui / PDFfit2 style) to a
measured PDF, through `physics.crystal_pdf.CrystalPDF`.

- `screen_crystal`: fast; grids over an isotropic lattice scale, the sphere diameter (a few values
  around `diameter`, plus the bulk crystal), one Uiso for all atoms and, only with `fit_qdamp`,
  qdamp; the scale by least squares. Rw is `metrics.pattern.rw`, as for particles.
- `refine_crystal`: PDFfit2's standard parameters, first by scipy's trust-region least squares
  (finite differences) on all but the positions, then by L-BFGS (torch autograd) on all, within the
  budget (60 % of it for the first stage when positions are refined): the lattice as allowed by the
  cell's space group (the metric tensor restricted to the symmetric matrices every point operation
  keeps, so cubic refines a, hexagonal and tetragonal a and c, orthorhombic a, b, c, monoclinic also
  beta, in any setting), delta2, one Uiso per element, qdamp (with `fit_qdamp`), the sphere diameter
  (10-1000 Å; a bulk start stays bulk), atom positions (displacements the space group allows, with
  a soft bound of a few tenths of an Å) and the scale; within `max_seconds`; never worse than its
  start.
- `crystal_curve`: the fitted curve (scaled) on the measured grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from scipy.optimize import least_squares

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.forward.evaluator import fit_window
from invdesign.evaluators.metrics.pattern import rw
from invdesign.io.measured import MeasuredPattern
from invdesign.physics.crystal_pdf import CrystalPDF, metric_tensor

SCALES = np.linspace(0.96, 1.04, 17)  # isotropic lattice factors of the screen (0.5 % steps):
# every other one first, then the two beside the best of those
UISOS = np.array([0.003, 0.006, 0.010, 0.016])  # Å^2, the screen's one Uiso for all atoms
DIAMETER_FACTORS = (0.6, 1.0, 1.6)  # x `diameter`, plus the bulk crystal
DIAMETERS = (25.0, 50.0, 100.0)  # Å, when no diameter is given
QDAMPS = np.array([0.0, 0.02, 0.04, 0.06])  # Å^-1, only with fit_qdamp
FINE_STEP = 0.01  # Å, the model's internal grid: half the engine's default, for speed (Rw
# against the PDFfit2 references changes by about 1e-4)
SP_MIN, SP_MAX = 10.0, 1000.0  # Å, bounds of the refined sphere diameter
DELTA2_START = 0.3  # Å^2, delta2 starts here when the start has none (softplus: not at 0)
POSITION_SOFT = 0.3  # Å, displacements beyond this are penalised (fourth power)
_CACHE: dict[tuple, CrystalPDF] = {}


@dataclass
class CrystalFit:
    """One attenuated-crystal fit.

    Attributes:
        cell: the fitted unit cell (kind 'unit_cell'; lattice and positions as fitted).
        rw: Rw over the fit range; scale: least-squares scale (PDFgui's: 1 for a perfect model).
        params: a, b, c (Å), alpha, beta, gamma (deg), delta2 (Å^2), qdamp (Å^-1), spdiameter (Å,
            0 = bulk crystal), uiso_<Symbol> (Å^2) per element.
        steps: optimiser steps (grid points for a screen); seconds: wall time.
    """

    cell: Structure
    rw: float
    scale: float
    params: dict[str, float]
    steps: int
    seconds: float


def _window(measured: MeasuredPattern, fit_range) -> tuple[np.ndarray, torch.Tensor]:
    lo, hi = fit_window(measured, fit_range)
    keep = (measured.x >= lo) & (measured.x <= hi)
    return measured.x[keep], torch.as_tensor(measured.y[keep], dtype=torch.float64)


def _model(cell: Structure, r: np.ndarray, measured: MeasuredPattern) -> CrystalPDF:
    """CrystalPDF of the cell on r, cached (the pair list is the costly part)."""
    key = (cell.species.tobytes(), cell.positions.tobytes(), cell.cell.tobytes(), r.tobytes(),
           measured.radiation, float(measured.qmax))
    if key not in _CACHE:
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = CrystalPDF(cell, r, radiation=measured.radiation, qmax=measured.qmax,
                                 rmax_margin=0.1, fine_step=FINE_STEP)
    return _CACHE[key]


def _params(lattice: np.ndarray, delta2: float, qdamp: float, spdiameter: float | None,
            species: np.ndarray, uiso: np.ndarray) -> dict[str, float]:
    out = dict(zip(("a", "b", "c", "alpha", "beta", "gamma"), map(float, lattice), strict=True))
    out.update(delta2=float(delta2), qdamp=float(qdamp), spdiameter=float(spdiameter or 0.0))
    for z in np.unique(species):
        out[f"uiso_{elements.symbol(int(z))}"] = float(np.mean(uiso[species == z]))
    return out


def screen_crystal(cell: Structure, measured: MeasuredPattern, *, fit_range: tuple[float, float],
                   diameter: float | None, fit_qdamp: bool) -> CrystalFit:
    """Best grid point (lattice scale x diameter x Uiso x qdamp) of `cell` against `measured`."""
    start = time.perf_counter()
    r, obs = _window(measured, fit_range)
    model = _model(cell, r, measured)
    factors = DIAMETER_FACTORS if diameter else None
    diameters: list[float | None] = ([diameter * f for f in factors] if factors
                                     else list(DIAMETERS)) + [None]
    qdamps = QDAMPS if fit_qdamp else np.array([measured.qdamp])
    lattice = model.default_lattice()
    # stage 1: lattice scale x Uiso at a middle diameter and qdamp; stage 2: at the best scale,
    # Uiso x diameter x qdamp
    middle = [diameters[len(diameters) // 2 - 1]]
    coarse = np.arange(0, len(SCALES), 2)
    first = model.grid(lattice, SCALES[coarse], UISOS, middle, qdamps[len(qdamps) // 2:][:1])
    values = torch.nan_to_num(rw(obs, first)[0], nan=np.inf).amin((1, 2, 3))  # [scales]
    s, v_best = int(coarse[int(torch.argmin(values))]), float(values.min())
    near = [k for k in (s - 1, s + 1) if 0 <= k < len(SCALES)]
    second = model.grid(lattice, SCALES[near], UISOS, middle, qdamps[len(qdamps) // 2:][:1])
    values = torch.nan_to_num(rw(obs, second)[0], nan=np.inf).amin((1, 2, 3))
    for k, v in zip(near, values.tolist(), strict=True):
        if v < v_best:
            s, v_best = k, v
    calc = model.grid(lattice, SCALES[s:s + 1], UISOS, diameters, qdamps)[0]  # [U, D, Q, m]
    values, scales = rw(obs, calc)
    values = torch.nan_to_num(values, nan=np.inf)
    best = np.unravel_index(int(torch.argmin(values)), tuple(values.shape))
    u, d, q = best
    factor = float(SCALES[s])
    fitted = Structure(cell.species, cell.positions * factor, cell.cell * factor, "unit_cell",
                       dict(cell.info))
    lat = lattice.numpy().copy()
    lat[:3] *= factor
    params = _params(lat, 0.0, float(qdamps[q]), diameters[d], cell.species,
                     np.full(cell.n_atoms, UISOS[u]))
    with torch.no_grad():  # the chosen point by the full model (as `crystal_curve` gives it)
        exact = model(lattice=torch.as_tensor(lat), uiso=torch.tensor(float(UISOS[u])),
                      qdamp=float(qdamps[q]), spdiameter=diameters[d])
    value, scale = rw(obs, exact)
    return CrystalFit(fitted, float(value), float(scale), params,
                      int((len(coarse) + len(near)) * len(UISOS) + values.numel()),
                      time.perf_counter() - start)


def _metric_basis(rotations: np.ndarray) -> np.ndarray:
    """[k, 3, 3] basis of the symmetric matrices G with W^T G W = G for every rotation W."""
    index = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
    units = []
    for a, b in index:
        e = np.zeros((3, 3))
        e[a, b] = e[b, a] = 1.0
        units.append(e)
    rows = [np.stack([(w.T @ e @ w - e).ravel() for e in units], axis=1) for w in rotations]
    _, sv, vt = np.linalg.svd(np.concatenate(rows, axis=0))
    null = vt[np.sum(sv > 1e-8):]
    return np.einsum("kc,cij->kij", null, np.stack(units))


def _position_basis(frac: np.ndarray, rotations: np.ndarray, translations: np.ndarray
                    ) -> np.ndarray:
    """[3n, k] orthonormal basis of the fractional displacements the space group allows."""
    n = len(frac)
    proj = np.zeros((3 * n, 3 * n))
    for w, t in zip(rotations, translations, strict=True):
        image = frac @ w.T + t
        diff = image[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        perm = np.argmin(np.linalg.norm(diff, axis=-1), axis=1)
        winv = np.linalg.inv(w)
        for k in range(n):
            proj[3 * k:3 * k + 3, 3 * perm[k]:3 * perm[k] + 3] += winv
    proj /= len(rotations)
    u, sv, _ = np.linalg.svd(proj)
    return u[:, sv > 0.5]


def _symmetry(cell: Structure) -> tuple[np.ndarray, np.ndarray]:
    """(metric basis [k, 3, 3], position basis [3n, m]) from the cell's space group (spglib via
    pymatgen, symprec 0.01 Å); P1 when no symmetry is found."""
    frac = cell.frac_positions
    try:
        data = SpacegroupAnalyzer(cell.to_pymatgen(), symprec=0.01).get_symmetry_dataset()
        rotations = np.asarray(data.rotations, dtype=float)
        translations = np.asarray(data.translations, dtype=float)
    except Exception:  # noqa: BLE001 - spglib failures mean: no symmetry used
        rotations, translations = np.eye(3)[None], np.zeros((1, 3))
    return _metric_basis(rotations), _position_basis(frac, rotations, translations)


class _OutOfTime(Exception):
    """Raised inside the least-squares residual when the time budget is spent."""


def _lattice_of(g: torch.Tensor) -> torch.Tensor:
    """[6] a, b, c (Å), alpha, beta, gamma (deg) of metric tensor g [3, 3]."""
    a, b, c = torch.sqrt(g[0, 0]), torch.sqrt(g[1, 1]), torch.sqrt(g[2, 2])
    alpha = torch.rad2deg(torch.arccos(g[1, 2] / (b * c)))
    beta = torch.rad2deg(torch.arccos(g[0, 2] / (a * c)))
    gamma = torch.rad2deg(torch.arccos(g[0, 1] / (a * b)))
    return torch.stack([a, b, c, alpha, beta, gamma])


def _inv_softplus(y: float) -> float:
    return float(np.log(np.expm1(max(y, 1e-6))))


def refine_crystal(cell: Structure, measured: MeasuredPattern, *, fit_range,
                   start: CrystalFit | None, fit_qdamp: bool, max_seconds: float = 20.0,
                   positions: bool = True) -> CrystalFit:
    """Refine `cell` (from `start`, else from a screen) against `measured` (module docstring)."""
    t0 = time.perf_counter()
    if start is None:
        start = screen_crystal(cell, measured, fit_range=fit_range, diameter=None,
                               fit_qdamp=fit_qdamp)
    r, obs = _window(measured, fit_range)
    model = _model(cell, r, measured)
    dt = torch.float64
    metric_basis, pos_basis = _symmetry(start.cell)
    p = start.params
    lat0 = torch.tensor([p[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")], dtype=dt)
    g0 = metric_tensor(lat0)
    a2 = float(g0.diagonal().mean())
    basis = torch.as_tensor(metric_basis, dtype=dt)
    model_frac = model.default_frac()  # the pair list's images: keep its unwrapped positions
    moved = torch.as_tensor(start.cell.frac_positions, dtype=dt) - model_frac
    frac0 = model_frac + moved - torch.round(moved)
    pbasis = torch.as_tensor(pos_basis if positions else np.zeros((3 * cell.n_atoms, 0)), dtype=dt)
    codes = np.searchsorted(np.unique(cell.species), cell.species)
    code_t = torch.as_tensor(codes)
    symbols = [elements.symbol(int(z)) for z in np.unique(cell.species)]
    u0 = torch.tensor([p[f"uiso_{s}"] for s in symbols], dtype=dt)
    bulk = p["spdiameter"] <= 0
    sp0 = min(max(p["spdiameter"], SP_MIN + 1), SP_MAX - 1)
    theta = {
        "lattice": torch.zeros(len(basis), dtype=dt),
        "uiso": torch.zeros(len(symbols), dtype=dt),
        "delta2": torch.tensor(_inv_softplus(max(p["delta2"], DELTA2_START)), dtype=dt),
        "qdamp": torch.tensor(_inv_softplus(max(p["qdamp"], 1e-3) / 0.1), dtype=dt),
        "sp": torch.tensor(float(np.log((sp0 - SP_MIN) / (SP_MAX - sp0))), dtype=dt),
        "pos": torch.zeros(pbasis.shape[1], dtype=dt),
    }
    fixed_qdamp = torch.tensor(p["qdamp"], dtype=dt)
    lengths = torch.as_tensor(np.linalg.norm(start.cell.cell, axis=1), dtype=dt)

    def physical(th):
        g = g0 + a2 * 0.01 * torch.einsum("k,kij->ij", th["lattice"], basis)
        shift = (pbasis @ th["pos"]).reshape(-1, 3) * 0.01
        return {
            "lattice": _lattice_of(g),
            "frac": frac0 + shift,
            "uiso": (u0 * torch.exp(th["uiso"]))[code_t],
            "delta2": torch.nn.functional.softplus(th["delta2"]),
            "qdamp": 0.1 * torch.nn.functional.softplus(th["qdamp"]) if fit_qdamp
            else fixed_qdamp,
            "spdiameter": None if bulk else SP_MIN + (SP_MAX - SP_MIN) * torch.sigmoid(th["sp"]),
        }, shift

    def evaluate(th):
        phys, shift = physical(th)
        value, scale = rw(obs, model(**phys))
        moved = ((shift * lengths) ** 2).sum(-1) / POSITION_SOFT**2
        return value, scale, phys, (moved**2).sum()

    keys = [k for k in theta if not (k == "qdamp" and not fit_qdamp) and not (k == "sp" and bulk)]
    with torch.no_grad():
        best_value, best_scale, best_phys, _ = evaluate(theta)
    best = {"value": float(best_value), "scale": best_scale, "phys": best_phys, "calls": 0}
    steps = 0
    norm = float(torch.linalg.norm(obs))

    # stage 1: Levenberg-Marquardt-like trust region (scipy) on everything but the positions
    glob = [k for k in keys if k != "pos"]
    sizes = [theta[k].numel() for k in glob]

    def unpack(x: np.ndarray) -> None:
        for k, part in zip(glob, np.split(x, np.cumsum(sizes)[:-1]), strict=True):
            theta[k] = torch.as_tensor(part, dtype=dt).reshape(theta[k].shape)

    def residual(x: np.ndarray) -> np.ndarray:
        if time.perf_counter() - t0 > budget:
            raise _OutOfTime
        best["calls"] += 1
        unpack(x)
        with torch.no_grad():
            phys, _ = physical(theta)
            calc = model(**phys)
        value, scale = rw(obs, calc)
        if np.isfinite(float(value)) and float(value) < best["value"]:
            best.update(value=float(value), scale=scale, phys=phys, x=x.copy())
        return ((obs - scale * calc) / norm).numpy()

    budget = max_seconds * (0.6 if positions and pbasis.shape[1] else 1.0)
    x0 = np.concatenate([theta[k].detach().numpy().ravel() for k in glob])
    try:
        least_squares(residual, x0, method="trf", diff_step=1e-3, x_scale=1.0,
                      max_nfev=200 * len(x0))
    except _OutOfTime:
        pass
    steps += best["calls"]
    # stage 2: positions too, by L-BFGS on Rw^2 (autograd), from the best state so far
    if positions and pbasis.shape[1] and time.perf_counter() - t0 < max_seconds:
        if "x" in best:
            unpack(best["x"])
        free = [theta[k].detach().clone().requires_grad_(True) for k in keys]
        for k, v in zip(keys, free, strict=True):
            theta[k] = v
        optimiser = torch.optim.LBFGS(free, lr=1.0, max_iter=4, line_search_fn="strong_wolfe")

        def closure():
            optimiser.zero_grad()
            value, _, _, penalty = evaluate(theta)
            loss = value**2 + 1e-3 * penalty
            loss.backward()
            return loss

        stale = 0
        while time.perf_counter() - t0 < max_seconds and stale < 3:
            optimiser.step(closure)
            steps += 1
            with torch.no_grad():
                value, scale, phys, _ = evaluate(theta)
            value = float(value)
            if not np.isfinite(value):
                break
            stale = stale + 1 if value > best["value"] - 1e-5 else 0
            if value < best["value"]:
                best.update(value=value, scale=scale, phys=phys)
    best_value, best_scale, best_phys = best["value"], best["scale"], best["phys"]
    if best_value >= start.rw:
        return CrystalFit(start.cell, start.rw, start.scale, dict(start.params), steps,
                          time.perf_counter() - t0)
    lattice = best_phys["lattice"].detach().numpy()
    frac = best_phys["frac"].detach().numpy()
    fitted = Structure.from_cell_parameters(cell.species, frac, lattice)
    fitted = Structure(fitted.species, fitted.positions, fitted.cell, "unit_cell", dict(cell.info))
    sp = best_phys["spdiameter"]
    params = _params(lattice, float(best_phys["delta2"]), float(best_phys["qdamp"]),
                     None if sp is None else float(sp), cell.species,
                     best_phys["uiso"].detach().numpy())
    return CrystalFit(fitted, best_value, float(best_scale), params, steps,
                      time.perf_counter() - t0)


def crystal_curve(fit: CrystalFit, measured: MeasuredPattern, fit_range
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(r [m] Å, calculated G [m] x fit.scale) of `fit` on the measured grid within the range."""
    r, _ = _window(measured, fit_range)
    model = _model(fit.cell, r, measured)
    p = fit.params
    symbols = [elements.symbol(int(z)) for z in fit.cell.species]
    with torch.no_grad():
        calc = model(lattice=model.default_lattice(), uiso=torch.tensor(
            [p[f"uiso_{s}"] for s in symbols], dtype=torch.float64), delta2=p["delta2"],
            qdamp=p["qdamp"], spdiameter=p["spdiameter"] or None)
    if not torch.all(torch.isfinite(calc)):
        raise InvdesignError("crystal fit gives a non-finite curve")
    return r, calc.numpy() * fit.scale
