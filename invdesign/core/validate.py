"""Checks of user-given numbers where they enter (options, header values, API arguments).

`finite_in_range(value, name, lo, hi)` returns the value as a float, or raises `InvdesignError`
(one line naming the option or header key, the value and the allowed range): NaN, inf, text that
is not a number and values outside [lo, hi] never reach a computation. `int_in_range` does the same
for counts. `error` chooses the error type (e.g. `DataFormatError` for a file's header) and `path`
names the file the value came from.
"""

from __future__ import annotations

import math
import numbers
from os import PathLike

from invdesign.core.errors import InvdesignError


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    low = "-inf" if lo is None else str(lo) if isinstance(lo, int) else f"{lo:g}"
    high = "inf" if hi is None else str(hi) if isinstance(hi, int) else f"{hi:g}"
    return f"{left}{low}, {high}{right}"


def finite_in_range(
    value: object,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    path: str | PathLike | None = None,
    error: type[InvdesignError] = InvdesignError,
    unit: str = "",
) -> float:
    """`value` as a finite float within [lo, hi] (open ends with `lo_open`/`hi_open`).

    Args:
        value: a number or numeric text (bool is refused).
        name: what the value is, as the user wrote it ('--qdamp', 'header qdamp').
        lo, hi: bounds (None: unbounded on that side, still finite).
        path: the file the value came from (prefixed to the message).
        error: the error type raised.
        unit: shown after the bounds ('Å^-1').
    Raises:
        `error` with one line: name, value and the allowed range.
    """
    bounds = _bounds(lo, hi, lo_open, hi_open) + (f" {unit}" if unit else "")
    span = f" in {bounds}" if lo is not None or hi is not None else f" ({unit})" if unit else ""
    if isinstance(value, bool):
        raise error(f"{name} must be a number{span}, not {value!r}", path)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise error(f"{name} must be a number{span}, not {value!r}", path) from None
    if not math.isfinite(number):
        raise error(f"{name} must be a finite number{span}, not {number}", path)
    too_low = lo is not None and (number <= lo if lo_open else number < lo)
    too_high = hi is not None and (number >= hi if hi_open else number > hi)
    if too_low or too_high:
        raise error(f"{name} = {number:g} is outside {bounds}", path)
    return number


def int_in_range(
    value: object,
    name: str,
    lo: int | None = None,
    hi: int | None = None,
    *,
    path: str | PathLike | None = None,
    error: type[InvdesignError] = InvdesignError,
    why: str = "",
) -> int:
    """`value` as an int within [lo, hi]; floats with a fraction, NaN and bool are refused.

    `why` is appended to the message of a value above `hi` (e.g. the reason for the limit).
    """
    span = _bounds(lo, hi, False, False)
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float, str)):
        raise error(f"{name} must be a whole number in {span}, not {value!r}", path)
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise error(f"{name} must be a whole number in {span}, not {value!r}", path) from None
    if not math.isfinite(number) or not number.is_integer():
        raise error(f"{name} must be a whole number in {span}, not {value!r}", path)
    count = int(value) if isinstance(value, numbers.Integral) else int(number)
    if lo is not None and count < lo:
        allowed = f" (allowed {span})" if hi is not None else ""
        raise error(f"{name} = {count} is below {lo}{allowed}", path)
    if hi is not None and count > hi:
        raise error(f"{name} = {count} is above the limit {hi}{why} (allowed {span})", path)
    return count
