"""Structure-generation tasks and the tensors that cross the generator interface.

A task is (input patterns) -> (target coordinates), as in CHILI's Table 5: e.g. `xPDF->pos_abs`
(nanoparticle absolute coordinates, at most 200 atoms) or `xrd->unit_cell_pos_frac` (unit-cell
fractional coordinates, at most 20 atoms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec

Target = Literal["unit_cell_pos_frac", "pos_abs"]
TARGETS: dict[str, int] = {"unit_cell_pos_frac": 20, "pos_abs": 200}  # CHILI's atom limits


@dataclass(frozen=True)
class TaskSpec:
    """What a generator is conditioned on and what it produces.

    Attributes:
        patterns: input pattern names (CHILI names, e.g. ('xPDF',)); several patterns may be
            combined.
        target: 'unit_cell_pos_frac' (fractional coordinates + cell) or 'pos_abs' (particle, Å,
            centred).
        max_atoms: the largest structure the task holds (CHILI: 20 for unit cells, 200 for
            particles).
    """

    patterns: tuple[str, ...]
    target: Target
    max_atoms: int

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            choices = ", ".join(TARGETS)
            raise InvdesignError(f"unknown target {self.target!r}; choose from {choices}")
        if not self.patterns:
            raise InvdesignError("a task needs at least one input pattern")
        names = tuple(pattern_spec(p).name for p in self.patterns)  # canonical names, validated
        object.__setattr__(self, "patterns", names)
        if self.max_atoms < 1:
            raise InvdesignError(f"max_atoms must be positive, got {self.max_atoms}")

    @classmethod
    def parse(cls, name: str, max_atoms: int | None = None) -> TaskSpec:
        """'xPDF->pos_abs' or 'saxs+xrd->unit_cell_pos_frac' -> TaskSpec (CHILI atom limit by
        default)."""
        if "->" not in name:
            raise InvdesignError(f"task {name!r} is not of the form 'PATTERN->TARGET'")
        left, target = (part.strip() for part in name.split("->", 1))
        if target not in TARGETS:
            raise InvdesignError(f"unknown target {target!r} in task {name!r}")
        return cls(tuple(p.strip() for p in left.split("+")), target,  # type: ignore[arg-type]
                   max_atoms or TARGETS[target])

    @property
    def name(self) -> str:
        return f"{'+'.join(self.patterns)}->{self.target}"

    @property
    def kind(self) -> Literal["unit_cell", "particle"]:
        return "unit_cell" if self.target == "unit_cell_pos_frac" else "particle"

    def to_dict(self) -> dict[str, Any]:
        return {"patterns": list(self.patterns), "target": self.target, "max_atoms": self.max_atoms}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        return cls(tuple(d["patterns"]), d["target"], int(d["max_atoms"]))


@dataclass
class Condition:
    """The conditioning input of a batch of B structures.

    Attributes:
        patterns: pattern name -> [B, L] model-ready values: on the task's grid
            (`PatternSpec.grid()`) and min-max normalised to [0, 1] per sample
            (`invdesign.core.conditions`).
        composition: per item, atomic number -> fraction of atoms (None: the generator predicts
            species).
        cell_params: [B, 6] a, b, c (Å), alpha, beta, gamma (deg) when the cell is known (unit-cell
            tasks).
        n_atoms: [B] long, the number of atoms when it is known (None: the generator predicts it).
            CHILI's MAE is defined at the true atom count, so evaluation passes it.
    """

    patterns: dict[str, torch.Tensor]
    composition: list[dict[int, float]] | None = None
    cell_params: torch.Tensor | None = None
    n_atoms: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return next(iter(self.patterns.values())).shape[0]

    def to(self, device: torch.device | str) -> Condition:
        return Condition(
            {k: v.to(device) for k, v in self.patterns.items()},
            self.composition,
            None if self.cell_params is None else self.cell_params.to(device),
            None if self.n_atoms is None else self.n_atoms.to(device),
        )


@dataclass
class TaskBatch:
    """A training batch. Atoms are sorted by distance from the origin (|pos_frac| or |pos_abs|),
    padded.

    Attributes:
        condition: the model-ready patterns (+ composition, cell).
        target: [B, max_atoms, 3] sorted coordinates (fractional, or Å), zero padding.
        mask: [B, max_atoms] bool, True for real atoms.
        species: [B, max_atoms] long atomic numbers in the same order, 0 for padding.
        n_atoms: [B] long.
        cell_params: [B, 6] parent-cell parameters (a, b, c Å; angles deg).
        meta: per item identifiers (source file, particle size), not used by models.
        parent: particle tasks, the parent unit cells of the items as a unit-cell batch (same
            condition); None otherwise.
    """

    condition: Condition
    target: torch.Tensor
    mask: torch.Tensor
    species: torch.Tensor
    n_atoms: torch.Tensor
    cell_params: torch.Tensor
    meta: list[dict[str, Any]] = field(default_factory=list)
    parent: TaskBatch | None = None

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(
            self.condition.to(device),
            self.target.to(device),
            self.mask.to(device),
            self.species.to(device),
            self.n_atoms.to(device),
            self.cell_params.to(device),
            self.meta,
            None if self.parent is None else self.parent.to(device),
        )
