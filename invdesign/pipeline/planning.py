"""The plan of `sample`: which candidate sources (`sources.SOURCES`) make how many candidates, the
generator it samples, and the candidates themselves, yielded one by one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.generators.checkpoint import load_checkpoint
from invdesign.pipeline.sources import (
    SOURCES,
    CandidateSource,
    ModelMissing,
    PlanInputs,
    SourceContext,
)


def load_generator(path: Path, device: str = "cpu"):
    """The generator of a checkpoint (`load_checkpoint`; the registry imports only its package)."""
    return load_checkpoint(path, device=device)


@dataclass(frozen=True)
class Part:
    """`n` candidates from `source`."""

    source: CandidateSource
    n: int


@dataclass(frozen=True)
class Plan:
    """How many candidates come from where.

    Attributes:
        parts: the sources that run and their counts, in production order (a count may be 0).
        checkpoint: the generator checkpoint actually sampled (None when no model source runs).
        text: one sentence for the report.
    """

    parts: tuple[Part, ...]
    checkpoint: Path | None
    text: str

    @property
    def n_model(self) -> int:
        """Candidates from the generator."""
        return sum(p.n for p in self.parts if p.source.from_model)

    @property
    def n_known(self) -> int:
        """Candidates from known structures."""
        return sum(p.n for p in self.parts if not p.source.from_model)

    @property
    def model_name(self) -> str:
        """The sampled checkpoint's folder name, else the name of the first source."""
        return self.checkpoint.name if self.checkpoint is not None else self.parts[0].source.name

    @property
    def methods(self) -> list[str]:
        """The sentences on the methods of the sources that make candidates (each once)."""
        return list(dict.fromkeys(p.source.method for p in self.parts if p.n and p.source.method))


def _share(total: int, count: int) -> list[int]:
    """`total` split into `count` near-equal parts, the larger ones first."""
    return [total // count + (i < total % count) for i in range(count)]


def make_plan(inputs: PlanInputs, loaded: Path, n: int,
              sources: Sequence[CandidateSource] = SOURCES) -> Plan:
    """Share `n` among the sources that apply to `inputs`: the known-structure sources get n // 2
    when a model source applies too, else everything; when the model source's checkpoint is not
    installed, the known sources get all `n` (and the error is raised when there are none).

    Args:
        inputs: route, composition, size and the loaded generator's task.
        loaded: the checkpoint the run loaded.
        n: candidates in all.
    """
    applying = [s for s in sources if s.applies(inputs)]
    model = [s for s in applying if s.from_model]
    known = [s for s in applying if not s.from_model]
    checkpoint: Path | None = None
    note = ""
    if model:
        try:
            checkpoint = model[0].checkpoint(inputs, loaded)
        except ModelMissing as err:
            if not known:
                raise
            model, note = [], f" ({err.note})"
    n_known = (n // 2 if model else n) if known else 0
    counts = _share(n - n_known, len(model)) if model else []
    counts += _share(n_known, len(known)) if known else []
    parts = tuple(Part(s, k) for s, k in zip(model + known, counts, strict=True))
    if not parts:
        raise InvdesignError(f"no candidate source applies to the route {inputs.route.name}")
    text = ", ".join(f"{p.n} {p.source.phrase(inputs)}" for p in parts) + note
    return Plan(parts, checkpoint, text)


def sampled_generator(plan: Plan, generator, loaded: Path, device: str):
    """The generator the plan samples: `generator` (loaded from `loaded`) or the one of the
    plan's checkpoint (the unit-cell model beside a particle model); None when the plan samples
    none."""
    if plan.checkpoint is None or not plan.n_model:
        return None
    if plan.checkpoint == loaded:
        return generator
    return load_generator(plan.checkpoint, device=device)


def produce(plan: Plan, context: SourceContext) -> Iterator[Structure]:
    """The candidates of `plan`, yielded one by one (cut particles as they are cut)."""
    for part in plan.parts:
        if part.n:
            yield from part.source.candidates(context, part.n)
