"""Header values of the files PDF and powder-diffraction programs write.

Recognised producers: PDFgetX3/xPDFsuite (`[PDF]` ini block, `#### start data`), PDFgetX2
(`Get_XPDF`), PDFgetN, PDFgui (`##### PDFgui`, `.fgr` fits), pyFAI and Fit2D (.xy, .xye, .chi).
Only values that change the forward simulation are extracted: qmin, qmax (Å^-1), qdamp, qbroad,
radiation, wavelength (Å), composition, dataformat, r range, rpoly, and the x unit of I(q) files.
Keys are matched as whole words (`qmax=` but not `optqmax=`), first occurrence wins, as PDFgui does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_START_DATA = re.compile(r"^#+\s*start data", re.I)

# header key -> (our name, regex alternatives); values are floats
_NUMERIC_KEYS: dict[str, str] = {
    "qmin": r"qmin",
    "qmax": r"qmax",
    "qmaxinst": r"qmaxinst",
    "qdamp": r"qdamp|qsig",
    "qbroad": r"qbroad|qalp",
    "wavelength": r"wavelength|lambda",
    "rmin": r"rmin",
    "rmax": r"rmax|maxR",
    "rstep": r"rstep|rgrid",
    "rpoly": r"rpoly",
}


@dataclass
class HeaderInfo:
    """What a file's header says.

    Attributes:
        producer: 'pdfgetx3', 'pdfgetx2', 'pdfgetn', 'pdfgui', 'pyfai', 'fit2d' or 'plain'.
        values: parsed values (qmin, qmax, qdamp, radiation 'xray'|'neutron', wavelength Å,
            composition text, dataformat, rmin, rmax, rstep, rpoly, x_unit, ...).
        columns: column labels of the data block (`#L` line or a pyFAI column header), if any.
    """

    producer: str = "plain"
    values: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)


def is_data_line(line: str) -> bool:
    """True for a line of two or more numbers (nan/inf count, so that they can be refused)."""
    parts = line.replace(",", " ").split()
    if len(parts) < 2:
        return False
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True


def split_header(lines: list[str]) -> int:
    """Index of the first data line: after a `#### start data` marker if there is one, else the
    start of the final run of numeric lines (comments and blank lines inside it are allowed)."""
    for i, line in enumerate(lines):
        if _START_DATA.match(line.strip()):
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].lstrip().startswith("#")):
                j += 1
            return j
    start = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        text = lines[i].strip()
        if not text or text.startswith("#"):
            continue
        if is_data_line(text):
            start = i
        else:
            break
    return start


def parse_header(header: str) -> HeaderInfo:
    """Parse the text above the data block."""
    info = HeaderInfo(producer=_producer(header))
    values = info.values
    for name, keys in _NUMERIC_KEYS.items():
        match = re.search(rf"(?<![\w.])(?:{keys})\s*[=:]\s*({_FLOAT})(?![\w.])", header, re.I)
        if match:
            values[name] = float(match.group(1))
    _wavelength_unit(header, values)
    radiation = _radiation(header, info.producer)
    if radiation:
        values["radiation"] = radiation
    for key in ("composition", "dataformat"):
        match = re.search(rf"(?im)^\s*{key}\s*=\s*(.+?)\s*$", header)
        if match:
            values[key] = match.group(1)
    if "composition" not in values:
        composition = _table_composition(header)
        if composition:
            values["composition"] = composition
    unit = x_unit_from_text(header)
    if unit:
        values["x_unit"] = unit
    info.columns = _columns(header)
    return info


def _producer(header: str) -> str:
    if re.search(r"^\s*\[(PDF|DEFAULT)\]", header, re.M):
        return "pdfgetx3"
    if "Get_XPDF" in header:
        return "pdfgetx2"
    if re.search(r"PDFgetN|##### Run Information", header):
        return "pdfgetn"
    if "##### PDFgui" in header:
        return "pdfgui"
    if re.search(r"pyFAI", header, re.I):
        return "pyfai"
    return "plain"


def _radiation(header: str, producer: str) -> str | None:
    match = re.search(r"(?im)^\s*(?:mode|stype)\s*=\s*(\w[\w-]*)", header)
    if match:
        word = match.group(1).lower()
        if word in ("x", "xray", "x-ray"):
            return "xray"
        if word in ("n", "neutron"):
            return "neutron"
    if producer == "pdfgetn":
        return "neutron"
    if producer == "pdfgetx2":
        return "xray"
    if re.search(r"x-?ray|PDFgetX", header, re.I):
        return "xray"
    if re.search(r"neutron|PDFgetN", header, re.I):
        return "neutron"
    return None


def _wavelength_unit(header: str, values: dict[str, Any]) -> None:
    """pyFAI writes `Wavelength: 1.54e-10 m`: convert metres to Å."""
    match = re.search(rf"wavelength\s*[=:]\s*({_FLOAT})\s*m\b", header, re.I)
    if match:
        values["wavelength"] = float(match.group(1)) * 1e10


def _table_composition(header: str) -> str | None:
    """Composition from PDFgetX2's `#L symbol valence fractions z ...` or PDFgetN's
    `Element relAtomNum` table: 'Cd1 Se1'."""
    lines = header.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*#L\s+symbol\s+valence\s+fractions", line):
            row = re.compile(rf"^\s*([A-Z][a-z]?)\s+{_FLOAT}\s+({_FLOAT})\s+\d+")
        elif re.match(r"^\s*Element\s+relAtomNum", line):
            row = re.compile(rf"^\s*([A-Z][a-z]?)\s+({_FLOAT})\s")
        else:
            continue
        parts = []
        for follow in lines[i + 1:]:
            match = row.match(follow)
            if not match:
                break
            parts.append(f"{match.group(1)}{float(match.group(2)):g}")
        if parts:
            return " ".join(parts)
    return None


def x_unit_from_text(text: str) -> str | None:
    """'2theta_deg', 'q_A' (Å^-1) or 'q_nm' (nm^-1) from labels such as pyFAI's `2th_deg`,
    `q_nm^-1`, Fit2D's `2-Theta Angle (Degrees)`, `Q (nm-1)`, PDFgetX3's `dataformat = Qnm`; None
    if the text does not say."""
    t = text.lower()
    if re.search(r"2th_deg|2-?theta|two[ _-]?theta|tth\b|dataformat\s*=\s*twotheta", t):
        return "2theta_deg"
    if re.search(r"q_nm|nm\^?-1|1/nm|nm⁻¹|dataformat\s*=\s*qnm", t):
        return "q_nm"
    if re.search(r"q_a\^?-1|q_a\b|å\^?-1|a\^-1|\ba-1\b|1/å|1/a\b|å⁻¹|dataformat\s*=\s*qa\b", t):
        return "q_A"
    return None


def _columns(header: str) -> list[str]:
    """Labels of the last `#L` line, or of a final comment line that names columns (pyFAI)."""
    labels: list[str] = []
    for line in header.splitlines():
        stripped = line.strip()
        if stripped.startswith("#L "):
            labels = stripped[3:].split()
    if labels:
        return labels
    lines = [ln.strip() for ln in header.splitlines() if ln.strip()]
    if lines and lines[-1].startswith("#"):
        words = lines[-1].lstrip("#").split()
        if 2 <= len(words) <= 5 and not any(":" in w or "=" in w for w in words):
            return words
    return []
