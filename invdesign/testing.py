"""Reusable helpers for tests: tiny CHILI folders and small hand-made structures.

>>> from invdesign.testing import make_tiny_chili3k
>>> folder = make_tiny_chili3k(tmp_path)  # 2 metals x 2 types, radii (3, 5) Å: 4 files
>>> clusters = make_tiny_clusters(tmp_path / "clusters")  # hcp Mg, bcc V spheres: 2 files
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from invdesign.core import elements
from invdesign.core.conditions import minmax
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.data.build.chili3k import build_chili3k
from invdesign.data.build.clusters import build_clusters
from invdesign.generators.base import build_generator
from invdesign.physics.calculator import simulate

TINY_METALS: tuple[str, ...] = ("Zn", "Ti")
TINY_TYPES: tuple[str, ...] = ("RockSalt", "Wurtzite")
TINY_RADII: tuple[float, ...] = (3.0, 5.0)
TINY_CLUSTER_METALS: tuple[str, ...] = ("Mg", "V")


def skip_unless_ci(reason: str) -> None:
    """Skip a test whose real data (`../shared`) or shipped file is absent, except in CI (the
    environment variable `CI` set), where the absence fails the run: CI always has them."""
    import pytest  # noqa: PLC0415 - lazy: pytest is a test extra, not a dependency

    if os.environ.get("CI"):
        pytest.fail(f"{reason}; in CI this is an error, not a skip")
    pytest.skip(reason)


def make_tiny_chili3k(
    folder: str | os.PathLike,
    metals: Sequence[str] = TINY_METALS,
    crystal_types: Sequence[str] = TINY_TYPES,
    radii: Sequence[float] = TINY_RADII,
    simulate: bool = True,
) -> Path:
    """Build a tiny CHILI-3K selection into `folder` (one file per metal x type, all six patterns
    unless `simulate` is False) in this process, and return the folder. A few seconds."""

    build_chili3k(
        folder,
        metals=metals,
        radii=radii,
        crystal_types=crystal_types,
        workers=1,
        simulate=simulate,
        progress=False,
    )
    return Path(folder)


def make_tiny_clusters(
    folder: str | os.PathLike,
    metals: Sequence[str] = TINY_CLUSTER_METALS,
    radii: Sequence[float] = TINY_RADII,
) -> Path:
    """Build a tiny mono-metallic cluster set (`invdesign data build clusters`) into `folder`:
    spheres only for the default metals (hcp Mg, bcc V: no polyhedra), with all six patterns, in
    this process. Returns the folder. A few seconds."""

    build_clusters(folder, metals=metals, radii=radii, workers=1, progress=False)
    return Path(folder)


def rock_salt_cell(a: float = 4.2, metal: int = 12, anion: int = 8) -> Structure:
    """Conventional rock-salt cell (8 atoms, a in Å): metal at 4a, anion at 4b."""
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    frac = np.vstack([fcc, fcc + 0.5]) % 1.0
    species = [metal] * 4 + [anion] * 4
    return Structure.from_fractional(species, frac, np.eye(3) * a)


def rock_salt_learning_set() -> tuple[list[Structure], np.ndarray]:
    """Primitive rock-salt cells of Mg and Cu oxides at eight lattice constants, with a target a
    property model can learn: a (Å) + 0.5 for Mg (the property models' learning checks)."""
    structures, targets = [], []
    for i in range(8):
        a, metal = 4.0 + 0.15 * i, (12, 29)[i % 2]
        cell = (np.ones((3, 3)) - np.eye(3)) * a / 2
        structures.append(Structure.from_fractional([metal, 8], [[0, 0, 0], [0.5, 0.5, 0.5]], cell))
        targets.append(a + 0.5 * (metal == 12))
    return structures, np.array(targets)


def caesium_chloride_cell(a: float = 3.2, metal: int = 12, anion: int = 8) -> Structure:
    """Caesium-chloride cell (2 atoms, a in Å): metal at 1a, anion at 1b."""
    return Structure.from_fractional([metal, anion], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * a)


class CellRows:
    """Unit cells as the padded rows of unit-cell task data (`target` fractional coordinates,
    `mask`, `species`, `cell_params`; atoms in a random order unless `shuffle` is False): what
    the prototype library reads, without building a dataset."""

    def __init__(self, cells: Sequence[Structure], shuffle: bool = True) -> None:

        m = max(c.n_atoms for c in cells)
        self.mask = torch.zeros(len(cells), m, dtype=torch.bool)
        self.target = torch.zeros(len(cells), m, 3)
        self.species = torch.zeros(len(cells), m, dtype=torch.long)
        self.cell_params = torch.tensor(np.stack([c.cell_parameters() for c in cells]))
        rng = np.random.default_rng(0)
        for i, c in enumerate(cells):
            order = rng.permutation(c.n_atoms) if shuffle else np.arange(c.n_atoms)
            self.mask[i, : c.n_atoms] = True
            self.target[i, : c.n_atoms] = torch.as_tensor(c.frac_positions[order])
            self.species[i, : c.n_atoms] = torch.as_tensor(c.species[order])

    def __len__(self) -> int:
        return len(self.mask)


def simple_cubic_cell(a: float = 3.0, z: int = 29) -> Structure:
    """One atom in a cubic cell of edge `a` Å: six periodic neighbours at distance a."""
    return Structure.from_fractional([z], [[0.0, 0.0, 0.0]], np.eye(3) * a)


def dimer(distance: float, z1: int = 8, z2: int = 8) -> Structure:
    """Two atoms on the x axis `distance` Å apart (a particle)."""
    return Structure([z1, z2], [[0.0, 0.0, 0.0], [distance, 0.0, 0.0]])


def chain(distances: Sequence[float], z: int = 8) -> Structure:
    """Atoms on the x axis with the given consecutive spacings in Å (a particle)."""
    x = np.concatenate([[0.0], np.cumsum(distances)])
    return Structure([z] * len(x), np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1))


