"""Generated compositions through `parse_composition`: element -> finite positive amount, or one
`InvdesignError`, never another exception (issue 22)."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from invdesign.core.errors import InvdesignError
from invdesign.io.composition import parse_composition

FAST = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                report_multiple_bugs=False)

SYMBOLS = ["Pt", "Au", "S", "C", "H", "O", "Cd", "Se", "Zn", "Xx", "D", "T", "Uue", "pt", "PT", "e"]
AMOUNTS = st.one_of(
    st.just(""),
    st.integers(-5, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e12", "1e300", "1e999", "0", "0.0", "-1", "nan", "inf", ".5", "1.",
                     "1e-320", "٣", "½"]),
)


@st.composite
def formulas(draw) -> str:
    """Element symbols with amounts, brackets, separators, occasionally arbitrary text."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=20))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        part = draw(st.sampled_from(SYMBOLS)) + draw(AMOUNTS)
        if draw(st.integers(0, 5)) == 0:
            part = f"({part}){draw(AMOUNTS)}"
        parts.append(part)
    return draw(st.sampled_from([" ", "", ",", ", ", "\t"])).join(parts)


@FAST
@given(text=formulas())
def test_composition_is_valid_or_refused(valid_composition, text):
    try:
        comp = parse_composition(text)
    except InvdesignError as exc:
        event("refused")
        assert str(exc) and "\n" not in str(exc), f"multi-line message: {exc!r}"
    else:
        event("accepted")
        valid_composition(comp)


def test_ligand_composition_parses():
    """The generator's valid end: a composition with ligands reads as written."""
    assert parse_composition("Au144 S60 C480 H540") == {"Au": 144.0, "S": 60.0, "C": 480.0,
                                                        "H": 540.0}
