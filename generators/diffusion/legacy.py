"""Reading checkpoints written before the generator was split into space and priors.

Until then every head sat on the generator itself (`count_head.*`, `composition_head.*`,
`cell_head.*`, `prototype_head.*`) and the MLP of priors 'mlp' and 'cell' was the generator's
`prior`; every head was built whether the prior used it or not. Now a prior owns the heads it uses
(`prior.count_head.*`, ...) and its MLP (`prior.mlp.*`). Their hyper-parameters need no change
(the names are the same; keys they lack take the defaults).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

#: Heads that lived on the generator itself; `count_head` was always built, so its presence marks
#: the old layout.
OLD_HEADS = ("count_head", "composition_head", "cell_head", "prototype_head")


def is_old_layout(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether `state` is a state dict of the generator before the split."""
    return any(k.startswith("count_head.") for k in state)


def upgrade_state_dict(
    state: Mapping[str, torch.Tensor], prior: nn.Module
) -> dict[str, torch.Tensor]:
    """`state` with the old layout's keys renamed to the modules `prior` owns.

    The weights of a head the prior does not build are dropped: the old generator built every
    head for every prior, and the unused ones never took part in sampling (the composition head
    of prior 'prototype', for instance), so leaving them out changes no sample. New-layout state
    dicts are returned as they are.
    """
    if not is_old_layout(state):
        return dict(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in OLD_HEADS:
            if isinstance(getattr(prior, head, None), nn.Module):
                out[f"prior.{head}.{rest}"] = value
        elif head == "prior":
            out[f"prior.mlp.{rest}"] = value
        else:
            out[key] = value
    return out
