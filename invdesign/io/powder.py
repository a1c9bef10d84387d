"""Powder-diffraction files beyond plain columns: GSAS `.gsa`/`.gss`/`.fxye` and the measured
profile inside a CIF (IUCr "combined" CIFs, GSAS/GSAS-II/FullProf/TOPAS/RIETAN exports).

`read_powder_table(path)` returns a `PowderTable` (2-theta in degrees, intensities, their standard
uncertainties when the file gives them, wavelengths in Å when the file states them);
`read_pattern(path, "xrd")` in `invdesign.io.measured` uses it for these suffixes
(`is_powder_file`), so options and checks stay those of every other pattern. Two-column
`.xy`/`.xye` files are plain columns and read there directly.

CIF: the first data block holding a measured intensity loop (`MEASURED_TAGS`, in that order of
preference; calculated profiles and backgrounds are never taken) is read. 2-theta comes from
`_pd_proc_2theta_corrected` or `_pd_meas_2theta_scan`, else from the `_pd_proc_2theta_range_*` /
`_pd_meas_2theta_range_*` triple (min, inc) whose point count matches. Uncertainties: the esd in
parentheses when every value has one, else `1/sqrt(_pd_proc_ls_weight)`; points with weight 0 (the
authors' excluded regions) and points whose intensity is missing ('.', '?') are dropped.
Wavelength (profile block): a two-value list in `_diffrn_radiation_wavelength` or
`_pd_proc_wavelength` is a doublet (Kα1, Kα2: `wavelength`, `wavelength2`), else the first single
value of those tags. The authors' profile wRp, when stated (`_pd_proc_ls_prof_wR_factor`,
`_refine_ls_wR_factor_all`), is kept as `reported_rwp` (as written: a fraction or a percentage).

GSAS: the first bank of constant-wavelength data (`BANK n nchan nrec CONST|CONS start step ...`,
start and step in centidegrees) in STD (10 fields of I2,F6 per line; esd = sqrt(I / ncount)), ESD
(pairs of F8 fields) or FXYE (free columns 2-theta in centidegrees, I, esd) layout. Time-of-flight
banks are refused. GSAS files carry no wavelength except as a comment (`# ... wavelength 1.5406`),
which is read when present.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.io.cif import CifFile

from invdesign.core.errors import DataFormatError
from invdesign.io.headers import HeaderInfo

#: Suffixes read here (lower case) when the pattern kind is 'xrd'.
POWDER_SUFFIXES: tuple[str, ...] = (".cif", ".gsa", ".gss", ".gsas", ".fxye")
#: Measured intensity tags, most preferred first (never `_pd_calc_*` or `*_bkg_*`).
MEASURED_TAGS: tuple[str, ...] = (
    "_pd_proc_intensity_total", "_pd_proc_intensity_net", "_pd_meas_counts_total",
    "_pd_meas_intensity_total", "_pd_meas_intensity_net", "_pd_meas_counts_net",
)
X_TAGS: tuple[str, ...] = ("_pd_proc_2theta_corrected", "_pd_meas_2theta_scan",
                           "_pd_meas_2theta_corrected")
RWP_TAGS: tuple[str, ...] = ("_pd_proc_ls_prof_wr_factor", "_refine_ls_wr_factor_all")
MIN_POINTS = 10
#: Two wavelengths closer than this (relative) are a Kα1/Kα2 doublet.
DOUBLET_SPREAD = 0.01

_NUMBER = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\((\d+)\))?$")
_FLOAT_IN_TEXT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class PowderTable:
    """A powder profile as the file gives it.

    Attributes:
        two_theta: [n] degrees, in file order.
        intensity: [n] counts or arbitrary units.
        sigma: [n] standard uncertainties of `intensity`, or None when the file gives none.
        producer: 'cif' or 'gsas'.
        values: header values for `read_pattern`: x_unit ('2theta_deg'), wavelength and
            wavelength2 (Å) when stated, reported_rwp, block (CIF data block name), bank.
        notes: what was dropped or assumed, for the user.
    """

    two_theta: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray | None
    producer: str
    values: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def header(self) -> HeaderInfo:
        """The values as the `HeaderInfo` `read_pattern` works from."""
        return HeaderInfo(producer=self.producer, values=dict(self.values), columns=[])


def is_powder_file(path: str | PathLike) -> bool:
    """True for the suffixes this module reads (`POWDER_SUFFIXES`)."""
    return Path(path).suffix.lower() in POWDER_SUFFIXES


def read_powder_table(path: str | PathLike) -> PowderTable:
    """Read a CIF or GSAS powder file (by suffix); one-line `DataFormatError` naming the file for
    anything it cannot use."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("file not found", path)
    table = read_cif_profile(path) if path.suffix.lower() == ".cif" else read_gsas(path)
    _check_table(path, table)
    return table


