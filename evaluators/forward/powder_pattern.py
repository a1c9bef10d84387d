"""Powder X-ray pattern of a crystal on a measured 2-theta axis (the forward model of `powder_fit`).

Reflections: every hkl with d above a limit, grouped into orbits of the cell's Laue group (the
point group of its space group plus inversion), one representative per orbit with its
multiplicity, so that lattice changes allowed by the crystal system never split an orbit.
Intensities: |F|^2 with pymatgen's X-ray form factors (the table and formula of its
`XRDCalculator`, no anomalous dispersion), one overall isotropic B (Å^2) and the
Lorentz-polarisation factor (1 + cos^2 2θ) / (sin^2 θ cos θ) (no monochromator), as
`XRDCalculator` computes them.
Profile: Thompson-Cox-Hastings pseudo-Voigt, area normalised; Gaussian FWHM^2 = U tan^2 θ + W
(deg^2, instrument), Lorentzian FWHM = (180/π)(K λ / (D cos θ) + 4 ε tan θ) (deg) with the
Scherrer size D (Å, K = `SCHERRER_K`) and the microstrain ε. A Kα2 line, when given, adds the same
reflections at its wavelength with `KALPHA2_RATIO` of the intensity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pymatgen.analysis.diffraction.xrd import ATOMIC_SCATTERING_PARAMS
from pymatgen.core import Lattice
from pymatgen.core import Structure as PmgStructure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure

SCHERRER_K = 0.9
KALPHA2_RATIO = 0.5
#: Peaks are summed within (3 + WINDOW_FWHM x Lorentzian fraction) FWHM of their centre: a Gaussian
#: is negligible beyond 3 FWHM; the Lorentzian tails beyond the window go to the background.
WINDOW_FWHM = 12.0
#: Free lattice parameters per crystal system (the others follow from them).
FREE_LATTICE: dict[str, tuple[str, ...]] = {
    "cubic": ("a",), "tetragonal": ("a", "c"), "hexagonal": ("a", "c"), "trigonal": ("a", "c"),
    "orthorhombic": ("a", "b", "c"), "monoclinic": ("a", "b", "c", "angle"),
    "triclinic": ("a", "b", "c", "alpha", "beta", "gamma"),
}
LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")


@dataclass(frozen=True)
class Profile:
    """Peak-shape parameters: zero shift (deg, added to computed 2θ), U and W (deg^2), size (Å),
    strain (dimensionless), biso (Å^2)."""

    zero: float = 0.0
    u: float = 0.0
    w: float = 0.01
    size: float = 2000.0
    strain: float = 0.0
    biso: float = 0.5


@dataclass(frozen=True)
class Reflections:
    """One representative hkl per Laue orbit of a conventional cell.

    Attributes:
        cell: the conventional standard cell (pymatgen) the hkl refer to.
        system: crystal system; spacegroup: its symbol.
        hkl: [m, 3] int representatives; multiplicity: [m].
        cos_phase, sin_phase: [m, n_atoms] cos and sin of 2π h·x_j.
        atom_element: [n_atoms] index into `z`/`coeff`; z: [n_el]; coeff: [n_el, k, 2].
        free: names of the free lattice parameters; angle_index: the monoclinic angle (3..5).
    """

    cell: PmgStructure
    system: str
    spacegroup: str
    hkl: np.ndarray
    multiplicity: np.ndarray
    cos_phase: np.ndarray
    sin_phase: np.ndarray
    atom_element: np.ndarray
    z: np.ndarray
    coeff: np.ndarray
    free: tuple[str, ...]
    angle_index: int

    @property
    def lattice(self) -> np.ndarray:
        """[6] the conventional cell's a, b, c (Å), alpha, beta, gamma (deg)."""
        return np.array(self.cell.lattice.parameters)

    def free_values(self, lattice: np.ndarray) -> np.ndarray:
        """The free parameters of a full [6] lattice."""
        index = {"a": 0, "b": 1, "c": 2, "alpha": 3, "beta": 4, "gamma": 5,
                 "angle": self.angle_index}
        return np.array([lattice[index[name]] for name in self.free])

    def full_lattice(self, free: np.ndarray) -> np.ndarray:
        """[6] lattice from the free values (ties and fixed angles of the crystal system)."""
        out = self.lattice.copy()
        values = dict(zip(self.free, np.asarray(free, float), strict=True))
        out[0] = values["a"]
        out[1] = values.get("b", values["a"])
        out[2] = values.get("c", values["a"])
        if self.system == "triclinic":
            out[3:] = [values["alpha"], values["beta"], values["gamma"]]
        elif self.system == "monoclinic":
            out[self.angle_index] = values["angle"]
        return out


