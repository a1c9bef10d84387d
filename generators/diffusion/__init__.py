"""Conditional E(3)-equivariant diffusion generator (e3nn network, diffusers schedulers).

Modules, lowest first: `network` (e3nn message passing), `graph` (k-NN / full graphs), `periodic`
(torus utilities), `encoders` (pattern, time embeddings), `denoisers` (particle and unit-cell
noise predictors), `heads` (atom count, composition, cell, prototype), `schedule` (diffusers
schedulers and the sampling loop), `hparams` (the typed, validated hyper-parameters), `space`
(the geometry: particles or the torus of fractional coordinates), `priors/` (where sampling
starts and the heads that train alongside: none, mlp, cell, prototype), `legacy` (checkpoints
written before the split into space and priors), `generator` (the registered
`DiffusionGenerator`, which composes them).
"""

from invdesign.generators.diffusion.generator import DiffusionGenerator

__all__ = ["DiffusionGenerator"]
