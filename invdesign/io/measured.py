"""Measured patterns in: `.gr` (PDFgetX2/X3, xPDFsuite, PDFgetN), PDFgui `.fgr`, plain columns, XRD
(`.xy`, `.xye`, `.chi`, in q or 2-theta; GSAS `.gsa`/`.fxye` and the profile inside a `.cif`
through `invdesign.io.powder`) and SAXS (q, I).

`read_pattern(path, kind, **overrides)` returns a `MeasuredPattern`: the data (x, y, dy) and the
instrument values the forward simulation needs, each with where it came from ('header', 'option',
'default', 'data'). Options override the header. The file is only read, never written.

Refused with one line naming the file (`DataFormatError`): no numeric data, NaN/inf, x not
strictly monotonic or repeated, negative r or q, a pattern zero everywhere or beyond `MAX_ABS_G` /
`MAX_ABS_I`, a header value that is not finite, instrument values (header or option) that are not
finite or outside their plausible range (`QDAMP_RANGE`, `BISO_RANGE`, `QMAX_LIMIT`,
`WAVELENGTH_LIMIT`), XRD/SAXS without a known x unit (or 2-theta without a wavelength).
Whether the range covers a model grid is checked by `check_covers` (no silent zero padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.validate import finite_in_range
from invdesign.io.composition import check_amounts, metal_core, parse_composition
from invdesign.io.headers import HeaderInfo, is_data_line, parse_header, split_header
from invdesign.io.powder import is_powder_file, read_powder_table

Kind = Literal["pdf", "xrd", "saxs"]
KINDS: tuple[str, ...] = ("pdf", "xrd", "saxs")
X_UNITS: tuple[str, ...] = ("q_A", "q_nm", "2theta_deg")

#: Defaults used when neither the header nor an option gives the value.
DEFAULT_QDAMP = 0.04  # Å^-1, typical of rapid-acquisition PDF set-ups
DEFAULT_BISO = 0.3  # Å^2, CHILI's value
DEFAULT_QMIN = 1.0  # Å^-1
DEFAULT_QMAX = 30.0  # Å^-1, CHILI's xPDF grid
DEFAULT_RADIATION = "xray"

#: Options `read_pattern` accepts (None means "not given").
OVERRIDES: tuple[str, ...] = ("qmin", "qmax", "qdamp", "biso", "radiation", "wavelength",
                              "composition", "x_unit", "metal_core")
MIN_POINTS = 10
#: Plausible ranges of the instrument values (header or option); anything else is refused.
QDAMP_RANGE = (0.0, 1.0)  # Å^-1
BISO_RANGE = (0.0, 10.0)  # Å^2
QMAX_LIMIT = 100.0  # Å^-1 (4 pi / 0.125 Å; a larger value is nm^-1 or a typo)
WAVELENGTH_LIMIT = 20.0  # Å
#: Largest |G(r)| (Å^-2) and |I(q)| (arbitrary units) taken as data; beyond is a broken file.
MAX_ABS_G = 1e6
MAX_ABS_I = 1e12


@dataclass(frozen=True)
class MeasuredPattern:
    """One measured pattern with its instrument parameters.

    Attributes:
        path: the file read.
        kind: 'pdf' (G(r), x = r in Å), 'xrd' or 'saxs' (I(q), x = q in Å^-1).
        x: [n] r in Å or q in Å^-1, strictly increasing (2-theta and nm^-1 are converted).
        y: [n] G(r) (Å^-2) or intensity (arbitrary units).
        dy: [n] standard uncertainties of y; None when the file has none (or not all positive).
        qmin, qmax: Å^-1; for PDFs the range of the Fourier transform.
        qdamp: Å^-1, instrumental damping of G(r).
        biso: Å^2, isotropic displacement used in simulations.
        radiation: 'xray' or 'neutron'.
        wavelength: Å, or None.
        composition: element -> amount, or None (after `metal_core` when that option was set).
        x_raw: [n] x as in the file (2-theta in degrees, q in nm^-1, ...), same order as `x`.
        x_unit: unit of `x_raw`: 'r_A', 'q_A', 'q_nm' or '2theta_deg'.
        sources: value name -> 'header' | 'option' | 'default' | 'data'.
        header: every value the header gave (also dataformat, rmin, rmax, rstep, rpoly, qmaxinst).
        producer: program that wrote the file ('pdfgetx3', 'pdfgetx2', 'pdfgetn', 'pdfgui',
            'plain', ...).
        notes: warnings about defaults and conversions, to be shown to the user.
    """

    path: Path
    kind: Kind
    x: np.ndarray
    y: np.ndarray
    dy: np.ndarray | None
    qmin: float
    qmax: float
    qdamp: float
    biso: float
    radiation: str
    wavelength: float | None
    composition: dict[str, float] | None
    x_raw: np.ndarray
    x_unit: str
    sources: dict[str, str] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    producer: str = "plain"
    notes: tuple[str, ...] = ()

    @property
    def xmin(self) -> float:
        return float(self.x[0])

    @property
    def xmax(self) -> float:
        return float(self.x[-1])

    @property
    def function(self) -> str:
        """'gr' for PDFs, 'iq' for XRD and SAXS (DebyeCalculator's names)."""
        return "gr" if self.kind == "pdf" else "iq"

    def describe(self) -> list[str]:
        """One line per value: what was taken from where (for the CLI to print)."""
        grid = "r" if self.kind == "pdf" else "q"
        unit = "Å" if self.kind == "pdf" else "Å^-1"
        lines = [f"{self.path.name}: {self.kind} from {self.producer}, {self.x.size} points, "
                 f"{grid} = {self.xmin:.4g}..{self.xmax:.4g} {unit}"]
        comp = None if self.composition is None else " ".join(
            f"{el}{n:g}" for el, n in self.composition.items())
        shown = {"qmin": self.qmin, "qmax": self.qmax, "qdamp": self.qdamp, "biso": self.biso,
                 "radiation": self.radiation, "wavelength": self.wavelength, "composition": comp}
        for name, value in shown.items():
            if value is not None:
                lines.append(f"  {name} = {value} ({self.sources.get(name, 'default')})")
        lines += [f"  note: {note}" for note in self.notes]
        return lines


def read_pattern(path: str | PathLike, kind: Kind = "pdf", **overrides: Any) -> MeasuredPattern:
    """Read a measured pattern; `overrides` (see `OVERRIDES`; None = not given) beat the header.

    `composition` may be text ('Au144 S60 C480 H540') or a dict; `metal_core=True` keeps its metals
    only. `x_unit` ('q_A', 'q_nm', '2theta_deg') and `wavelength` (Å) are needed for XRD/SAXS files
    whose header does not state them. Every number is checked (finite, in a plausible range: see
    `QDAMP_RANGE` etc.), as are the data (`check_values`).
    """
    path = Path(path)
    if kind not in KINDS:
        raise InvdesignError(f"unknown pattern kind {kind!r}; choose from {', '.join(KINDS)}")
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise InvdesignError(
            f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OVERRIDES)}")
    opts = {k: v for k, v in overrides.items() if v is not None}
    powder = read_powder_table(path) if kind == "xrd" and is_powder_file(path) else None
    if powder is None:
        lines = _read_lines(path)
        start = split_header(lines)
        info = parse_header("\n".join(lines[:start]))
    else:  # CIF / GSAS powder file (invdesign.io.powder): its values act as the header
        info = powder.header()
    _check_header(path, info)
    if powder is None:
        table, line_numbers = _numeric_block(path, lines, start)
        x_raw, y, dy = _columns(path, table, info, line_numbers)
    else:
        x_raw, y, dy = powder.two_theta, powder.intensity, powder.sigma
        line_numbers = list(range(1, x_raw.size + 1))
    notes: list[str] = [] if powder is None else list(powder.notes)
    sources: dict[str, str] = {}
    x_raw, y, dy = _ordered(path, x_raw, y, dy, line_numbers, notes)

    def pick(name: str, default: Any = None) -> Any:
        if name in opts:
            sources[name] = "option"
            return opts[name]
        if name in info.values:
            sources[name] = "header"
            return info.values[name]
        sources[name] = "default"
        return default

    radiation = _radiation(pick("radiation", DEFAULT_RADIATION), path)
    if sources["radiation"] == "default":
        notes.append(f"radiation not stated; assuming {DEFAULT_RADIATION} (option radiation)")
    def number(name: str, default: Any, lo: float, hi: float, unit: str,
               lo_open: bool = False, fallback: str = "default") -> float:
        value = pick(name, default)
        if sources[name] == "default":
            sources[name] = fallback
        label = f"{name} ({sources[name]})"
        return finite_in_range(value, label, lo, hi, lo_open=lo_open, path=path,
                               error=DataFormatError, unit=unit)

    wavelength = pick("wavelength")
    if wavelength is not None:
        wavelength = number("wavelength", None, 0.0, WAVELENGTH_LIMIT, "Å", lo_open=True)
    composition = _composition(pick("composition"), opts.get("metal_core", False), path,
                               sources["composition"])
    if kind == "pdf":
        x, x_unit = x_raw, "r_A"
    else:
        x_unit = pick("x_unit")
        x = _to_q(path, x_raw, x_unit, wavelength)
    check_values(path, kind, x, y)
    fallback = "default" if kind == "pdf" else "data"
    qmin = number("qmin", DEFAULT_QMIN if kind == "pdf" else x[0], 0.0, QMAX_LIMIT, "Å^-1",
                  fallback=fallback)
    qmax = number("qmax", DEFAULT_QMAX if kind == "pdf" else x[-1], 0.0, QMAX_LIMIT, "Å^-1",
                  lo_open=True, fallback=fallback)
    if kind == "pdf" and sources["qmax"] == "default":
        notes.append(f"qmax not in the header; using {DEFAULT_QMAX} Å^-1 (option qmax)")
    qdamp = number("qdamp", DEFAULT_QDAMP, *QDAMP_RANGE, "Å^-1")
    if sources["qdamp"] == "default" and kind == "pdf":
        notes.append(f"qdamp not in the header; using {DEFAULT_QDAMP} Å^-1 (option qdamp)")
    biso = number("biso", DEFAULT_BISO, *BISO_RANGE, "Å^2")
    if not qmin < qmax:
        raise DataFormatError(f"qmin {qmin:g} and qmax {qmax:g} must satisfy 0 <= qmin < qmax",
                              path)
    return MeasuredPattern(
        path=path, kind=kind, x=x, y=y, dy=dy, qmin=qmin, qmax=qmax, qdamp=qdamp, biso=biso,
        radiation=radiation, wavelength=wavelength, composition=composition, x_raw=x_raw,
        x_unit=x_unit, sources=sources, header=dict(info.values), producer=info.producer,
        notes=tuple(notes),
    )


