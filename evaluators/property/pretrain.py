"""CDSSL pretraining (seeds/004): denoise perturbed crystals by predicting the clean edge distances.

Each atom position is perturbed with isotropic Gaussian noise (sigma = 0.5 Å by default); the graph
keeps the clean structure's edges and image offsets, and the network's per-bond head must output the
clean structure's per-graph standardised bond lengths (`graphs.standardised_distances`). The encoder
is then fine-tuned on the labelled property (`train.fit(..., pretrained=net)`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch_geometric.loader import DataLoader

from invdesign.evaluators.property.graphs import edge_vectors, standardised_distances


def cdssl_targets(batch) -> torch.Tensor:
    """[E] standardised clean edge distances of a batch (each graph standardised on its own)."""
    dist = edge_vectors(batch.pos, batch.edge_index, batch.edge_shift).norm(dim=-1)
    edge_graph = batch.batch[batch.edge_index[1]]
    return standardised_distances(dist, edge_graph, batch.num_graphs)


def perturbed(batch, sigma: float, generator: torch.Generator | None = None):
    """A copy of the batch with positions + N(0, sigma^2) Å noise (edges and offsets unchanged)."""
    noisy = batch.clone()
    noise = torch.randn(batch.pos.shape, generator=generator, dtype=batch.pos.dtype)
    noisy.pos = batch.pos + sigma * noise.to(batch.pos.device)
    return noisy


def cdssl_pretrain(
    net: torch.nn.Module,
    graphs: Sequence,
    epochs: int = 5,
    sigma: float = 0.5,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Train `net.predict_edges` on the CDSSL task; returns the mean loss (MSE) per epoch."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(list(graphs), batch_size=batch_size, shuffle=True, generator=generator)
    net.to(device).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, lr, total_steps=max(1, epochs * len(loader))
    )
    history = []
    for epoch in range(epochs):
        total, count = 0.0, 0
        for batch in loader:
            batch = batch.to(device)
            target = cdssl_targets(batch)  # [E]
            pred = net.predict_edges(perturbed(batch, sigma, generator))  # [E]
            loss = torch.nn.functional.mse_loss(pred, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total, count = total + loss.item() * batch.num_graphs, count + batch.num_graphs
        history.append(total / count)
        if log:
            log(f"cdssl epoch {epoch + 1}/{epochs} loss {history[-1]:.4f}")
    return history


def transfer_encoder(source: torch.nn.Module, target: torch.nn.Module) -> torch.nn.Module:
    """Copy every pretrained parameter except the property head into `target` (e.g. one built with
    descriptor hybridisation, whose head input is wider, or with per-atom input features, whose
    input map `atom_in` stays as initialised). Returns `target`."""
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = target.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(("head.", "atom_in.")) for k in missing):
        raise ValueError(f"encoder mismatch: missing {missing}, unexpected {unexpected}")
    return target
