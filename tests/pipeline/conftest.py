"""Fixtures of the pipeline tests: a small, fast candidate pool for tests of the run's plumbing
(outputs, refusals, atomicity, seeds); the tests of the pool itself use the real one."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from invdesign.core.structure import Structure
from invdesign.pipeline import planning
from invdesign.pipeline.sources import GeneratorSamples, MetallicPackings, SourceContext


class FewPackings(MetallicPackings):
    """The first `n` discrete packings of the real source (no crystals)."""

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        particles = (s for s in super().candidates(context, n) if not s.is_periodic)
        yield from itertools.islice(particles, n)


@pytest.fixture
def quick_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool of a run: the particle model's samples and the first `n` metallic packings."""
    monkeypatch.setattr(planning, "SOURCES", (GeneratorSamples(), FewPackings()))
