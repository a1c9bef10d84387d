"""Shared fixtures: every test starts from fixed random seeds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from invdesign.testing import skip_unless_ci

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the repository; tests that need it skip with a reason if absent."""
    path = SHARED / "data"
    if not path.is_dir():
        skip_unless_ci(f"real data folder {path} is absent (CI places ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained small xPDF -> pos_abs MLP checkpoint (for pipeline tests, not model tests)."""
    import invdesign.generators.mlp  # noqa: F401  (registers 'mlp')
    from invdesign.core.tasks import TaskSpec
    from invdesign.generators.base import build_generator
    from invdesign.generators.checkpoint import save_checkpoint

    torch.manual_seed(0)
    gen = build_generator("mlp", TaskSpec.parse("xPDF->pos_abs"), hidden=16, aux_hidden=16,
                          species_vocab=[8, 30, 78])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", gen)