def conventional(cell: Structure, symprec: float = 0.01) -> tuple[PmgStructure, str, str]:
    """The conventional standard cell of `cell` (pymatgen), its crystal system and space group."""
    if cell.kind != "unit_cell":
        raise InvdesignError("a powder pattern needs a unit cell, not a particle")
    pmg = cell.to_pymatgen()
    try:
        sga = SpacegroupAnalyzer(pmg, symprec=symprec)
        conv = sga.get_conventional_standard_structure()
        sga = SpacegroupAnalyzer(conv, symprec=symprec)
        return conv, sga.get_crystal_system(), sga.get_space_group_symbol()
    except (TypeError, ValueError):  # spglib found no symmetry: P1 as given
        return pmg, "triclinic", "P1"


def reflections(cell: Structure, dmin: float, symprec: float = 0.01) -> Reflections:
    """All hkl orbits of `cell`'s conventional cell with d >= `dmin` (Å)."""
    conv, system, symbol = conventional(cell, symprec)
    lattice = conv.lattice
    kmax = np.ceil(np.array(lattice.abc) / dmin).astype(int)
    grids = np.meshgrid(*[np.arange(-k, k + 1) for k in kmax], indexing="ij")
    hkl = np.stack([g.ravel() for g in grids], axis=1)
    inv_d = np.linalg.norm(hkl @ lattice.reciprocal_lattice_crystallographic.matrix, axis=1)
    hkl = hkl[(inv_d > 0) & (inv_d <= 1.0 / dmin)]
    try:
        rots = [op.rotation_matrix for op in SpacegroupAnalyzer(
            conv, symprec=symprec).get_point_group_operations(cartesian=False)]
    except (TypeError, ValueError):
        rots = [np.eye(3)]
    ops = np.array([r for m in rots for r in (m, -m)])  # Laue group: point group and inversion
    base = int(np.abs(hkl).max()) * 3 + 1
    images = np.rint(np.einsum("ni,mij->mnj", hkl, ops)).astype(np.int64) + base
    keys = ((images[..., 0] * (2 * base + 1)) + images[..., 1]) * (2 * base + 1) + images[..., 2]
    canonical = keys.max(axis=0)
    _, first, counts = np.unique(canonical, return_index=True, return_counts=True)
    reps = hkl[first]
    symbols = [site.specie.symbol for site in conv]
    names = sorted(set(symbols))
    missing = [s for s in names if s not in ATOMIC_SCATTERING_PARAMS]
    if missing:
        raise InvdesignError(f"no X-ray form factors for {', '.join(missing)}")
    coeff = [np.asarray(ATOMIC_SCATTERING_PARAMS[s], float) for s in names]
    width = max(c.shape[0] for c in coeff)
    coeff = np.array([np.vstack([c, np.zeros((width - c.shape[0], 2))]) for c in coeff])
    phase = 2 * np.pi * reps @ conv.frac_coords.T
    angles = np.array(lattice.angles)
    free = FREE_LATTICE.get(system, FREE_LATTICE["triclinic"])
    return Reflections(
        cell=conv, system=system, spacegroup=symbol, hkl=reps, multiplicity=counts.astype(float),
        cos_phase=np.cos(phase), sin_phase=np.sin(phase),
        atom_element=np.array([names.index(s) for s in symbols]),
        z=np.array([elements.atomic_number(s) for s in names], float), coeff=coeff,
        free=free, angle_index=3 + int(np.argmax(np.abs(angles - 90.0))),
    )


def d_spacings(refl: Reflections, lattice: np.ndarray) -> np.ndarray:
    """[m] d (Å) of the representatives for a [6] lattice."""
    recip = Lattice.from_parameters(*lattice).reciprocal_lattice_crystallographic.matrix
    return 1.0 / np.linalg.norm(refl.hkl @ recip, axis=1)


