"""The property models learn: on eight cells their training error falls far below the error of
predicting the mean (a model that does not learn stays at that level)."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.train import TrainConfig, fit
from invdesign.testing import rock_salt_learning_set


@pytest.mark.parametrize("model", ["crystograph", "cgcnn"])
def test_training_error_falls_well_below_the_mean_predictor(model):
    structures, targets = rock_salt_learning_set()
    baseline = float(np.abs(targets - targets.mean()).mean())
    cfg = TrainConfig(model=model, hidden=16, heads=2, blocks=1, epochs=60, batch_size=8,
                      lr=1e-2, weight_decay=0.0, seed=0)
    predictor = fit(make_graphs(structures, targets, k=cfg.k, line_k=cfg.line_k), cfg)
    mae = float(np.abs(predictor.predict(structures) - targets).mean())
    # measured on 2026-12-02: 0.105 (crystograph) and 0.146 (cgcnn) of the baseline
    assert mae < 0.25 * baseline, (model, mae, baseline)
