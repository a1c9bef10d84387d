"""From measured data to ranked candidate structures (`invdesign sample`).

- `sample`: the Python API (`sample.sample`), returning a `SampleResult`;
- `defaults`: which shipped checkpoint is used by default (the one place to change it);
- `sizing`, `candidates`: particle size from G(r), and the route that makes the candidates;
- `packings`, `templates`: known structures beside the model (metallic packings; CHILI-3K
  crystal types of metal oxides), used when the model cannot or should not answer alone;
- `forward`: scoring and refinement through `invdesign.evaluators.forward`;
- `outputs`, `report`: files in `--out` (written atomically) and the printed table.
"""

from invdesign.pipeline.result import Candidate, Fit, SampleResult
from invdesign.pipeline.sample import sample

__all__ = ["Candidate", "Fit", "SampleResult", "sample"]
