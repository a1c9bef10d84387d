"""The diffusion generator's hyper-parameters: one typed, validated record.

`DiffusionHParams` holds exactly the keyword arguments `DiffusionGenerator` takes (the names are
those of configs' `generator.hparams` and of checkpoints' `hparams` entry, so both keep working);
`from_dict` refuses unknown keys, wrong types and out-of-range values with a one-line `ConfigError`
naming the key, and `to_dict` gives the JSON-able dict `DiffusionGenerator.hparams()` returns.
Checks that need the task or the noise schedule (a prior's geometry, `prior_sigma` against the
schedule's noise levels) are made where those are built (`priors/`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from invdesign.core.errors import ConfigError
from invdesign.generators.diffusion.schedule import BETA_SCHEDULES, SAMPLERS

#: Priors the reverse process can start from: 'none' (noise), 'mlp' (unit cells, the regression
#: estimate), 'cell' (particles, cut from a predicted unit cell) and 'prototype' (both: a
#: training prototype fitted to the pattern, particles cut from it).
PRIORS = ("none", "mlp", "cell", "prototype")

#: Keyword arguments of `network.EquivariantDenoiser`.
NET_KEYS = (
    "scalar_dim",
    "vector_dim",
    "n_layers",
    "lmax",
    "n_radial",
    "r_max",
    "radial_hidden",
    "avg_neighbors",
    "msg_scalar_dim",
    "msg_vector_dim",
)

_POSITIVE = (
    "cond_dim", "species_dim", "time_dim", "scalar_dim", "vector_dim", "n_layers", "n_radial",
    "r_max", "radial_hidden", "avg_neighbors", "msg_scalar_dim", "msg_vector_dim", "k_neighbors",
    "coord_scale", "max_radius", "n_freq", "sampling_steps", "sample_batch", "prior_max_atoms",
    "prior_top_k", "reference_anion", "resample_temperature",
)
_NON_NEGATIVE = (
    "lmax", "count_weight", "species_weight", "cell_weight", "prior_sigma", "prior_weight",
    "guidance_scale", "resample_every",
)
_CHOICES: dict[str, tuple[str, ...]] = {
    "centre": ("centroid", "metal"),
    "cell_origin": ("free", "atom"),
    "prior": PRIORS,
    "beta_schedule": BETA_SCHEDULES,
}


@dataclass(frozen=True)
class DiffusionHParams:
    """Hyper-parameters of `DiffusionGenerator` (its docstring says what each one does).

    Widths and counts are positive integers; lengths (`r_max`, `coord_scale`, `max_radius`,
    particle `prior_sigma`) are in Å; noise levels of unit cells are in fractional units.
    """

    species_vocab: list[int] = field(default_factory=lambda: [8])
    cond_dim: int = 128
    species_dim: int = 32
    time_dim: int = 64
    scalar_dim: int = 64
    vector_dim: int = 16
    n_layers: int = 4
    lmax: int = 2
    n_radial: int = 16
    r_max: float = 8.0
    radial_hidden: int = 64
    avg_neighbors: float = 16.0
    msg_scalar_dim: int | None = 16
    msg_vector_dim: int | None = 8
    k_neighbors: int = 16
    coord_scale: float = 4.0
    max_radius: float | None = None
    frame_vectors: bool = False
    centre: str = "centroid"
    cell_origin: str = "free"
    n_freq: int = 4
    num_train_timesteps: int = 1000
    beta_schedule: str | None = None
    sigma_min: float = 0.005
    sigma_max: float = 1.0
    sampler: str = "dpmsolver"
    sampling_steps: int = 50
    corrector_steps: int = 0
    corrector_snr: float = 0.1
    sample_batch: int = 32
    count_weight: float = 0.1
    species_weight: float = 0.1
    cell_weight: float = 0.1
    prior: str = "none"
    prior_hparams: dict[str, Any] | None = None
    prototypes: list[dict[str, Any]] | None = None
    reference_anion: int | None = None
    prior_top_k: int = 3
    prior_sigma: float = 0.01
    prior_train_sigma: float = 0.05
    prior_weight: float = 1.0
    prior_max_atoms: int = 20
    guidance_scale: float = 0.0
    guidance_start: float = 0.8
    guidance_cell: bool = True
    resample_every: int = 0
    resample_temperature: float = 0.05

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _TYPES[f.name])
        object.__setattr__(self, "species_vocab", [int(z) for z in self.species_vocab])
        for key in _POSITIVE:
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"diffusion hyper-parameter {key} must be positive, got {value}")
        for key in _NON_NEGATIVE:
            value = getattr(self, key)
            if value < 0:
                raise ConfigError(
                    f"diffusion hyper-parameter {key} must be >= 0, got {value}")
        for key, choices in _CHOICES.items():
            value = getattr(self, key)
            if value is not None and value not in choices:
                raise ConfigError(
                    f"{key} must be {' or '.join(repr(c) for c in choices)}, not {value!r}"
                    if len(choices) == 2 else
                    f"{key} must be one of {', '.join(choices)}, not {value!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if self.corrector_steps < 0 or self.corrector_snr <= 0:
            raise ConfigError(
                f"need corrector_steps >= 0 and corrector_snr > 0, got {self.corrector_steps}, "
                f"{self.corrector_snr}")
        if not 0 <= self.guidance_start <= 1:
            raise ConfigError(
                f"diffusion hyper-parameter guidance_start must be in [0, 1], got "
                f"{self.guidance_start}")
        if not self.species_vocab or not all(1 <= z <= 118 for z in self.species_vocab):
            raise ConfigError(
                f"species_vocab must hold atomic numbers 1..118, got {self.species_vocab}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DiffusionHParams:
        """The record of a config's or checkpoint's hyper-parameters (missing keys: defaults).

        Raises:
            ConfigError: an unknown key (with the nearest known name), a value of the wrong type
                or out of range; one line naming the key.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigError(f"unknown diffusion hyper-parameter {key!r}{hint}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able {name: value} of every hyper-parameter (the constructor's keywords)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out

    def replace(self, **changes: Any) -> DiffusionHParams:
        """A copy with `changes` (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def keyword_signature(cls) -> inspect.Signature:
        """`(self, task, *, <field>=<default>, ...)`: the signature of a constructor that takes
        these hyper-parameters as keywords (for introspection, e.g. `Generator.check_hparams`)."""
        task = inspect.Parameter("task", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), task]
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                            default=default, annotation=_TYPES[f.name]))
        return inspect.Signature(params)

    @property
    def net(self) -> dict[str, Any]:
        """Keyword arguments of the equivariant network (`NET_KEYS`)."""
        return {k: getattr(self, k) for k in NET_KEYS}


_TYPES = typing.get_type_hints(DiffusionHParams)


def _check_type(key: str, value: Any, hint: Any) -> None:
    """Raise a one-line ConfigError unless `value` fits the annotation `hint` (ints are accepted
    for floats; bools are not numbers here)."""
    if _fits(value, hint):
        return
    plain = typing.get_origin(hint) is None and isinstance(hint, type)
    name = hint.__name__ if plain else str(hint).replace("typing.", "")
    raise ConfigError(
        f"diffusion hyper-parameter {key} must be {name}, got {type(value).__name__} {value!r}")


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list | tuple) and all(_fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)
