"""Shared pieces of the fuzz suite (issue 22): what a valid result is, a tiny CHILI folder built
once per session, and a memory guard for inputs that could ask for absurd allocations."""

from __future__ import annotations

import contextlib
import math
import resource
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from invdesign.core import elements
from invdesign.io.measured import MeasuredPattern
from invdesign.testing import make_tiny_chili3k

#: Address space (bytes) a guarded call may add: an unchecked width of 1e7 then fails at once
#: instead of taking the machine's memory.
GUARD_BYTES = 2**30


def check_composition(comp: object) -> None:
    """A parsed composition: element symbol -> finite, positive amount; at least one element."""
    assert isinstance(comp, dict) and comp, comp
    for el, amount in comp.items():
        elements.atomic_number(el)  # raises for a non-element
        assert isinstance(amount, float) and math.isfinite(amount) and amount > 0, (el, amount)


def check_pattern(p: MeasuredPattern) -> None:
    """What every consumer of a pattern relies on: >= 10 points, x finite and strictly increasing
    (r >= 0 for a PDF), y finite with a finite sum of squares (Rw), a PDF not all zero, instrument
    values finite and in range (0 <= qmin < qmax, qdamp >= 0, biso >= 0, wavelength > 0)."""
    assert p.x.ndim == 1 and p.x.size >= 10 and p.y.shape == p.x.shape
    assert np.all(np.isfinite(p.x)) and np.all(np.diff(p.x) > 0)
    assert np.all(np.isfinite(p.y)) and math.isfinite(float(np.sum(p.y.astype(np.float64) ** 2)))
    if p.kind == "pdf":
        assert p.x[0] >= 0, f"negative r {p.x[0]} accepted"
        assert np.any(p.y != 0), "all-zero G(r) accepted"
    if p.dy is not None:
        assert p.dy.shape == p.x.shape and np.all(np.isfinite(p.dy)) and np.all(p.dy > 0)
    for name in ("qmin", "qmax", "qdamp", "biso"):
        assert math.isfinite(getattr(p, name)), f"{name} = {getattr(p, name)} accepted"
    assert 0 <= p.qmin < p.qmax and p.qdamp >= 0 and p.biso >= 0
    assert p.wavelength is None or (math.isfinite(p.wavelength) and p.wavelength > 0)
    if p.composition is not None:
        check_composition(p.composition)


@pytest.fixture(scope="session")
def valid_pattern() -> Callable[[MeasuredPattern], None]:
    """`check_pattern` (a fixture so that the suite's files share it)."""
    return check_pattern


@pytest.fixture(scope="session")
def valid_composition() -> Callable[[object], None]:
    return check_composition


@pytest.fixture(scope="session")
def memory_guard() -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A context manager that lets the process grow by at most `GUARD_BYTES` of address space."""

    @contextlib.contextmanager
    def guard() -> Iterator[None]:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        size = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
        limit = size + GUARD_BYTES if hard == resource.RLIM_INFINITY else min(size + GUARD_BYTES,
                                                                              hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

    return guard


@pytest.fixture(scope="session")
def tiny_chili_folder(tmp_path_factory) -> Path:
    """Two CHILI-3K files (ZnO rock salt and wurtzite, radii 3 and 5 Å), built once."""
    return make_tiny_chili3k(tmp_path_factory.mktemp("fuzz-chili") / "tiny", metals=("Zn",))
