"""VAE-UNet generator (Court et al. 2020): voxel grids, Algorithm S1 segmentation, the networks.

Importing the package registers the generator as 'vae'.
"""

from invdesign.generators.vae.generator import VAEGenerator

__all__ = ["VAEGenerator"]
