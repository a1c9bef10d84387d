"""From measured data to ranked candidate structures (`invdesign sample`).

- `sample`: the Python API (`run.sample`), returning a `SampleResult`;
- `defaults`: which shipped checkpoint is used by default (the one place to change it);
- `sizing`, `candidates`: particle size from G(r), and the route (`RouteKind`) it leads to;
- `sources`: the candidate sources (generator samples, unit cells cut to particles, metallic
  packings, CHILI-3K crystal types of metal oxides) and how to add one;
- `planning`: which sources run for the route and how many candidates each makes;
- `forward`: scoring and refinement through the 'forward' evaluator (evaluator registry);
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