def structure_intensity(refl: Reflections, d: np.ndarray, biso: float) -> np.ndarray:
    """[m] multiplicity x |F|^2 x exp(-2 B s^2) at s = 1/(2d) (no Lorentz-polarisation)."""
    s2 = (0.5 / d) ** 2
    f = refl.z[None, :] - 41.78214 * s2[:, None] * np.sum(
        refl.coeff[None, :, :, 0] * np.exp(-refl.coeff[None, :, :, 1] * s2[:, None, None]),
        axis=2)  # [m, n_el]
    fa = f[:, refl.atom_element]
    real = np.sum(fa * refl.cos_phase, axis=1)
    imag = np.sum(fa * refl.sin_phase, axis=1)
    return refl.multiplicity * (real ** 2 + imag ** 2) * np.exp(-2.0 * biso * s2)


def peak_list(refl: Reflections, lattice: np.ndarray, wavelengths: tuple[float, ...],
              profile: Profile) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centres (2θ deg, with the zero shift), integrated intensities, FWHM (deg) and Lorentzian
    fractions of every reflection at every wavelength (the second at `KALPHA2_RATIO`)."""
    d = d_spacings(refl, lattice)
    base = structure_intensity(refl, d, profile.biso)
    centres, areas, fwhm, eta = [], [], [], []
    for i, lam in enumerate(wavelengths):
        sin_t = lam / (2.0 * d)
        ok = sin_t < 0.999
        theta = np.arcsin(sin_t[ok])
        cos2t = np.cos(2 * theta)
        lp = (1 + cos2t ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
        tan_t = np.tan(theta)
        hg = np.sqrt(np.maximum(profile.u * tan_t ** 2 + profile.w, 1e-10))
        hl = np.degrees(SCHERRER_K * lam / (profile.size * np.cos(theta)) + 4 * profile.strain
                        * tan_t)
        h, e = _tch(hg, hl)
        centres.append(np.degrees(2 * theta) + profile.zero)
        areas.append(base[ok] * lp * (1.0 if i == 0 else KALPHA2_RATIO))
        fwhm.append(h)
        eta.append(e)
    return tuple(np.concatenate(v) for v in (centres, areas, fwhm, eta))


def _tch(hg: np.ndarray, hl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thompson-Cox-Hastings total FWHM and Lorentzian fraction from Gaussian/Lorentzian FWHM."""
    h = (hg ** 5 + 2.69269 * hg ** 4 * hl + 2.42843 * hg ** 3 * hl ** 2
         + 4.47163 * hg ** 2 * hl ** 3 + 0.07842 * hg * hl ** 4 + hl ** 5) ** 0.2
    q = hl / h
    return h, np.clip(1.36603 * q - 0.47719 * q ** 2 + 0.11116 * q ** 3, 0.0, 1.0)


def peak_sum(two_theta: np.ndarray, centres: np.ndarray, areas: np.ndarray, fwhm: np.ndarray,
             eta: np.ndarray, window: float = WINDOW_FWHM) -> np.ndarray:
    """[n] sum of area-normalised pseudo-Voigt peaks on the increasing axis `two_theta` (deg), each
    within (3 + `window` x eta) FWHM of its centre."""
    half = (3.0 + window * eta) * fwhm
    lo = np.searchsorted(two_theta, centres - half)
    hi = np.searchsorted(two_theta, centres + half)
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.zeros_like(two_theta)
    peak = np.repeat(np.arange(centres.size), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    point = np.repeat(lo, counts) + (np.arange(total) - start)
    x2 = ((two_theta[point] - centres[peak]) / fwhm[peak]) ** 2
    lorentz = (2.0 / math.pi) / (1.0 + 4.0 * x2)
    gauss = 2.0 * math.sqrt(math.log(2.0) / math.pi) * np.exp(-4.0 * math.log(2.0) * x2)
    values = areas[peak] / fwhm[peak] * (eta[peak] * lorentz + (1.0 - eta[peak]) * gauss)
    return np.bincount(point, weights=values, minlength=two_theta.size)


def powder_pattern(refl: Reflections, lattice: np.ndarray, two_theta: np.ndarray,
                   wavelengths: tuple[float, ...], profile: Profile) -> np.ndarray:
    """[n] unscaled Bragg intensity (no background) on `two_theta` (deg, increasing)."""
    return peak_sum(two_theta, *peak_list(refl, lattice, wavelengths, profile))