# ------------------------------------------------------------------------------------------ CIF
def read_cif_profile(path: str | PathLike) -> PowderTable:
    """The measured powder profile of a CIF (see the module docstring for the tags read)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # pymatgen warns about every odd tag; errors still raise
            warnings.simplefilter("ignore")
            blocks = CifFile.from_file(path).data
    except (ValueError, KeyError, IndexError, UnicodeDecodeError, OSError) as err:
        raise DataFormatError(f"not a readable CIF ({err})", path) from None
    for name, block in blocks.items():
        data = {key.lower(): value for key, value in block.data.items()}
        tag = next((t for t in MEASURED_TAGS if isinstance(data.get(t), list)
                    and len(data[t]) >= MIN_POINTS), None)
        if tag is not None:
            return _cif_block_profile(path, name, data, tag)
    raise DataFormatError(
        "no measured powder profile in the CIF (looked for loops of "
        f"{', '.join(MEASURED_TAGS)})", path)


def _cif_block_profile(path: Path, name: str, data: dict[str, Any], tag: str) -> PowderTable:
    raw = data[tag]
    n = len(raw)
    notes: list[str] = []
    y, esd = _cif_numbers(raw)
    x = None
    for x_tag in X_TAGS:
        if isinstance(data.get(x_tag), list) and len(data[x_tag]) == n:
            x, _ = _cif_numbers(data[x_tag])
            break
    if x is None:
        x = _range_axis(path, data, n, "proc" if tag.startswith("_pd_proc") else "meas")
    keep = np.isfinite(x) & np.isfinite(y)
    sigma = esd if np.isfinite(esd[keep]).all() and (esd[keep] > 0).all() else None
    weights = data.get("_pd_proc_ls_weight")
    if isinstance(weights, list) and len(weights) == n:
        w, _ = _cif_numbers(weights)
        excluded = np.isfinite(w) & (w <= 0)
        if excluded.any():
            notes.append(f"{int(excluded.sum())} points with weight 0 (excluded by the authors) "
                         "dropped")
            keep &= ~excluded
        if sigma is None and (np.isfinite(w[keep]).all() and (w[keep] > 0).all()):
            sigma = 1.0 / np.sqrt(np.where(keep, w, 1.0))
    missing = int((~np.isfinite(y)).sum())
    if missing:
        notes.append(f"{missing} points without an intensity ('.' or '?') dropped")
    values: dict[str, Any] = {"x_unit": "2theta_deg", "block": name, "intensity_tag": tag}
    values.update(_cif_wavelengths(data))
    for rwp_tag in RWP_TAGS:
        rwp = _first_float(data.get(rwp_tag))
        if rwp is not None:
            values["reported_rwp"] = rwp
            break
    return PowderTable(two_theta=x[keep], intensity=y[keep],
                       sigma=None if sigma is None else sigma[keep], producer="cif",
                       values=values, notes=tuple(notes))


def _cif_numbers(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """[n] values and [n] esds (NaN where absent) of CIF numbers such as '1234(35)'; '.', '?' and
    text are NaN."""
    values = np.full(len(items), np.nan)
    esds = np.full(len(items), np.nan)
    for i, item in enumerate(items):
        match = _NUMBER.match(str(item).strip())
        if match is None:
            continue
        number, esd = match.groups()
        values[i] = float(number)
        if esd is not None:
            decimals = len(number.split(".")[1].split("e")[0].split("E")[0]) if "." in number else 0
            esds[i] = int(esd) * 10.0 ** -decimals
    return values, esds


def _range_axis(path: Path, data: dict[str, Any], n: int, prefer: str) -> np.ndarray:
    """2-theta from a (min, max, inc) triple whose point count is `n`."""
    order = (prefer, "meas" if prefer == "proc" else "proc")
    for kind in order:
        lo = _first_float(data.get(f"_pd_{kind}_2theta_range_min"))
        hi = _first_float(data.get(f"_pd_{kind}_2theta_range_max"))
        inc = _first_float(data.get(f"_pd_{kind}_2theta_range_inc"))
        if lo is None or hi is None or inc is None or not inc > 0:
            continue
        if abs(lo + inc * (n - 1) - hi) <= 0.5 * inc:
            return lo + inc * np.arange(n)
    raise DataFormatError(
        f"the profile has {n} points but no 2-theta column ({', '.join(X_TAGS)}) and no "
        "_pd_proc/_pd_meas_2theta_range_min/max/inc with that many steps", path)


def _cif_wavelengths(data: dict[str, Any]) -> dict[str, float]:
    """The first tag stating a doublet gives (wavelength, wavelength2); else the first value."""
    single: dict[str, float] = {}
    for tag in ("_diffrn_radiation_wavelength", "_pd_proc_wavelength"):
        raw = data.get(tag)
        items = raw if isinstance(raw, list) else [raw] if raw is not None else []
        found = [v for v in (_last_float(str(item)) for item in items) if v is not None and v > 0]
        if len(found) >= 2 and abs(found[1] - found[0]) <= DOUBLET_SPREAD * found[0]:
            return {"wavelength": found[0], "wavelength2": found[1]}
        if found and not single:
            single = {"wavelength": found[0]}
    return single


def _first_float(raw: Any) -> float | None:
    if raw is None:
        return None
    item = raw[0] if isinstance(raw, list) else raw
    value, _ = _cif_numbers([item])
    return None if not np.isfinite(value[0]) else float(value[0])


def _last_float(text: str) -> float | None:
    """The last number in text such as 'CuK\\a 1.5418' or '1.54056(2)'."""
    found = _FLOAT_IN_TEXT.findall(text.replace("(", " ("))
    return float(found[-1]) if found else None


# ----------------------------------------------------------------------------------------- GSAS
def read_gsas(path: str | PathLike) -> PowderTable:
    """The first constant-wavelength bank of a GSAS raw file (STD, ESD or FXYE layout)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise DataFormatError(f"cannot read file ({err.strerror})", path) from None
    values: dict[str, Any] = {"x_unit": "2theta_deg"}
    banks = [i for i, line in enumerate(lines) if line.upper().startswith("BANK")]
    if not banks:
        raise DataFormatError("no BANK line (not a GSAS raw file)", path)
    for line in lines[: banks[0]]:
        match = re.search(r"(?:wavelength|lambda)\D*?(\d+\.\d+)", line, re.I)
        if line.startswith("#") and match:
            values["wavelength"] = float(match.group(1))
    words = lines[banks[0]].split()
    try:
        nchan = int(words[2])
        bintyp = words[4].upper()
        start, step = float(words[5]) / 100.0, float(words[6]) / 100.0
    except (IndexError, ValueError):
        raise DataFormatError(f"BANK line {banks[0] + 1} is not 'BANK n nchan nrec BINTYP "
                              "start step ...'", path) from None
    if bintyp not in ("CONST", "CONS"):
        raise DataFormatError(f"BANK line {banks[0] + 1}: binning {bintyp} is not read (only "
                              "constant-wavelength CONST/CONS banks)", path)
    layout = words[-1].upper() if words[-1].upper() in ("STD", "ESD", "FXYE", "ALT") else "STD"
    end = banks[1] if len(banks) > 1 else len(lines)
    body = [line for line in lines[banks[0] + 1:end] if line.strip() and not line.startswith("#")]
    values["bank"] = int(words[1]) if words[1].isdigit() else 1
    notes = [f"{len(banks)} banks in the file; bank {values['bank']} read"][: len(banks) - 1]
    if layout == "ALT":
        raise DataFormatError("GSAS ALT layout is not read (use STD, ESD or FXYE)", path)
    if layout == "FXYE":
        try:
            table = np.array([[float(v) for v in line.split()[:3]] for line in body])
        except ValueError:
            raise DataFormatError("FXYE bank holds a line that is not numbers", path) from None
        if table.ndim != 2 or table.shape[1] != 3:
            raise DataFormatError("FXYE bank needs three columns (2-theta, I, esd)", path)
        x, y, sigma = table[:nchan, 0] / 100.0, table[:nchan, 1], table[:nchan, 2]
    else:
        fields = [line.ljust(80)[8 * k: 8 * k + 8] for line in body for k in range(10)]
        try:
            if layout == "STD":
                counts = [int(f[:2]) if f[:2].strip() else 1 for f in fields]
                y = np.array([float(f[2:]) if f[2:].strip() else np.nan for f in fields])
                sigma = np.sqrt(np.abs(y) / np.maximum(np.array(counts, float), 1.0))
            else:
                pairs = np.array([float(f) if f.strip() else np.nan for f in fields])
                y, sigma = pairs[0::2], pairs[1::2]
        except ValueError:
            raise DataFormatError(f"{layout} bank holds a non-numeric field", path) from None
        keep = np.isfinite(y)
        y, sigma = y[keep][:nchan], sigma[keep][:nchan]
        x = start + step * np.arange(y.size)
    if y.size < nchan:
        notes.append(f"BANK line announces {nchan} points; the file holds {y.size}")
    ok = bool(np.all(sigma > 0)) and bool(np.all(np.isfinite(sigma)))
    return PowderTable(two_theta=x, intensity=y, sigma=sigma if ok else None, producer="gsas",
                       values=values, notes=tuple(notes))


def _check_table(path: Path, table: PowderTable) -> None:
    n = table.two_theta.size
    if n < MIN_POINTS:
        raise DataFormatError(f"only {n} powder data points (need at least {MIN_POINTS})", path)
    if not (np.isfinite(table.two_theta).all() and np.isfinite(table.intensity).all()):
        raise DataFormatError("2-theta or intensity holds NaN or inf", path)
    diff = np.diff(table.two_theta)
    if not (np.all(diff > 0) or np.all(diff < 0)):
        rising = np.count_nonzero(diff > 0) >= np.count_nonzero(diff < 0)
        i = int(np.nonzero(diff <= 0 if rising else diff >= 0)[0][0]) + 1
        raise DataFormatError(f"2-theta is not monotonic: point {i + 1} ({table.two_theta[i]:g} "
                              f"deg) after {table.two_theta[i - 1]:g} deg", path)
