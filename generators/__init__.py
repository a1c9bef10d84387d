"""Conditional generators (installed as `invdesign.generators`).

Each generator lives in its own sub-package (`mlp/`, `vae/`, `diffusion/`) and registers its class
with `@register_generator`; `base.py` holds the contract every generator implements.
"""