def check_covers(pattern: MeasuredPattern, grid_min: float, grid_max: float,
                 what: str = "the model grid") -> None:
    """Refuse (one line naming the file) a pattern whose x range does not cover [grid_min, grid_max]
    within one data step: a model input is never padded with zeros silently."""
    step = float(np.median(np.diff(pattern.x))) if pattern.x.size > 1 else 0.0
    if pattern.xmin > grid_min + step + 1e-9 or pattern.xmax < grid_max - step - 1e-9:
        name, unit = ("r", "Å") if pattern.kind == "pdf" else ("q", "Å^-1")
        raise DataFormatError(
            f"{name} range {pattern.xmin:.4g}..{pattern.xmax:.4g} {unit} does not cover {what} "
            f"{grid_min:.4g}..{grid_max:.4g} {unit} (no zero padding; measure or crop to match)",
            pattern.path,
        )


def check_values(path: str | PathLike, kind: str, x: np.ndarray, y: np.ndarray) -> None:
    """Refuse (one line naming the file) data no instrument gives: negative r or q, a pattern
    that is zero everywhere or not finite, |G(r)| above `MAX_ABS_G` Å^-2 or |I(q)| above
    `MAX_ABS_I`.

    Args:
        kind: 'pdf' (x = r in Å, y = G(r)) or 'xrd'/'saxs' (x = q in Å^-1, y = I(q)).
        x: [n] increasing. y: [n].
    """
    name, what, limit = ("r", "G(r)", MAX_ABS_G) if kind == "pdf" else ("q", "I(q)", MAX_ABS_I)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataFormatError(f"{what} holds NaN or inf", path)
    if x.size and x[0] < 0:
        raise DataFormatError(f"{name} starts at {x[0]:g}: a negative {name} is not measured "
                              f"(the {name} column must be >= 0)", path)
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak == 0.0:
        raise DataFormatError(f"{what} is zero everywhere (no signal)", path)
    if peak > limit:
        raise DataFormatError(f"|{what}| reaches {peak:.3g}, above the plausible {limit:g} "
                              "(a broken or mis-scaled file)", path)


