"""Conditional E(3)-equivariant diffusion generator (e3nn network, diffusers schedulers).

Modules: `network` (e3nn message passing), `graph` (k-NN / full graphs), `periodic` (torus
utilities), `encoders` (pattern, time embeddings), `denoisers` (particle and unit-cell noise
predictors), `heads` (atom count, composition, cell), `schedule` (diffusers schedulers and the
sampling loop), `generator` (the registered `DiffusionGenerator`).
"""

from invdesign.generators.diffusion.generator import DiffusionGenerator

__all__ = ["DiffusionGenerator"]