#: Hyper-parameters of a diffusion generator small enough for unit tests (seconds on a CPU).
TINY_DIFFUSION: dict = {
    "cond_dim": 16, "species_dim": 8, "time_dim": 16, "scalar_dim": 8, "vector_dim": 4,
    "n_layers": 1, "radial_hidden": 16, "n_radial": 8, "num_train_timesteps": 50,
    "sampling_steps": 4, "k_neighbors": 4, "species_vocab": [8, 30],
}


def pattern_condition(structure: Structure, **extra: Any) -> tuple[np.ndarray, Condition]:
    """(the structure's simulated xPDF [2, L], the generator condition of it: the min-max
    normalised pattern, the composition and atom count, plus `extra` Condition fields)."""
    pattern = simulate(structure, pattern_spec("xPDF"))
    values = torch.as_tensor(minmax(pattern[1]), dtype=torch.float32)[None]
    comp = {int(z): float(c) for z, c in zip(*np.unique(structure.species, return_counts=True),
                                             strict=True)}
    return pattern, Condition({"xPDF": values}, [comp], n_atoms=torch.tensor([structure.n_atoms]),
                              **extra)


def zero_denoiser_diffusion(task: TaskSpec, vocab: list[int], **hp: Any):
    """A tiny diffusion generator whose denoiser weights are all zero: it predicts no noise, so its
    unguided samples are the noise the reverse process starts from (for guidance tests)."""
    torch.manual_seed(0)
    gen = build_generator("diffusion", task, **{**TINY_DIFFUSION, "species_vocab": vocab, **hp})
    for p in gen.denoiser.parameters():
        torch.nn.init.zeros_(p)
    return gen


def random_condition(task: TaskSpec, b: int) -> Condition:
    """`b` random patterns of the task's first pattern type on its grid: [b, L] in [0, 1)."""
    name = task.patterns[0]
    return Condition({name: torch.rand(b, pattern_spec(name).n_points)})


def random_batch(task: TaskSpec, max_atoms: int = 8) -> TaskBatch:
    """Three random items of 3, `max_atoms` and 5 atoms (O first, then Zn), padded to
    `max_atoms`: coordinates in [0, 1) for unit cells, [0, 6) Å for particles; a hexagonal
    parent cell. For loss and shape tests, not for learning."""
    n = torch.tensor([3, max_atoms, 5])
    mask = torch.arange(max_atoms) < n[:, None]
    scale = 1.0 if task.kind == "unit_cell" else 6.0
    target = torch.rand(3, max_atoms, 3) * scale * mask.unsqueeze(-1)
    species = torch.where(mask, 30, 0)
    species[:, 0] = 8
    cell = torch.tensor([[4.0, 4.0, 5.0, 90.0, 90.0, 120.0]]).expand(3, 6)
    return TaskBatch(random_condition(task, 3), target, mask, species, n, cell)


def assert_refused_in_one_line(
    load: Callable[[Path], object], folder: Path, file: Path, message: str, error: type = Exception
) -> None:
    """`load(folder)` raises `error` whose text is one line, starts with `file` and holds
    `message` (the shape of every refusal of a bad input: the CLI prints exactly that line)."""
    try:
        load(folder)
    except error as exc:
        text = str(exc)
    else:
        raise AssertionError(f"{load.__name__}({folder}) accepted the input")
    assert message in text, (message, text)
    assert "\n" not in text and text.startswith(str(file)), text


def set_entry(key: str, value: Any) -> Callable[[dict], dict]:
    """An edit for checkpoint-metadata tests: the dict it is given, with `key` set to `value`."""

    def edit(metadata: dict) -> dict:
        metadata[key] = value
        return metadata

    return edit


def read_pdffit2_reference(path: str | os.PathLike) -> tuple[Structure, dict[str, str], np.ndarray,
                                                              np.ndarray]:
    """A PDFfit2 reference file of tests/references/pdffit2 (written by
    `tools/make_pdffit2_references.py`): (cell, header fields, r [n] Å, G [n] Å^-2). The header
    states the lattice ('lattice: a b c alpha beta gamma') and every atom of the cell in fractional
    coordinates ('atom: Symbol x y z'), so the cell rebuilt here is the one PDFfit2 computed."""
    fields: dict[str, str] = {}
    species, frac = [], []
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#"):
            break
        body = line[2:]
        if body.startswith("atom: "):
            symbol, *xyz = body.split()[1:]
            species.append(elements.atomic_number(symbol))
            frac.append([float(v) for v in xyz])
        elif ": " in body:
            key, value = body.split(": ", 1)
            fields[key.split(" (")[0]] = value
    cellpar = np.array([float(v) for v in fields["lattice"].split()])
    cell = Structure.from_cell_parameters(np.array(species), np.array(frac), cellpar)
    r, g = np.loadtxt(path, unpack=True)
    return cell, fields, r, g
