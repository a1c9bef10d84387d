"""Option values of `invdesign sample` through its real parser and the checks `sample` runs before
any work (`check_options` for --n/--seed/--refine-top/--fit-range, `read_pattern` for the
instrument options and --composition): argparse's usage error, one `InvdesignError`, or values
that are finite and in range; never another exception (issue 22)."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from invdesign.cli.main import build_parser
from invdesign.core.errors import InvdesignError
from invdesign.io.measured import read_pattern
from invdesign.pipeline.inputs import check_options

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

NUMBER = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1", "-1", "16", "100000", "1e999", "nan", "inf", "-inf", "1e-9", "2.5",
                     "abc", "", "0x10", "1_000"]),
)
FLOAT_OPTIONS = ["--qmin", "--qmax", "--qdamp", "--biso", "--wavelength"]
INT_OPTIONS = ["--n", "--seed", "--refine-top"]


@st.composite
def sample_argv(draw) -> list[str]:
    argv = ["sample", "--pdf", "PDF", "--out", "out"]
    for option in draw(st.lists(st.sampled_from(FLOAT_OPTIONS + INT_OPTIONS + ["--fit-range",
                                                                             "--composition"]),
                                max_size=4, unique=True)):
        if option == "--fit-range":
            argv += [option, draw(NUMBER), draw(NUMBER)]
        elif option == "--composition":
            argv += [option, draw(st.sampled_from(["Pt", "Pt1e12", "Pt-3", "Xx", "Pt nan", ""]))]
        else:
            argv += [option + "=" + draw(NUMBER)]  # '=' so that '-1' is a value, not an option
    return argv


def _good_gr(path) -> None:
    r = np.round(np.arange(0.0, 30.0, 0.05), 4)
    g = np.sin(3 * r) * np.exp(-r / 10)
    path.write_text("qmax = 25.0\n#### start data\n" + "".join(
        f"{float(a)!r} {float(b)!r}\n" for a, b in zip(r, g, strict=True)))


def validate(args) -> tuple:
    """What `invdesign sample` checks before sampling, in its order."""
    checked = check_options(args.n, args.seed, args.refine_top,
                            tuple(args.fit_range) if args.fit_range else None)
    pattern = read_pattern(args.pdf, kind="pdf", composition=args.composition,
                           metal_core=args.metal_core or None, radiation=args.radiation,
                           qmin=args.qmin, qmax=args.qmax, qdamp=args.qdamp, biso=args.biso)
    return checked, pattern


@FAST
@given(argv=sample_argv())
def test_sample_options_are_valid_or_refused(tmp_path_factory, valid_pattern, argv):
    pdf = tmp_path_factory.getbasetemp() / "options.gr"
    if not pdf.exists():
        _good_gr(pdf)
    argv = [str(pdf) if a == "PDF" else a for a in argv]
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            args = build_parser(argv).parse_args(argv)
    except SystemExit as exc:
        event("argparse usage error")
        assert exc.code == 2 and "error:" in usage.getvalue()
        return
    try:
        (n, seed, refine_top, fit_range), pattern = validate(args)
    except InvdesignError as exc:
        event("refused")
        assert str(exc) and "\n" not in str(exc), f"multi-line message: {exc!r}"
        return
    event("accepted")
    assert isinstance(n, int) and n >= 1 and isinstance(refine_top, int) and refine_top >= 1
    assert isinstance(seed, int) and seed >= 0
    if fit_range is not None:
        assert all(math.isfinite(v) and v >= 0 for v in fit_range) and fit_range[0] < fit_range[1]
    valid_pattern(pattern)
