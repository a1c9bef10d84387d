"""Structure-generation metrics: CHILI's sorted MAE and order-free ones.

- `chili_mae`: CHILI Table 5's metric. The true atoms are sorted by distance from the origin and
  compared slot by slot with the prediction; mean absolute error per coordinate (fractional units
  for unit cells, Å for particles), averaged over all compared coordinates of all structures.
- `matched_errors`: the order-free version. Predicted and true atoms are paired by an optimal
  assignment (scipy's Hungarian `linear_sum_assignment` on squared distances; for fractional
  coordinates the difference is wrapped to the minimum image, d - round(d), so 0.98 and 0.01 are
  0.03 apart). Gives the per-coordinate MAE, the RMSD and, when species are given, the fraction of
  matched pairs with the right species.
- `count_accuracy`, `species_accuracy`: exact-count rate, and composition agreement.

Inputs are numpy arrays; coordinates [n, 3].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


def sort_by_norm(coords: np.ndarray) -> np.ndarray:
    """[n, 3] coordinates sorted ascending by |r| (stable)."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    return coords[np.argsort(np.linalg.norm(coords, axis=1), kind="stable")]


def _difference(a: np.ndarray, b: np.ndarray, periodic: bool) -> np.ndarray:
    d = a - b
    return d - np.round(d) if periodic else d


def chili_mae(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], sort_pred: bool = False
) -> float:
    """CHILI's MAE over structures: the targets sorted by |r|, prediction atom i compared with the
    i-th nearest true atom, coordinate-wise, over the first n_true atoms.

    As in CHILI, the prediction is taken in the order the generator returns it (the MLP: its slots);
    re-sorting it by its own |r| would scramble atoms at (nearly) equal distance, which are many in
    symmetric cells. Generators without a slot order should return atoms sorted by |r| or pass
    `sort_pred=True`.

    Args:
        preds: per structure [n_pred, 3]; a prediction with fewer atoms than the target is compared
            on its atoms only (generators sampled at the true count, as CHILI evaluates, never have
            fewer).
        targets: per structure [n_true, 3], any order.
        sort_pred: sort each prediction by |r| first.

    Returns:
        mean |pred - true| over all compared coordinates (no periodic wrap, as CHILI).
    """
    total, count = 0.0, 0
    for pred, true in zip(preds, targets, strict=True):
        p = sort_by_norm(pred) if sort_pred else np.asarray(pred, dtype=np.float64).reshape(-1, 3)
        t = sort_by_norm(true)
        k = min(len(p), len(t))
        total += float(np.abs(p[:k] - t[:k]).sum())
        count += 3 * k
    return total / count if count else float("nan")


@dataclass
class Matched:
    """Result of `match`: index pairs and the per-pair coordinate differences [k, 3]."""

    pred_index: np.ndarray
    true_index: np.ndarray
    diff: np.ndarray


def match(pred: np.ndarray, true: np.ndarray, periodic: bool = False) -> Matched:
    """Optimal one-to-one pairing of predicted and true atoms (min total squared distance).

    With different counts, min(n_pred, n_true) pairs are formed and the rest stay unmatched.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 3)
    diff = _difference(pred[:, None, :], true[None, :, :], periodic)  # [n_pred, n_true, 3]
    cost = np.einsum("ijk,ijk->ij", diff, diff)
    rows, cols = linear_sum_assignment(cost)
    return Matched(rows, cols, diff[rows, cols])


def matched_errors(
    pred: np.ndarray,
    true: np.ndarray,
    periodic: bool = False,
    pred_species: np.ndarray | None = None,
    true_species: np.ndarray | None = None,
) -> dict[str, float]:
    """Assignment-matched errors of one structure.

    Returns:
        'mae' (mean |d| per coordinate over matched pairs), 'rmsd' (sqrt of the mean squared pair
        distance), 'n_matched', and 'species_accuracy' when both species arrays are given.
    """
    m = match(pred, true, periodic)
    out = {
        "mae": float(np.abs(m.diff).mean()) if len(m.diff) else float("nan"),
        "rmsd": float(np.sqrt((m.diff**2).sum(axis=1).mean())) if len(m.diff) else float("nan"),
        "n_matched": int(len(m.diff)),
    }
    if pred_species is not None and true_species is not None:
        ps = np.asarray(pred_species)[m.pred_index]
        ts = np.asarray(true_species)[m.true_index]
        out["species_accuracy"] = float((ps == ts).mean()) if len(ps) else float("nan")
    return out


def matched_summary(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    periodic: bool = False,
    pred_species: Sequence[np.ndarray] | None = None,
    true_species: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """`matched_errors` over many structures: MAE averaged over all matched coordinates (like
    `chili_mae`), RMSD and species accuracy averaged over structures."""
    abs_sum, n_coords, rmsds, species = 0.0, 0, [], []
    for i, (pred, true) in enumerate(zip(preds, targets, strict=True)):
        ps = None if pred_species is None else pred_species[i]
        ts = None if true_species is None else true_species[i]
        e = matched_errors(pred, true, periodic, ps, ts)
        if e["n_matched"] == 0:
            continue
        abs_sum += e["mae"] * 3 * e["n_matched"]
        n_coords += 3 * e["n_matched"]
        rmsds.append(e["rmsd"])
        if "species_accuracy" in e:
            species.append(e["species_accuracy"])
    out = {
        "matched_mae": abs_sum / n_coords if n_coords else float("nan"),
        "matched_rmsd": float(np.mean(rmsds)) if rmsds else float("nan"),
    }
    if species:
        out["species_accuracy"] = float(np.mean(species))
    return out


def count_accuracy(pred_counts: Sequence[int], true_counts: Sequence[int]) -> float:
    """Fraction of structures with exactly the right number of atoms."""
    p, t = np.asarray(pred_counts), np.asarray(true_counts)
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predicted counts for {t.size} structures")
    return float((p == t).mean()) if t.size else float("nan")


def species_accuracy(
    pred_species: Sequence[np.ndarray], true_species: Sequence[np.ndarray]
) -> float:
    """Order-free species agreement, averaged over structures: the number of atoms whose species can
    be paired with a true atom of the same species (multiset intersection) over max(n_pred,
    n_true)."""
    scores = []
    for p, t in zip(pred_species, true_species, strict=True):
        p_vals, p_counts = np.unique(np.asarray(p), return_counts=True)
        t_counts = dict(zip(*np.unique(np.asarray(t), return_counts=True), strict=True))
        common = sum(min(c, t_counts.get(z, 0)) for z, c in zip(p_vals, p_counts, strict=True))
        denom = max(len(p), len(t))
        scores.append(common / denom if denom else 1.0)
    return float(np.mean(scores)) if scores else float("nan")
