"""Reference formation energies from the CHGNet universal potential (the project's "second
opinion").

Recipe: E_f = E_CHGNet / n - sum_i x_i mu_i (eV/atom), with mu_i the Materials Project elemental
reference energies kept in `elemental_references.json` (made by
`tools/make_elemental_references.py`). CHGNet energies already include the MP2020 corrections; none
are added here. Optionally a brief FIRE relaxation first (cell + positions for unit cells, positions
only for particles; fmax 0.1 eV/Å, <= 150 steps). Guards: structures with a pair closer than
`min_distance` (0.7 Å) or more than `max_atoms` atoms are skipped with a reason, and particles above
`relax_max_atoms` are evaluated without forces (no relaxation), as CHGNet's angle graph explodes
there. Particles are evaluated in a cubic vacuum box (10 Å padding, twice CHGNet's 5 Å cutoff).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.base import Evaluator, register_evaluator

TABLE = Path(__file__).with_name("elemental_references.json")
BOX_PADDING = 10.0  # Å of vacuum on each side of a particle
CRYSTAL_FEATURES = 64  # width of CHGNet 0.3's pooled crystal feature
CONV_LAYERS = 4  # CHGNet 0.3's atom message-passing layers (atom features after each: `all_layers`)


@lru_cache(maxsize=1)
def elemental_references() -> dict[str, float]:
    """Symbol -> MP elemental reference energy mu_i (eV/atom), 89 elements."""
    table = json.loads(TABLE.read_text())["elements"]
    return {symbol: float(row["energy_per_atom"]) for symbol, row in table.items()}


def reference_energy_per_atom(structure: Structure) -> float:
    """sum_i x_i mu_i (eV/atom) of a composition; InvdesignError for unknown elements."""
    table = elemental_references()
    missing = sorted({s for s in structure.symbols if s not in table})
    if missing:
        raise InvdesignError(f"no MP elemental reference energy for {', '.join(missing)}")
    return float(np.mean([table[s] for s in structure.symbols]))


@lru_cache(maxsize=1)
def _chgnet():
    try:
        from chgnet.model import CHGNet  # noqa: PLC0415 - lazy: CHGNet is an optional extra (`.[chgnet]`)
    except ImportError as exc:
        raise InvdesignError(
            "CHGNet is not installed; install the extra: pip install -e '.[chgnet]'"
        ) from exc

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return CHGNet.load(verbose=False)  # prints its banner even when not verbose


@lru_cache(maxsize=1)
def _optimiser():
    model = _chgnet()  # first: a clear error when CHGNet is not installed
    from chgnet.model import StructOptimizer  # noqa: PLC0415 - lazy: CHGNet is an optional extra (`.[chgnet]`)

    with contextlib.redirect_stdout(io.StringIO()):
        return StructOptimizer(model=model, optimizer_class="FIRE", on_isolated_atoms="ignore")


def _to_periodic_pymatgen(structure: Structure):
    """pymatgen Structure of a unit cell, or of a particle centred in a vacuum box."""
    if structure.is_periodic:
        return structure.to_pymatgen()
    extent = structure.positions.max(0) - structure.positions.min(0)
    cell = np.diag(extent + 2 * BOX_PADDING)
    pos = structure.positions - structure.positions.min(0) + BOX_PADDING
    return Structure(structure.species, pos, cell, "unit_cell").to_pymatgen()


@dataclass
class ChgnetReference:
    """CHGNet formation energies with guards. `relax=True` runs FIRE before the final energy."""

    relax: bool = False
    fmax: float = 0.1  # eV/Å
    steps: int = 150
    min_distance: float = 0.7  # Å
    max_atoms: int = 2000
    relax_max_atoms: int = 300  # larger particles: energy only, no forces
    batch_size: int = 16
    features: bool = False  # also return CHGNet's crystal feature [64] and atom features [n, 64]
    # with `features`: atom features after every message-passing layer, [n, CONV_LAYERS * 64] in
    # layer order, instead of only the one after the third (the one CHGNet's magmom head reads)
    all_layers: bool = False

    def _check(self, structure: Structure) -> str | None:
        if structure.n_atoms > self.max_atoms:
            return f"skipped: {structure.n_atoms} atoms > max_atoms {self.max_atoms}"
        d = structure.min_distance()
        if d < self.min_distance:
            return f"skipped: pair closer than {self.min_distance} Å ({d:.2f} Å)"
        try:
            reference_energy_per_atom(structure)
        except InvdesignError as exc:
            return f"skipped: {exc}"
        return None

    def _relaxed(self, pmg, periodic: bool):
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # and CHGNet's "will run on cpu" notice
            result = _optimiser().relax(
                pmg, fmax=self.fmax, steps=self.steps, relax_cell=periodic, verbose=False
            )
        return result["final_structure"], len(result["trajectory"].energies)

    def evaluate(self, structures: Sequence[Structure]) -> list[dict[str, Any]]:
        """Per structure: formation_energy_per_atom, energy_per_atom (eV/atom), relax_steps,
        status; with `features`, CHGNet's representation of the final structure: crystal_fea [64]
        (pooled) and atom_fea [n_atoms, 64] (input order; NaN when skipped; [n_atoms, 256] of the
        four layers with `all_layers`)."""
        records: list[dict[str, Any]] = []
        todo, pmgs = [], []
        for i, structure in enumerate(structures):
            problem = self._check(structure)
            records.append(
                {
                    "formation_energy_per_atom": math.nan,
                    "energy_per_atom": math.nan,
                    "relax_steps": 0,
                    "status": problem or "ok",
                }
            )
            if self.features:
                records[i]["crystal_fea"] = np.full(CRYSTAL_FEATURES, np.nan)
                width = CRYSTAL_FEATURES * (CONV_LAYERS if self.all_layers else 1)
                records[i]["atom_fea"] = np.full((structure.n_atoms, width), np.nan)
            if problem:
                continue
            pmg = _to_periodic_pymatgen(structure)
            if self.relax and (structure.is_periodic or structure.n_atoms <= self.relax_max_atoms):
                pmg, records[i]["relax_steps"] = self._relaxed(pmg, structure.is_periodic)
            todo.append(i)
            pmgs.append(pmg)
        if pmgs:
            preds, layers = self._predict(pmgs)
            for j, (i, pred) in enumerate(zip(todo, preds, strict=True)):
                energy = float(np.asarray(pred["e"]).reshape(-1)[0])
                records[i]["energy_per_atom"] = energy
                if self.features:
                    records[i]["crystal_fea"] = np.asarray(pred["crystal_fea"], dtype=np.float64)
                    atom_fea = layers[j] if self.all_layers else pred["atom_fea"]
                    records[i]["atom_fea"] = np.asarray(atom_fea, dtype=np.float64)
                records[i]["formation_energy_per_atom"] = energy - reference_energy_per_atom(
                    structures[i]
                )
        return records

    def _predict(self, pmgs: list) -> tuple[list[dict], list[np.ndarray] | None]:
        """CHGNet's predictions for `pmgs` and, with `all_layers`, each structure's atom features
        after every message-passing layer ([n_atoms, CONV_LAYERS * 64], caught by forward hooks:
        CHGNet returns only one layer's)."""
        model = _chgnet()
        caught: list = []  # torch tensors, one per batch and layer
        hooks = []
        if self.features and self.all_layers:
            hooks = [
                layer.register_forward_hook(lambda _m, _i, out: caught.append(out.detach()))
                for layer in model.atom_conv_layers
            ]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                preds = model.predict_structure(
                    pmgs,
                    task="e",
                    batch_size=self.batch_size,
                    return_crystal_feas=self.features,
                    return_atom_feas=self.features,
                )
        finally:
            for hook in hooks:
                hook.remove()
        preds = [preds] if isinstance(preds, dict) else preds
        if not hooks:
            return preds, None
        n_layers = len(model.atom_conv_layers)
        # batches run in order, each calling the layers in order: batch b's layer l is
        # caught[b * n_layers + l]
        per_layer = [
            np.concatenate([t.cpu().numpy() for t in caught[layer::n_layers]])
            for layer in range(n_layers)
        ]
        stacked = np.concatenate(per_layer, axis=1)  # [all atoms, n_layers * 64], input order
        bounds = np.cumsum([len(p) for p in pmgs])[:-1]
        return preds, np.split(stacked, bounds)


@register_evaluator("chgnet_formation_energy")
class ChgnetFormationEnergyEvaluator(Evaluator):
    """Evaluator wrapper: records with `chgnet_formation_energy_per_atom` (eV/atom), status."""

    def __init__(self, relax: bool = True, **options: Any) -> None:
        self.reference = ChgnetReference(relax=relax, **options)

    def evaluate(self, structures: Sequence[Structure]) -> list[dict[str, Any]]:
        return [
            {
                "chgnet_formation_energy_per_atom": r["formation_energy_per_atom"],
                "chgnet_status": r["status"],
            }
            for r in self.reference.evaluate(structures)
        ]
