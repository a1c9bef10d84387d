"""From measured data to ranked candidate structures (`invdesign sample`).

- `sample`: the Python API (`run.sample`), returning a `SampleResult`;
- `defaults`: which shipped checkpoint is used by default (the one place to change it);
- `sizing`: particle size and first-peak distance from G(r);
- `sources`: the candidate sources of the one pool every run builds (generator samples, unit-cell
  model samples, metallic packings and cluster shapes, the structure-type library and the user's
  CIFs) and how to add one;
- `planning`: which sources apply and which checkpoints they sample;
- `pool`: duplicates, validity, discrete cuts of small particles, refinement of the best, ranking;
- `forward`: scoring and refinement of particles (Debye sum) and crystals (attenuated crystal);
- `outputs`, `report`: files in `--out` (written atomically) and the printed table.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Candidate", "Fit", "SampleResult", "sample"]
_HOME = {"Candidate": "result", "Fit": "result", "SampleResult": "result", "sample": "run"}


def __getattr__(name: str) -> Any:
    """Import on first use: `invdesign.pipeline.defaults` alone (e.g. for `invdesign sample
    --help`) must not pull in torch and the generators."""
    if name in _HOME:
        value = getattr(importlib.import_module(f"invdesign.pipeline.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'invdesign.pipeline' has no attribute {name!r}")
