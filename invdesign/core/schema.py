"""Checks of stored hyper-parameters against the signature that consumes them, before any tensor
is allocated.

A checkpoint's JSON metadata rebuilds a model: its keys become constructor keywords, its numbers
become layer widths. `check_fields` refuses, in one line naming the file and the key, anything the
constructor would not have written itself: an unknown key, a value of the wrong type (judged from
the type hints, or the default's type), a non-finite number, an integer outside sane bounds.
`count_parameters_meta` builds a module on the `meta` device (shapes only, no memory) so a caller
can refuse an absurd model by its size.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import torch

from invdesign.core.errors import InvdesignError

#: integer hyper-parameters (widths, counts, steps) must lie in [0, MAX_INT]
MAX_INT = 65536
#: names holding a depth (layers, blocks, heads) must lie in [1, MAX_DEPTH]
MAX_DEPTH = 64
_DEPTH_WORDS = ("layers", "blocks", "heads")
_WIDTH_WORDS = ("hidden", "dim", "channels", "emb", "latent", "pooled", "grid", "rank", "points")
_UNBOUNDED = ("seed",)


def takes_any_keyword(func: Callable[..., Any]) -> bool:
    """Whether `func` has a **kwargs parameter (its signature cannot say which keys are known)."""
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(func).parameters.values())


def signature_hints(func: Callable[..., Any], skip: tuple[str, ...] = ("self",)) -> dict[str, Any]:
    """Keyword name -> expected type of `func`'s parameters (type hints; else the default's type;
    else Any). `skip` names are left out; *args/**kwargs are ignored."""
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError):  # unresolvable annotation: fall back to the defaults
        hints = {}
    out: dict[str, Any] = {}
    for name, p in inspect.signature(func).parameters.items():
        if name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in hints:
            out[name] = hints[name]
        elif p.default is not inspect.Parameter.empty and p.default is not None:
            out[name] = type(p.default)
        else:
            out[name] = Any
    return out


def _matches(value: Any, tp: Any) -> bool:
    """Whether JSON data `value` fits type `tp` (ints pass for floats, never bools for numbers)."""
    if tp is Any or tp is object:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if tp is type(None) or tp is None:
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is typing.Literal:
        return value in args
    base = origin or tp
    if base in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        if not isinstance(value, list | tuple):
            return False
        if base is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_matches, value, args))
        return not args or all(_matches(v, args[0]) for v in value)
    if base in (dict, Mapping, collections.abc.Mapping):
        if not isinstance(value, dict):
            return False
        return len(args) != 2 or all(
            _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()
        )
    return not isinstance(tp, type) or isinstance(value, tp)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("collections.abc.", "")


def _check_numbers(key: str, value: Any, fail: Callable[[str], None]) -> None:
    """Finite floats; integers within bounds chosen by the key's name (recursing into lists)."""
    if isinstance(value, list | tuple):
        for item in value:
            _check_numbers(key, item, fail)
        return
    if isinstance(value, float) and not math.isfinite(value):
        fail(f"{key} must be finite, got {value}")
    if not isinstance(value, int) or isinstance(value, bool) or key in _UNBOUNDED:
        return
    words = key.lower()
    if any(w in words for w in _DEPTH_WORDS):
        lo, hi = 1, MAX_DEPTH
    elif any(w in words for w in _WIDTH_WORDS):
        lo, hi = 1, MAX_INT
    else:
        lo, hi = 0, MAX_INT
    if not lo <= value <= hi:
        fail(f"{key} = {value} is outside {lo}..{hi}")


def check_fields(
    values: Any, hints: Mapping[str, Any], where: str, what: str = "hyper-parameter",
    error: type[InvdesignError] = InvdesignError,
    other_keys: bool = False,
) -> dict[str, Any]:
    """Refuse stored keyword arguments that `hints` (from `signature_hints`) would not accept.

    Args:
        values: the stored mapping (JSON data).
        hints: name -> expected type.
        where: the file named in the message.
        what: what a key is called in the message.
        other_keys: accept keys `hints` does not name (typed Any; numbers still bounded).

    Returns:
        `values` (unchanged) when it passes.

    Raises:
        error: one line naming `where`, the key and the problem.
    """

    def fail(message: str) -> None:
        raise error(f"{what} {message}", where)

    if not isinstance(values, dict):
        raise error(f"{what}s must be a JSON object, not {type(values).__name__}", where)
    unknown = sorted(str(k) for k in values if k not in hints)
    if unknown and not other_keys:
        fail(f"{', '.join(map(repr, unknown))} unknown; known: {', '.join(sorted(hints))}")
    for key, value in values.items():
        hint = hints.get(key, Any)
        if not _matches(value, hint):
            fail(f"{key} must be {_type_name(hint)}, not {value!r:.60}")
        _check_numbers(key, value, fail)
    return values


def widths(values: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(name, value) of the width-like integers (hidden, *_dim, channels, ...; list items too),
    widest first."""
    out = []
    for key, value in values.items():
        if not any(w in key.lower() for w in _WIDTH_WORDS):
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, int) and not isinstance(item, bool):
                out.append((key, item))
    return sorted(out, key=lambda kv: -kv[1])


#: In-place fills of a tensor (random or constant) that `count_parameters_meta` skips.
_FILLS = frozenset({"normal_", "uniform_", "trunc_normal_", "fill_", "zero_", "bernoulli_",
                    "exponential_", "random_", "log_normal_", "cauchy_", "geometric_"})


class _SkipInit(torch.overrides.TorchFunctionMode):
    """Leaves a `meta` tensor as it is where a constructor would fill it (`torch.nn.init`, the
    in-place fills of `_FILLS`): a meta tensor has no values to fill, and some fills (`normal_`,
    as every `nn.Embedding` does) otherwise run through their reference implementation, whose first
    call imports torch._dynamo (1.5 s or more)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        skip = (getattr(func, "__module__", None) == "torch.nn.init"
                or getattr(func, "__name__", None) in _FILLS)
        target = args[0] if args else kwargs.get("tensor")  # nn.init passes it by keyword
        if skip and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def count_parameters_meta(build: Callable[[], torch.nn.Module]) -> int | None:
    """Parameters plus buffers (elements) of the module `build()` makes, built on the `meta`
    device so nothing is allocated (nor initialised: `_SkipInit`); None if the module's
    constructor cannot run on `meta` (it computes constants from data, as e3nn's layers do)."""
    try:
        with torch.device("meta"), _SkipInit():
            module = build()
    except InvdesignError:
        raise
    except Exception:  # noqa: BLE001 - not buildable on meta; the real build reports its errors
        return None
    return sum(t.numel() for t in module.parameters()) + sum(b.numel() for b in module.buffers())
