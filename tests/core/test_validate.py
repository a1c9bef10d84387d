"""The shared checks of user-given numbers (`invdesign.core.validate`)."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.validate import finite_in_range, int_in_range


def test_finite_in_range_returns_the_float_and_keeps_the_bounds() -> None:
    assert finite_in_range("0.25", "--qdamp", 0.0, 1.0) == 0.25
    assert finite_in_range(np.float32(1.0), "--qdamp", 0.0, 1.0) == 1.0  # closed ends
    assert finite_in_range(0, "--qdamp", 0.0, 1.0) == 0.0
    assert finite_in_range(-1e300, "x") == -1e300  # unbounded, still finite


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "--qdamp must be a finite number in [0, 1] Å^-1, not nan"),
    (float("inf"), "--qdamp must be a finite number in [0, 1] Å^-1, not inf"),
    ("1e999", "--qdamp must be a finite number in [0, 1] Å^-1, not inf"),
    ("abc", "--qdamp must be a number in [0, 1] Å^-1, not 'abc'"),
    (True, "--qdamp must be a number in [0, 1] Å^-1, not True"),
    (None, "--qdamp must be a number in [0, 1] Å^-1, not None"),
    (1.5, "--qdamp = 1.5 is outside [0, 1] Å^-1"),
    (-0.01, "--qdamp = -0.01 is outside [0, 1] Å^-1"),
])
def test_finite_in_range_refuses_in_one_line(value, message) -> None:
    with pytest.raises(InvdesignError) as info:
        finite_in_range(value, "--qdamp", 0.0, 1.0, unit="Å^-1")
    assert str(info.value) == message


def test_open_bounds_error_type_and_path() -> None:
    with pytest.raises(DataFormatError) as info:
        finite_in_range(0.0, "wavelength (header)", 0.0, 20.0, lo_open=True, path="x.gr",
                        error=DataFormatError)
    assert str(info.value) == "x.gr: wavelength (header) = 0 is outside (0, 20]"
    with pytest.raises(InvdesignError, match=r"^y = 2 is outside \[-inf, 2\)$"):
        finite_in_range(2, "y", None, 2, hi_open=True)


def test_int_in_range() -> None:
    assert int_in_range(3, "--n", 1, 10) == 3
    assert int_in_range(np.int64(10), "--n", 1, 10) == 10
    assert int_in_range(4.0, "--n", 1, 10) == 4
    cases = [
        (0, "--n = 0 is below 1 (allowed [1, 10])"),
        (11, "--n = 11 is above the limit 10 per run (allowed [1, 10])"),
        (2.5, "--n must be a whole number in [1, 10], not 2.5"),
        (float("nan"), "--n must be a whole number in [1, 10], not nan"),
        (False, "--n must be a whole number in [1, 10], not False"),
        ("two", "--n must be a whole number in [1, 10], not 'two'"),
    ]
    for value, message in cases:
        with pytest.raises(InvdesignError) as info:
            int_in_range(value, "--n", 1, 10, why=" per run")
        assert str(info.value) == message
