"""The contract every conditional generator implements, and the name -> class registry.

A generator is a plain `torch.nn.Module` built from a `TaskSpec` and JSON-able hyper-parameters:
- `loss(batch)` returns a dict of scalar tensors with at least 'loss' (training glue calls only
  this);
- `sample(condition, n)` returns, per condition item, `n` candidate `Structure`s;
- `hparams()` returns the constructor keyword arguments, so a checkpoint rebuilds the model from the
  file alone.

Adding a generator means adding a sub-package of `invdesign.generators` whose module applies
`@register_generator("name")`; the registry imports sub-packages on first lookup.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from invdesign.core.errors import InvdesignError
from invdesign.core.registry import Registry
from invdesign.core.schema import check_fields, signature_hints, takes_any_keyword
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec

#: Generators register here; their sub-packages of `invdesign.generators` are imported on lookup.
REGISTRY: Registry[type[Generator]] = Registry("generator", __name__.rpartition(".")[0])


class Generator(nn.Module, ABC):
    """Base class of conditional structure generators.

    Args:
        task: what the generator is conditioned on and produces.
    """

    name: ClassVar[str] = ""
    #: keyword options `sample` takes beyond the contract's (the diffusion model: sampler, steps)
    sampling_options: ClassVar[tuple[str, ...]] = ()
    #: a typed record of the hyper-parameters whose `from_dict(values)` refuses unknown keys,
    #: wrong types and out-of-range values; None: the constructor's signature is the schema
    hparams_schema: ClassVar[Any] = None

    def __init__(self, task: TaskSpec) -> None:
        super().__init__()
        self.task = task

    @abstractmethod
    def loss(self, batch: TaskBatch) -> dict[str, torch.Tensor]:
        """Training losses of a batch; the dict holds the total under 'loss' plus parts to log."""

    @abstractmethod
    def sample(
        self, condition: Condition, n: int, generator: torch.Generator | None = None
    ) -> list[list[Structure]]:
        """`n` candidates per condition item: a list of B lists of n structures.

        Unit-cell tasks return `kind='unit_cell'` structures (cell + fractional coordinates);
        particle tasks return `kind='particle'` structures centred at the origin, positions in Å.
        """

    @abstractmethod
    def hparams(self) -> dict[str, Any]:
        """JSON-able constructor keyword arguments (besides `task`)."""

    @classmethod
    def check_hparams(cls, hparams: Any, where: str = "hparams") -> None:
        """Refuse stored hyper-parameters before any tensor is allocated: keys the constructor
        does not take, values of the wrong type, non-finite numbers, integers outside sane bounds
        (`core.schema`), then `hparams_schema.from_dict` when the class has one.

        Raises:
            InvdesignError: one line naming `where` and the key.
        """
        hints = signature_hints(cls.__init__, skip=("self", "task"))
        other = takes_any_keyword(cls.__init__) and cls.hparams_schema is None
        check_fields(hparams, hints, where, other_keys=other)
        if cls.hparams_schema is not None:
            try:
                cls.hparams_schema.from_dict(hparams)
            except InvdesignError as exc:
                raise InvdesignError(exc.message, where) from None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def register_generator(name: str):
    """Class decorator: make a generator available as `name` in configs, checkpoints and the CLI."""
    return REGISTRY.register(name)


def generator_names() -> list[str]:
    """Names of every generator (all sub-packages imported)."""
    return REGISTRY.names()


def generator_class(name: str) -> type[Generator]:
    """The generator class registered as `name`: its own package `invdesign.generators.<name>` is
    imported first, every generator package only if that does not register it (so loading an MLP
    checkpoint does not import diffusion's heavy dependencies)."""
    return REGISTRY.get(name)


def build_generator(name: str, task: TaskSpec, **hparams: Any) -> Generator:
    """Instantiate generator `name` for `task` with hyper-parameters `hparams`."""
    return generator_class(name)(task, **hparams)
