"""Exact values of Rw, the fitted scale and Pearson r on small hand-worked inputs (kill the
mutants of evaluators/metrics/pattern.py: benchmarks/mutation_score.py pattern).

Hand arithmetic for obs = [1, 2, 3], calc = [1, 1, 2]:
  s = (1 + 2 + 6) / (1 + 1 + 4) = 1.5; obs - s calc = [-0.5, 0.5, 0]; Rw = sqrt(0.5 / 14);
  Pearson: a = [-1, 0, 1], b = [-1/3, -1/3, 2/3], r = 1 / sqrt(2 * 2/3) = sqrt(3) / 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from invdesign.evaluators.metrics.pattern import fit_scale, pearson, rw

OBS = [1.0, 2.0, 3.0]
CALC = [1.0, 1.0, 2.0]


def test_fit_scale_exact() -> None:
    s = fit_scale(np.array(OBS), np.array(CALC))
    assert isinstance(s, torch.Tensor) and s.dtype == torch.float64
    assert s.item() == pytest.approx(1.5, abs=1e-15)
    # not symmetric: swapping obs and calc gives 9 / 14
    assert fit_scale(np.array(CALC), np.array(OBS)).item() == pytest.approx(9 / 14, abs=1e-15)


def test_fit_scale_of_an_all_zero_calc_is_zero() -> None:
    assert fit_scale(np.array(OBS), np.zeros(3)).item() == 0.0


def test_rw_with_fitted_scale_exact() -> None:
    value, s = rw(np.array(OBS), np.array(CALC))
    assert value.item() == pytest.approx(math.sqrt(0.5 / 14), abs=1e-15)
    assert s.item() == pytest.approx(1.5, abs=1e-15)


def test_rw_with_given_scale_exact() -> None:
    # s = 2: obs - 2 calc = [-1, 0, -1]; Rw = sqrt(2 / 14); the given scale is returned
    value, s = rw(np.array(OBS), np.array(CALC), scale=2.0)
    assert value.item() == pytest.approx(math.sqrt(2 / 14), abs=1e-15)
    assert s.item() == 2.0


def test_rw_of_an_all_zero_calc_is_one() -> None:
    value, s = rw(np.array(OBS), np.zeros(3))
    assert (value.item(), s.item()) == (1.0, 0.0)


def test_rw_works_on_the_last_axis_of_a_batch() -> None:
    obs = torch.tensor([OBS, [0.0, 4.0, 0.0]], dtype=torch.float64)
    calc = torch.tensor([CALC, [0.0, 2.0, 1.0]], dtype=torch.float64)
    value, s = rw(obs, calc)
    # row 2: s = 8 / 5; obs - s calc = [0, 0.8, -1.6]; Rw = sqrt(3.2 / 16)
    assert s.tolist() == pytest.approx([1.5, 1.6], abs=1e-15)
    assert value.tolist() == pytest.approx([math.sqrt(0.5 / 14), math.sqrt(3.2 / 16)], abs=1e-15)


def test_obs_is_cast_to_the_dtype_of_calc() -> None:
    obs = torch.tensor(OBS, dtype=torch.float64)
    calc = torch.tensor(CALC, dtype=torch.float32)
    assert fit_scale(obs, calc).dtype == torch.float32
    value, s = rw(obs, calc)
    assert value.dtype == torch.float32 and s.dtype == torch.float32
    assert pearson(obs, calc).dtype == torch.float32
    value, s = rw(obs, calc, scale=np.float64(2.0))
    assert s.dtype == torch.float32


def test_pearson_exact() -> None:
    r = pearson(np.array(OBS), np.array(CALC))
    assert r.item() == pytest.approx(math.sqrt(3) / 2, abs=1e-15)
    # anti-correlated, offset and scaled: exactly -1
    assert pearson(np.array(OBS), 5.0 - 2.0 * np.array(OBS)).item() == pytest.approx(-1.0,
                                                                                       abs=1e-15)


def test_pearson_of_a_constant_curve_is_zero() -> None:
    assert pearson(np.array(OBS), np.full(3, 7.0)).item() == 0.0
    assert pearson(np.full(3, 7.0), np.array(OBS)).item() == 0.0


def test_pearson_on_the_last_axis_of_a_batch() -> None:
    obs = torch.tensor([OBS, [3.0, 2.0, 1.0]], dtype=torch.float64)
    calc = torch.tensor([CALC, CALC], dtype=torch.float64)
    assert pearson(obs, calc).tolist() == pytest.approx([math.sqrt(3) / 2, -math.sqrt(3) / 2],
                                                        abs=1e-15)


def test_numpy_float32_and_int_inputs_are_computed_in_float64() -> None:
    s = fit_scale(np.array(OBS, dtype=np.float32), np.array(CALC, dtype=np.float32))
    assert s.dtype == torch.float64
    value, s = rw([1, 2, 3], [1, 1, 2])  # integer lists
    assert value.dtype == torch.float64 and s.item() == 1.5


def test_small_amplitudes_are_not_treated_as_zero() -> None:
    """sum calc^2 = 0.06 and the Pearson denominator 0.006 are below one, not zero."""
    obs, calc = 0.1 * np.array(OBS), 0.1 * np.array(CALC)
    assert fit_scale(obs, calc).item() == pytest.approx(1.5, abs=1e-13)
    assert rw(obs, calc)[0].item() == pytest.approx(math.sqrt(0.5 / 14), abs=1e-13)
    assert pearson(obs, calc).item() == pytest.approx(math.sqrt(3) / 2, abs=1e-13)


def test_pearson_centres_each_row_on_its_own_mean() -> None:
    obs = torch.tensor([OBS, [11.0, 12.0, 13.0]], dtype=torch.float64)
    calc = torch.tensor([CALC, [5.0, 5.0, 6.0]], dtype=torch.float64)
    assert pearson(obs, calc).tolist() == pytest.approx([math.sqrt(3) / 2] * 2, abs=1e-13)
