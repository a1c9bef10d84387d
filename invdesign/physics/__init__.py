"""The only place that imports `debyecalculator`.

- `calculator`: patterns (I(q), G(r)) of structures as torch tensors on the requested device,
  differentiable.
- `cutter`: nanoparticles cut from unit cells with DebyeCalculator's `generate_nanoparticles`.
"""
