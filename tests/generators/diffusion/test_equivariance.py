"""Symmetry of the diffusion denoisers, checked numerically (as e3nn's `assert_equivariant` does).

Particles: rotating/reflecting and translating the input coordinates rotates the predicted noise;
permuting atoms permutes it; padding does not matter. Unit cells: rotating the cell, shifting any
atom by a lattice vector (an integer in fractional coordinates) leave the fractional noise
unchanged; permuting atoms permutes it.
"""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from invdesign.generators.diffusion.denoisers import ParticleDenoiser, PeriodicDenoiser
from invdesign.generators.diffusion.graph import knn_graph
from invdesign.generators.diffusion.network import EquivariantDenoiser
from invdesign.generators.diffusion.periodic import cell_from_parameters

NET = {"scalar_dim": 8, "vector_dim": 4, "n_layers": 2, "n_radial": 8, "radial_hidden": 16,
       "r_max": 6.0}
DTYPES = [(torch.float32, 1e-4), (torch.float64, 1e-12)]
FACTORIES = {
    "network": lambda: EquivariantDenoiser(node_in=4, **NET),
    "particle": lambda: ParticleDenoiser(5, 118, 4, 8, 9, k_neighbors=4, coord_scale=2.0,
                                         frame_vectors=False, net=NET),
    "framed": lambda: ParticleDenoiser(5, 118, 4, 8, 9, 4, 2.0, True, NET),
    "cell": lambda: PeriodicDenoiser(5, 118, 4, 8, 5, n_freq=2, net=NET),
}
_BUILT: dict[tuple[str, torch.dtype], torch.nn.Module] = {}


