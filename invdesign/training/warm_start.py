"""`trainer.init_from`: start a run from a checkpoint's weights.

The run's network must have the checkpoint's generator, task and widths. One difference is
bridged: the species vocabulary (atomic numbers the species or composition head predicts) is
read from the training data, so training on a broader set (`data.extra`) grows it. The rows of
the elements both vocabularies hold are copied from the checkpoint; rows of new elements keep
the run's fresh initialisation; elements the run's data lack are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from invdesign.core.errors import CheckpointError
from invdesign.generators.base import Generator, build_generator
from invdesign.generators.checkpoint import load_checkpoint


def start_from(generator: Generator, path: Path) -> list[int]:
    """Load the weights of checkpoint `path` into `generator`; returns the atomic numbers that
    are new in the run's vocabulary (empty when the vocabularies agree). Refused with a
    `CheckpointError` naming the file unless generator, task and weight shapes agree up to the
    vocabulary."""
    source = load_checkpoint(path, task=generator.task)
    if source.name != generator.name:
        raise CheckpointError(
            f"trainer.init_from is a {source.name} checkpoint; this run trains {generator.name}",
            path)
    ours, theirs = generator.state_dict(), source.state_dict()
    old, new = _vocabulary(source), _vocabulary(generator)
    grown: dict[str, torch.Tensor | None] = {}
    if old != new:
        grown = {k: vocabulary_rows(ours[k], theirs[k], old, new, axis)
                 for k, axis in vocabulary_axes(generator).items() if k in theirs}
    differ = sorted(k for k in ours.keys() | theirs.keys()
                    if k not in ours or k not in theirs or ours[k].shape != theirs[k].shape)
    refused = [k for k in differ if grown.get(k) is None]
    if refused:
        raise CheckpointError(
            f"trainer.init_from has other weights than this run's network ({len(refused)} "
            f"differ, e.g. {refused[0]}): give the hyper-parameters it was trained with", path)
    generator.load_state_dict({**theirs, **{k: v for k, v in grown.items() if v is not None}})
    return sorted(set(new) - set(old))


def vocabulary_axes(generator: Generator) -> dict[str, int]:
    """{state-dict key: axis} of the weights with one entry per vocabulary element, found by
    building the same network with one element more (so a width equal to the vocabulary's
    size by chance is not taken for it)."""
    vocab = _vocabulary(generator)
    if not vocab:
        return {}
    spare = next(z for z in range(1, 119) if z not in vocab)
    wider = build_generator(generator.name, generator.task,
                            **{**generator.hparams(), "species_vocab": [*vocab, spare]})
    wider_state = wider.state_dict()
    axes = {}
    for key, tensor in generator.state_dict().items():
        other = wider_state.get(key)
        if other is not None and other.shape != tensor.shape:
            axes[key] = next(d for d in range(tensor.dim()) if other.shape[d] != tensor.shape[d])
    return axes


def vocabulary_rows(fresh: torch.Tensor, trained: torch.Tensor, old: Sequence[int],
                    new: Sequence[int], axis: int) -> torch.Tensor | None:
    """`fresh` (the run's tensor: along `axis`, entries of no element, e.g. the VAE's background
    class, then one per atomic number of `new`) with the entries of no element and those of the
    elements `old` shares copied from `trained` (laid out likewise for `old`); None when the
    two tensors differ otherwise."""
    lead = fresh.shape[axis] - len(new) if fresh.dim() == trained.dim() else -1
    if (lead < 0 or trained.shape[axis] - len(old) != lead
            or any(fresh.shape[d] != trained.shape[d] for d in range(fresh.dim()) if d != axis)):
        return None
    shared = [z for z in new if z in set(old)]
    into = torch.tensor([*range(lead), *(lead + list(new).index(z) for z in shared)],
                        dtype=torch.long)
    take = torch.tensor([*range(lead), *(lead + list(old).index(z) for z in shared)],
                        dtype=torch.long)
    out = fresh.clone()
    out.index_copy_(axis, into, trained.index_select(axis, take).to(out.dtype))
    return out


def _vocabulary(generator: Generator) -> list[int]:
    return [int(z) for z in generator.hparams().get("species_vocab", [])]
