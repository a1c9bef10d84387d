"""invdesign: generative inverse design of inorganic nanomaterials from scattering data."""
__version__ = "0.1.0"