def build(kind: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """One model per (kind, dtype) for the whole module: e3nn modules take seconds to build. Built
    under the default dtype (e3nn bakes its Clebsch-Gordan constants in at construction), so the
    float64 models are float64 throughout."""
    if (kind, dtype) not in _BUILT:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            torch.manual_seed(len(_BUILT))
            _BUILT[kind, dtype] = FACTORIES[kind]()
        finally:
            torch.set_default_dtype(previous)
    return _BUILT[kind, dtype]


def _improper(rotation: torch.Tensor) -> torch.Tensor:
    """A rotation composed with the inversion (E(3), not only SO(3))."""
    return -rotation


def _particle_inputs(dtype: torch.dtype):
    b, m = 2, 9
    x = torch.randn(b, m, 3, dtype=dtype)
    mask = torch.ones(b, m, dtype=torch.bool)
    mask[1, 6:] = False
    species = torch.randint(1, 40, (b, m)) * mask
    t = torch.tensor([3, 40])
    cond = torch.randn(b, 5, dtype=dtype)
    return x, t, species, mask, cond


@pytest.mark.parametrize(("dtype", "tol"), DTYPES)
def test_network_is_e3_equivariant(dtype: torch.dtype, tol: float) -> None:
    net = build("network", dtype)
    pos = torch.randn(1, 12, 3, dtype=dtype) * 2
    mask = torch.ones(1, 12, dtype=torch.bool)
    edges = knn_graph(pos, mask, 5)
    attr = torch.randn(12, 4, dtype=dtype)

    def f(p: torch.Tensor) -> torch.Tensor:
        return net(attr, edges, p[edges[0]] - p[edges[1]])

    p = pos[0]
    for rot in (o3.rand_matrix(dtype=dtype), _improper(o3.rand_matrix(dtype=dtype))):
        shift = torch.randn(3, dtype=dtype) * 5
        expected = f(p) @ rot.T
        torch.testing.assert_close(f(p @ rot.T + shift), expected, atol=tol, rtol=0)
    assert f(p).abs().max() > 1e-3  # a non-trivial output, so the check means something


@pytest.mark.parametrize(("dtype", "tol"), DTYPES)
def test_particle_denoiser_rotation_translation(dtype: torch.dtype, tol: float) -> None:
    model = build("particle", dtype)
    x, t, species, mask, cond = _particle_inputs(dtype)
    out = model(x, t, species, mask, cond)
    rot = o3.rand_matrix(dtype=dtype)
    moved = model(x @ rot.T + torch.randn(1, 1, 3, dtype=dtype), t, species, mask, cond)
    torch.testing.assert_close(moved, out @ rot.T, atol=tol, rtol=0)
    reflected = model(-x, t, species, mask, cond)
    torch.testing.assert_close(reflected, -out, atol=tol, rtol=0)
    assert out.abs().max() > 1e-3


def test_particle_denoiser_noise_is_com_free_and_ignores_padding() -> None:
    model = build("particle")
    x, t, species, mask, cond = _particle_inputs(torch.float32)
    out = model(x, t, species, mask, cond)
    assert torch.all(out[~mask] == 0)
    torch.testing.assert_close((out * mask.unsqueeze(-1)).sum(1), torch.zeros(2, 3), atol=1e-5,
                               rtol=0)
    junk = x.clone()
    junk[~mask] = 100.0  # padded coordinates and species must not leak in
    species_junk = species.clone()
    species_junk[~mask] = 50
    torch.testing.assert_close(model(junk, t, species_junk, mask, cond), out)


def test_particle_denoiser_permutation() -> None:
    model = build("particle")
    x, t, species, mask, cond = _particle_inputs(torch.float32)
    out = model(x, t, species, mask, cond)
    perm = torch.tensor([4, 0, 8, 2, 7, 1, 3, 6, 5])  # structure 0 has 9 real atoms
    out_p = model(x[:, perm], t, species[:, perm], mask[:, perm], cond)
    torch.testing.assert_close(out_p[0], out[0, perm], atol=1e-5, rtol=0)


def test_frame_vectors_make_orientation_an_input() -> None:
    model = build("framed", torch.float64)
    x, t, species, mask, cond = _particle_inputs(torch.float64)
    rot = o3.rand_matrix(dtype=torch.float64)
    out = model(x, t, species, mask, cond)
    # equivariant when the frame turns with the atoms ...
    both = model(x @ rot.T, t, species, mask, cond, frame=torch.eye(3, dtype=torch.float64) @ rot.T)
    torch.testing.assert_close(both, out @ rot.T, atol=1e-12, rtol=0)
    # ... but a fixed lab frame lets the model prefer an orientation
    assert (model(x @ rot.T, t, species, mask, cond) - out @ rot.T).abs().max() > 1e-6


def _cell_inputs(dtype: torch.dtype):
    b, m = 2, 5
    frac = torch.rand(b, m, 3, dtype=dtype)
    mask = torch.ones(b, m, dtype=torch.bool)
    mask[1, 3:] = False
    species = torch.randint(1, 40, (b, m)) * mask
    cell = cell_from_parameters(torch.tensor([[4.1, 5.2, 6.3, 80.0, 95.0, 110.0],
                                              [3.0, 3.0, 7.0, 90.0, 90.0, 120.0]], dtype=dtype))
    return frac, torch.tensor([5, 70]), species, mask, torch.randn(b, 5, dtype=dtype), cell


@pytest.mark.parametrize(("dtype", "tol"), DTYPES)
def test_periodic_denoiser_rotation_and_lattice_shift_invariance(dtype: torch.dtype,
                                                                 tol: float) -> None:
    model = build("cell", dtype)
    frac, t, species, mask, cond, cell = _cell_inputs(dtype)
    out = model(frac, t, species, mask, cond, cell)
    rot = o3.rand_matrix(2, dtype=dtype)
    turned = model(frac, t, species, mask, cond, cell @ rot.transpose(1, 2))
    torch.testing.assert_close(turned, out, atol=tol, rtol=0)
    shift = torch.randint(-3, 4, frac.shape).to(dtype)  # any atom by any lattice vector
    torch.testing.assert_close(model(frac + shift, t, species, mask, cond, cell), out, atol=tol,
                               rtol=0)
    assert out.abs().max() > 1e-3
    assert torch.all(out[~mask] == 0)


def test_periodic_denoiser_permutation() -> None:
    model = build("cell")
    frac, t, species, mask, cond, cell = _cell_inputs(torch.float32)
    out = model(frac, t, species, mask, cond, cell)
    perm = torch.tensor([3, 1, 4, 0, 2])
    out_p = model(frac[:, perm], t, species[:, perm], mask[:, perm], cond, cell)
    torch.testing.assert_close(out_p[0], out[0, perm], atol=1e-5, rtol=0)