def check_pattern(pattern: MeasuredPattern) -> MeasuredPattern:
    """The checks of `read_pattern` on a pattern made in Python (not read from a file): the data
    (`check_values`, x strictly increasing) and the instrument values (finite, in range)."""
    path = pattern.path
    x, y = np.asarray(pattern.x), np.asarray(pattern.y)
    if x.ndim != 1 or x.shape != y.shape or x.size < MIN_POINTS:
        raise DataFormatError(f"pattern must be two 1-d arrays of the same length >= {MIN_POINTS}",
                              path)
    check_values(path, pattern.kind, x, y)
    if not np.all(np.diff(x) > 0):
        raise DataFormatError("x is not strictly increasing", path)
    limits = {"qmin": (0.0, QMAX_LIMIT, "Å^-1", False), "qmax": (0.0, QMAX_LIMIT, "Å^-1", True),
              "qdamp": (*QDAMP_RANGE, "Å^-1", False), "biso": (*BISO_RANGE, "Å^2", False),
              "wavelength": (0.0, WAVELENGTH_LIMIT, "Å", True)}
    for name, (lo, hi, unit, lo_open) in limits.items():
        value = getattr(pattern, name)
        if value is not None or name != "wavelength":
            finite_in_range(value, f"{name} ({pattern.sources.get(name, 'given')})", lo, hi,
                            lo_open=lo_open, path=path, error=DataFormatError, unit=unit)
    if not pattern.qmin < pattern.qmax:
        raise DataFormatError(f"qmin {pattern.qmin:g} and qmax {pattern.qmax:g} must satisfy "
                              "0 <= qmin < qmax", path)
    return pattern


