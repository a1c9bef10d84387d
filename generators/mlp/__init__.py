"""CHILI's MLP baseline (Appendix C) with atom-count, species and cell heads."""

from invdesign.generators.mlp.model import MLPGenerator

__all__ = ["MLPGenerator"]
