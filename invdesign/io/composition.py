"""Chemical compositions as PDF users write them: 'Pt', 'CdSe', 'Au144 S60 C480 H540', 'Au25(SR)18'.

Parsing is pymatgen's `Composition`; this module adds the project's error type and the metal-core
filter (ligand shells of S, C, H, O, P, ... are dropped when only the metal core is modelled).
"""

from __future__ import annotations

import math

from invdesign.core import elements
from invdesign.core.errors import InvdesignError

#: Largest amount of one element in a composition (atoms per formula unit or per particle).
MAX_AMOUNT = 1e6


def parse_composition(text: str) -> dict[str, float]:
    """'Au144 S60 C480 H540' -> {'Au': 144.0, 'S': 60.0, 'C': 480.0, 'H': 540.0}.

    Element order is the order of appearance; amounts may be fractional ('Pt0.5Ni0.5'). Raises
    `InvdesignError` naming the text when it is not a composition.
    """
    # lazy: heavy library, loaded on use (CLI start-up)
    from pymatgen.core import Composition  # noqa: PLC0415

    cleaned = " ".join(str(text).replace(",", " ").split())
    if not cleaned:
        raise InvdesignError("empty composition")
    try:
        comp = Composition(cleaned)
    except (ValueError, KeyError, TypeError) as err:
        raise InvdesignError(f"composition {text!r} is not a chemical formula ({err})") from None
    out = {el.symbol: float(amount) for el, amount in comp.items()}
    unknown = [el for el in out if not _is_element(el)]
    if unknown:
        raise InvdesignError(f"composition {text!r}: unknown element {unknown[0]!r}")
    return check_amounts(out, repr(str(text)))


def check_amounts(composition: dict[str, object], what: str) -> dict[str, float]:
    """element -> amount as floats, each finite, positive and at most `MAX_AMOUNT`.

    Args:
        composition: element symbol -> amount (number or numeric text).
        what: how to name the composition in the message (its text, or 'composition').
    Raises:
        `InvdesignError` naming the composition, the element and the amount.
    """
    if not composition:
        raise InvdesignError(f"composition {what} has no positive amounts")
    out = {}
    for el, amount in composition.items():
        if not _is_element(str(el)):
            raise InvdesignError(f"composition {what}: unknown element {el!r}")
        try:
            value = float(amount)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise InvdesignError(f"composition {what}: amount of {el} is not a number "
                                 f"({amount!r})") from None
        if not (math.isfinite(value) and 0 < value <= MAX_AMOUNT):
            raise InvdesignError(f"composition {what}: amount of {el} is {value:g}; amounts must "
                                 f"be finite, positive and at most {MAX_AMOUNT:g}")
        out[str(el)] = value
    return out


def metal_core(composition: dict[str, float]) -> dict[str, float]:
    """Only the metals of a composition (the particle core without its ligand shell).

    Raises `InvdesignError` when no metal is left.
    """
    core = {el: n for el, n in composition.items() if elements.is_metal(elements.atomic_number(el))}
    if not core:
        raise InvdesignError(f"composition {format_composition(composition)} contains no metal")
    return core


def format_composition(composition: dict[str, float]) -> str:
    """{'Cd': 1.0, 'Se': 1.0} -> 'Cd1 Se1' (integers without decimals)."""
    parts = []
    for el, n in composition.items():
        parts.append(f"{el}{int(n)}" if float(n).is_integer() else f"{el}{n:g}")
    return " ".join(parts)


def _is_element(symbol: str) -> bool:
    try:
        elements.atomic_number(symbol)
    except InvdesignError:
        return False
    return True