# ------------------------------------------------------------------------------------- helpers
def _check_header(path: Path, info: HeaderInfo) -> None:
    """Every numeric header value finite (a header `qdamp = 1e999` is refused, not used)."""
    for key, value in info.values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise DataFormatError(f"header value {key} = {value} is not a finite number", path)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataFormatError("file not found", path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:  # read only, never written
            return handle.read().splitlines()
    except OSError as err:
        raise DataFormatError(f"cannot read file ({err.strerror})", path) from None


def _numeric_block(path: Path, lines: list[str], start: int) -> tuple[np.ndarray, list[int]]:
    rows, numbers = [], []
    for i in range(start, len(lines)):
        text = lines[i].strip()
        if not text or text.startswith("#"):
            continue
        if not is_data_line(text):
            raise DataFormatError(f"line {i + 1} is not numeric data: {text[:40]!r}", path)
        rows.append([float(v) for v in text.replace(",", " ").split()])
        numbers.append(i + 1)
    if not rows:
        raise DataFormatError("no numeric data (need at least two columns of numbers)", path)
    width = min(len(r) for r in rows)
    if any(len(r) != width for r in rows):
        bad = next(n for r, n in zip(rows, numbers, strict=True) if len(r) != len(rows[0]))
        raise DataFormatError(f"line {bad} has a different number of columns", path)
    if len(rows) < MIN_POINTS:
        raise DataFormatError(f"only {len(rows)} data points (need at least {MIN_POINTS})", path)
    table = np.array(rows, dtype=np.float64)
    bad_rows = np.nonzero(~np.isfinite(table).all(axis=1))[0]
    if bad_rows.size:
        raise DataFormatError(f"NaN or inf in the data at line {numbers[bad_rows[0]]}", path)
    return table, numbers


def _columns(path: Path, table: np.ndarray, info: HeaderInfo,
             line_numbers: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """x, y, dy from the columns: (x, y), (x, y, dy), (r, G, dr, dG); PDFgui fits (r, Gcalc, dr,
    dGcalc, Gdiff) give the observed G = Gcalc + Gdiff."""
    labels = [lab.lower() for lab in info.columns]
    x, y = table[:, 0], table[:, 1]
    dy = None
    if table.shape[1] >= 5 and len(labels) >= 5 and labels[4].startswith("gdiff"):
        y = table[:, 1] + table[:, 4]
        dy = table[:, 3]
    elif table.shape[1] >= 4:
        dy = table[:, 3]
    elif table.shape[1] == 3:
        dy = table[:, 2]
    if dy is not None and not np.all(dy > 0):
        dy = None
    return x.copy(), y.copy(), None if dy is None else dy.copy()


def _ordered(path: Path, x: np.ndarray, y: np.ndarray, dy: np.ndarray | None,
             line_numbers: list[int], notes: list[str]):
    diff = np.diff(x)
    if np.all(diff < 0):
        notes.append("x was decreasing in the file; reversed")
        return x[::-1].copy(), y[::-1].copy(), None if dy is None else dy[::-1].copy()
    bad = np.nonzero(diff <= 0)[0]
    if bad.size:
        i = int(bad[0]) + 1
        what = "repeated" if diff[bad[0]] == 0 else "decreases"
        raise DataFormatError(
            f"x is not strictly increasing: x = {x[i]:g} at line {line_numbers[i]} {what} "
            f"(previous {x[i - 1]:g})", path)
    return x, y, dy


def _radiation(value: str, path: Path) -> str:
    word = str(value).lower()
    if word in ("x", "xray", "x-ray"):
        return "xray"
    if word in ("n", "neutron"):
        return "neutron"
    raise DataFormatError(f"radiation must be 'xray' or 'neutron', not {value!r}", path)


def _composition(value: Any, core: bool, path: Path, source: str) -> dict[str, float] | None:
    """The composition checked (`check_amounts`); a bad header composition names the file."""
    if value is None:
        return None
    try:
        if isinstance(value, dict):
            comp = check_amounts({str(k): v for k, v in value.items()}, "composition")
        else:
            comp = parse_composition(str(value))
    except InvdesignError as err:
        if source != "header":
            raise
        raise DataFormatError(f"header {err.message}", path) from None
    return metal_core(comp) if core else comp


def _to_q(path: Path, x_raw: np.ndarray, unit: str | None, wavelength: float | None) -> np.ndarray:
    if unit is None:
        raise DataFormatError(
            "x unit not stated in the header; give x_unit = q_A (Å^-1), q_nm (nm^-1) or "
            "2theta_deg (with wavelength)", path)
    if unit not in X_UNITS:
        raise DataFormatError(f"x_unit must be one of {', '.join(X_UNITS)}, not {unit!r}", path)
    if unit == "q_A":
        return x_raw.copy()
    if unit == "q_nm":
        return x_raw / 10.0
    if wavelength is None or not wavelength > 0:
        raise DataFormatError("x is 2-theta but no wavelength is given (option wavelength, Å)",
                              path)
    if x_raw[0] < 0 or x_raw[-1] >= 180:
        raise DataFormatError(f"2-theta {x_raw[0]:g}..{x_raw[-1]:g} is outside 0..180 degrees",
                              path)
    return 4 * math.pi * np.sin(np.radians(x_raw) / 2) / wavelength

