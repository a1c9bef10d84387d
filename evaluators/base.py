"""The contract every evaluator implements, and the name -> class registry.

An evaluator scores candidate structures: `evaluate(structures)` returns one record (column name
-> value) per structure. Evaluators that need context (a measured pattern, a checkpoint) take it in
their constructor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure

_REGISTRY: dict[str, type[Evaluator]] = {}


class Evaluator(ABC):
    """Base class of candidate evaluators (forward simulation, property prediction, ...)."""

    name: ClassVar[str] = ""

    @abstractmethod
    def evaluate(self, structures: Sequence[Structure]) -> list[dict[str, Any]]:
        """One record of named scores per structure, in input order."""


def register_evaluator(name: str):
    """Class decorator: make an evaluator available as `name`."""

    def wrap(cls: type[Evaluator]) -> type[Evaluator]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def evaluator_class(name: str) -> type[Evaluator]:
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise InvdesignError(f"unknown evaluator {name!r}; available: {known}")
    return _REGISTRY[name]
