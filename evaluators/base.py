"""The contract every evaluator implements, and the name -> class registry.

An evaluator scores candidate structures: `evaluate(structures)` returns one record (column name
-> value) per structure. Evaluators that need context (a measured pattern, a checkpoint) take it in
their constructor.

Adding an evaluator
-------------------
1. Write a class deriving from `Evaluator` in a module of a sub-package of `invdesign.evaluators`
   (an existing one, e.g. `evaluators/property/`, or a new `evaluators/<name>/`), decorated with
   `@register_evaluator("<name>")`; its constructor takes the context it needs as keyword options
   and `evaluate` returns one dict per structure, in input order, with units in the column names
   or the docstring (e.g. `formation_energy_per_atom`, eV/atom).
2. Make the sub-package's `__init__.py` import that module, so importing the package registers it.
3. Use it by name: `evaluator_class("<name>")(**options)` or `build_evaluator("<name>", ...)`.
   The registry imports the evaluator sub-packages on the first lookup of a name it does not know
   yet (`invdesign.evaluators.<name>` first, then all of them), so nobody imports the class and
   importing this module stays light (the CLI's start-up).
4. Test it in `tests/evaluators/<sub-package>/` with tiny structures made in the test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from invdesign.core.registry import Registry
from invdesign.core.structure import Structure

#: The package whose sub-packages hold the evaluators (`invdesign.evaluators`).
PACKAGE = __name__.rpartition(".")[0]
REGISTRY: Registry[type[Evaluator]] = Registry("evaluator", PACKAGE)


class Evaluator(ABC):
    """Base class of candidate evaluators (forward simulation, property prediction, ...)."""

    name: ClassVar[str] = ""

    @abstractmethod
    def evaluate(self, structures: Sequence[Structure]) -> list[dict[str, Any]]:
        """One record of named scores per structure, in input order."""


def register_evaluator(name: str):
    """Class decorator: make an evaluator available as `name`."""
    return REGISTRY.register(name)


def evaluator_names() -> list[str]:
    """Names of every evaluator (all sub-packages imported)."""
    return REGISTRY.names()


def evaluator_class(name: str) -> type[Evaluator]:
    """The evaluator class registered as `name`: the package `invdesign.evaluators.<name>` is
    imported first when it exists, every evaluator package only if that does not register it.

    Raises:
        InvdesignError: no evaluator of that name (the message lists the known ones).
    """
    return REGISTRY.get(name)


def build_evaluator(name: str, **options: Any) -> Evaluator:
    """Instantiate evaluator `name` with its constructor options (a pattern, a checkpoint...)."""
    return evaluator_class(name)(**options)
