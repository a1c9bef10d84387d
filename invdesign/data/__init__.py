"""CHILI data: pattern grids, the official HDF5 layout, datasets and splits."""
