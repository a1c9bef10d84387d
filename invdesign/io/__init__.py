"""Reading measured patterns and writing fit results.

- `measured`: `read_pattern(path, kind, **overrides) -> MeasuredPattern`, `check_covers`.
- `headers`: header values of PDFgetX2/X3, xPDFsuite, PDFgetN, PDFgui, pyFAI and Fit2D files.
- `composition`: `parse_composition('Au144 S60 C480 H540')`, `metal_core`.
- `plots`: `plot_model_input` (original data against the model-ready version, png).
- `fgr`: `write_fgr` (a PDFgui-readable fit file).
"""

from invdesign.io.composition import format_composition, metal_core, parse_composition
from invdesign.io.fgr import write_fgr
from invdesign.io.measured import MeasuredPattern, check_covers, read_pattern
from invdesign.io.plots import plot_model_input

__all__ = ["MeasuredPattern", "check_covers", "format_composition", "metal_core",
           "parse_composition", "plot_model_input", "read_pattern", "write_fgr"]
