"""A name -> class registry whose classes live in the sub-packages of one package.

Generators (`invdesign.generators`) and evaluators (`invdesign.evaluators`) each keep one. A class
registers itself with the `register(name)` decorator when its module is imported; a lookup of a
name the registry does not know yet imports `<package>.<name>` first (when it exists), then every
sub-package, so nothing imports a heavy model it does not use and the CLI starts fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from invdesign.core.errors import InvdesignError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes of one kind (`kind`: 'generator', 'evaluator') found in `package`'s sub-packages.

    Args:
        kind: the word used in messages.
        package: dotted name of the package whose sub-packages register their classes.
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self.classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: make the class available as `name` (and set its `name` attribute)."""

        def wrap(cls: T) -> T:
            if name in self.classes and self.classes[name] is not cls:
                raise ValueError(f"{self.kind} name {name!r} registered twice")
            cls.name = name
            self.classes[name] = cls
            return cls

        return wrap

    def discover(self) -> None:
        """Import every sub-package of the package (each registers its classes)."""
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg:
                importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        """Every registered name, all sub-packages imported."""
        self.discover()
        return sorted(self.classes)

    def get(self, name: str) -> T:
        """The class registered as `name`.

        Raises:
            InvdesignError: no class of that name (the message lists the known ones).
        """
        if name not in self.classes and name.isidentifier():
            if importlib.util.find_spec(f"{self.package}.{name}") is not None:
                importlib.import_module(f"{self.package}.{name}")
        if name not in self.classes:
            self.discover()
        if name not in self.classes:
            known = ", ".join(sorted(self.classes))
            raise InvdesignError(f"unknown {self.kind} {name!r}; available: {known}")
        return self.classes[name]
