"""Structure-generation metrics: CHILI's sorted MAE and order-free ones.

- `chili_mae`: CHILI Table 5's metric. The true atoms are sorted by distance from the origin and
  compared slot by slot with the prediction; mean absolute error per coordinate (fractional units
  for unit cells, Å for particles), averaged over all compared coordinates of all structures.
- `matched_errors`: the order-free version. Predicted and true atoms are paired by an optimal
  assignment (scipy's Hungarian `linear_sum_assignment` on squared distances; for fractional
  coordinates the difference is wrapped to the minimum image, d - round(d), so 0.98 and 0.01 are
  0.03 apart). Gives the per-coordinate MAE, the RMSD and, when species are given, the fraction of
  matched pairs with the right species.
- `aligned_errors`: `matched_errors` after the best rigid alignment the structure's symmetry of
  description allows. A particle's absolute coordinates carry an arbitrary orientation (its pattern
  is the same in every one), and a unit cell's fractional coordinates an arbitrary origin, so a
  generator that is invariant to rotations or lattice translations (the equivariant diffusion model)
  places a correct structure in a random frame; `matched_errors` then scores even the true
  structure, randomly rotated, far from zero (`benchmarks/results/chili3k_table5_NOTES.md`). The
  aligned version takes the minimum over rotations and reflections about the centroid (particles:
  1,024 orientations and their mirror images scored by nearest-atom distance, the best refined by
  iterative closest point with Kabsch steps through scipy's `Rotation.align_vectors`, finished with
  Hungarian pairing) or over origin shifts (unit cells: every shift that lays one predicted atom on
  one true atom, the best refined). It never exceeds the unaligned value.
- `count_accuracy`, `species_accuracy`: exact-count rate, and composition agreement.

Inputs are numpy arrays; coordinates [n, 3].
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation


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


def _mean_abs(m: Matched) -> float:
    return float(np.abs(m.diff).mean()) if len(m.diff) else float("inf")


def _orientations(n_random: int, seed: int) -> np.ndarray:
    """The 24 rotations of the cube and `n_random` random rotations, each also composed with the
    inversion, as [k, 3, 3] matrices."""
    proper = np.concatenate([
        Rotation.create_group("O").as_matrix(),
        Rotation.random(n_random, random_state=seed).as_matrix().reshape(-1, 3, 3),
    ])
    return np.concatenate([proper, -proper])


def _kabsch(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """The proper rotation R minimising |moving @ R.T - fixed| (callers reach the improper ones,
    which a particle's pattern cannot tell apart either, as -R fitted to -moving)."""
    with warnings.catch_warnings():  # a degenerate pairing (few atoms, all on a line) is expected
        warnings.simplefilter("ignore", UserWarning)
        rot, _ = Rotation.align_vectors(fixed, moving)
    return rot.as_matrix()


def _refine(p: np.ndarray, t: np.ndarray, rot: np.ndarray, pair, steps: int) -> np.ndarray:
    """Alternate pairing and Kabsch from `rot`, keeping its handedness: `pair(moved)` gives the
    (predicted, true) rows paired for the moved prediction. Stops early once `rot` is fixed."""
    sign = np.sign(np.linalg.det(rot))
    for _ in range(steps):
        rows, cols = pair(p @ rot.T)
        new = sign * _kabsch(sign * p[rows], t[cols])
        if np.allclose(new, rot, atol=1e-10):
            return new
        rot = new
    return rot


def _align_particle(pred: np.ndarray, true: np.ndarray, n_random: int, seed: int) -> Matched:
    p = pred - pred.mean(axis=0)
    t = true - true.mean(axis=0)
    tree = cKDTree(t)

    def nearest(moved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(len(moved)), tree.query(moved)[1]

    def hungarian(moved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = match(moved, t)
        return m.pred_index, m.true_index

    # Score every orientation at once by the mean distance to the nearest true atom; the basin of
    # the right one is narrow (a few degrees turn the surface atoms by half a bond), hence many.
    rots = _orientations(n_random, seed)
    moved = np.einsum("nj,rij->rni", p, rots).reshape(-1, 3)
    score = tree.query(moved)[0].reshape(len(rots), -1).mean(axis=1)
    refined = [_refine(p, t, rots[i], nearest, 10) for i in np.argsort(score)[:10]]  # ICP
    refined.sort(key=lambda rot: float(tree.query(p @ rot.T)[0].mean()))
    best = match(pred, true)
    for rot in refined[:3]:  # finish the best few with one-to-one pairing
        m = match(p @ _refine(p, t, rot, hungarian, 8).T, t)
        if _mean_abs(m) < _mean_abs(best):
            best = m
    return best


def _align_cell(pred: np.ndarray, true: np.ndarray) -> Matched:
    shifts = (true[None, :, :] - pred[:, None, :]).reshape(-1, 3)
    shifts = np.unique(np.round(shifts - np.floor(shifts), 6), axis=0)
    scored = sorted(
        (_mean_abs(match(pred + shift, true, periodic=True)), i) for i, shift in enumerate(shifts)
    )
    best = match(pred, true, periodic=True)
    for _, i in scored[:5]:  # refine the best few: move the origin by the mean wrapped residual
        shift = shifts[i]
        m = match(pred + shift, true, periodic=True)
        for _ in range(3):
            shift = shift - m.diff.mean(axis=0)
            m = match(pred + shift, true, periodic=True)
        if _mean_abs(m) < _mean_abs(best):
            best = m
    return best


def aligned_errors(
    pred: np.ndarray, true: np.ndarray, periodic: bool = False, n_random: int = 1000, seed: int = 0
) -> dict[str, float]:
    """`matched_errors` (without species) after the best rigid alignment: rotation or reflection
    about the centroids for particles, origin shift for fractional coordinates (see the module
    docstring). `n_random` random starting orientations are tried besides the cube symmetries."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 3)
    if not len(pred) or not len(true):
        return {"mae": float("nan"), "rmsd": float("nan"), "n_matched": 0}
    m = _align_cell(pred, true) if periodic else _align_particle(pred, true, n_random, seed)
    return {
        "mae": float(np.abs(m.diff).mean()),
        "rmsd": float(np.sqrt((m.diff**2).sum(axis=1).mean())),
        "n_matched": int(len(m.diff)),
    }


def aligned_summary(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], periodic: bool = False
) -> dict[str, float]:
    """`aligned_errors` over many structures, averaged like `matched_summary`."""
    errors = [aligned_errors(p, t, periodic) for p, t in zip(preds, targets, strict=True)]
    out = _pool(errors)
    return {"aligned_mae": out["mae"], "aligned_rmsd": out["rmsd"]}


def _pool(errors: list[dict[str, float]]) -> dict[str, float]:
    """MAE over all matched coordinates, RMSD averaged over structures."""
    used = [e for e in errors if e["n_matched"]]
    n_coords = sum(3 * e["n_matched"] for e in used)
    total = sum(e["mae"] * 3 * e["n_matched"] for e in used)
    return {
        "mae": total / n_coords if n_coords else float("nan"),
        "rmsd": float(np.mean([e["rmsd"] for e in used])) if used else float("nan"),
    }


def matched_summary(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    periodic: bool = False,
    pred_species: Sequence[np.ndarray] | None = None,
    true_species: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """`matched_errors` over many structures: MAE averaged over all matched coordinates (like
    `chili_mae`), RMSD and species accuracy averaged over structures."""
    errors = [
        matched_errors(
            pred, true, periodic,
            None if pred_species is None else pred_species[i],
            None if true_species is None else true_species[i],
        )
        for i, (pred, true) in enumerate(zip(preds, targets, strict=True))
    ]
    pooled = _pool(errors)
    out = {"matched_mae": pooled["mae"], "matched_rmsd": pooled["rmsd"]}
    species = [e["species_accuracy"] for e in errors if e["n_matched"] and "species_accuracy" in e]
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
