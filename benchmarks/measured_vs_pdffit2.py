"""`invdesign sample` against the field's reference engine, PDFfit2 (issue 23 items 6 and 7).

    PYTHONPATH=. python benchmarks/measured_vs_pdffit2.py [--cases 100] [--workers 2] [--seed 0]
        [--out benchmarks/results/measured_vs_pdffit2.json] [--cache DIR]

Cases (`pdffit2_cases.py`): a simulated set made by PDFfit2 (attenuated crystals of the
structure-type library's examples, strained, with noise, qmin cut, qdamp in the header) and the
measured files with known structures (Ni X-ray and neutron: fcc; CdSe bulk: wurtzite; Pt JQ_S1:
fcc). For each, PDFfit2 refines the KNOWN structure as an expert would (`pdffit2_engine.fit`:
scale, lattice by crystal system, delta2, Uiso per element, spdiameter for particles, qdamp when the
header lacks it), starting from the unstrained example; `invdesign.pipeline.sample(path,
composition=..., n=16, seed=0, refine=True)` gets only the file and the composition. Per case: our
refined Rw (rank 1), PDFfit2's Rw on the same r range, their ratio, whether the true structure type
is among our top 1 / top 3, and the wall times. Item 7: `sample` on the real files of
`../shared/data/measured/chili_experimental/` (what it finds; no truth to compare with).

Resumable: files, PDFfit2 fits and our results are cached per case under `--cache` (default: the
system temp folder), so a partial run still gives a table; `--fresh-ours` recomputes our side
(after the pipeline changed). Work runs in `--workers` processes (1 torch thread each); a `sample`
call longer than `--timeout` s is recorded as a failure.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pdffit2_cases as cases_mod
import pdffit2_engine as engine

from invdesign.io.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "measured_vs_pdffit2.json"
CACHE = Path(tempfile.gettempdir()) / "invdesign_measured_vs_pdffit2"
SIM_DIAMETERS = (40.0,)  # Å, PDFfit2's spdiameter start on the simulated set
SAMPLE_KW = {"n": 16, "seed": 0, "refine": True}


class Timeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise Timeout


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _save(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1, default=float))
    return record


def default_fit_range(r: np.ndarray) -> tuple[float, float]:
    """`sample`'s default fit range: 1.5 Å to the data's rmax, at most 30 Å."""
    return 1.5, min(float(r[-1]), 30.0)


def pdffit2_task(kind: str, name: str, folder: str) -> dict[str, Any]:
    """Simulate (sim cases, if not on disk) and fit the known structure; cached."""
    from invdesign.io.measured import read_pattern  # lazy: workers import it once forked

    base = Path(folder)
    cache = base / "pdffit2" / f"{name}.json"
    if (hit := _load(cache)) is not None:
        if kind == "sim" and "floor_rw" not in hit:
            hit["floor_rw"] = _floor(base, name, hit["fit_range"])
            _save(cache, hit)
        return hit
    if kind == "sim":
        types = {t.name: t for t in cases_mod.library_types()}
        case = cases_mod.SimCase(**next(c for c in json.loads((base / "manifest.json")
                                                              .read_text()) if c["name"] == name))
        path = base / "files" / f"{name}.gr"
        if not path.is_file():
            cases_mod.write_case(case, cases_mod.true_cell(case, types), path.parent)
        start = types[case.structure_type].cell  # the expert starts from the example's lattice
        particle, diameters = True, SIM_DIAMETERS
    else:
        mcase, start = next((m, c) for m, c in cases_mod.measured_cases() if m.name == name)
        path, particle, diameters = mcase.file, mcase.particle, mcase.diameters
    pattern = read_pattern(path)
    fit_range = default_fit_range(pattern.x)
    qdamp = pattern.qdamp if pattern.sources.get("qdamp") == "header" else None
    res = engine.fit(start, pattern.x, pattern.y,
                     radiation="N" if pattern.radiation == "neutron" else "X", qmax=pattern.qmax,
                     qdamp=qdamp, fit_range=fit_range, particle=particle, diameters=diameters)
    record = {"name": name, "file": str(path), "rw": res.rw, "params": res.params,
              "seconds": res.seconds, "starts": res.starts, "fit_range": fit_range,
              "qdamp_refined": qdamp is None, "system": start.system}
    if kind == "sim":
        record["floor_rw"] = _floor(base, name, fit_range)
    return _save(cache, record)


def _floor(base: Path, name: str, fit_range: tuple[float, float]) -> float:
    """The noise floor of a simulated case (`pdffit2_cases.floor_rw`)."""
    from invdesign.io.measured import read_pattern  # lazy: workers import it once forked

    types = {t.name: t for t in cases_mod.library_types()}
    case = cases_mod.SimCase(**next(c for c in json.loads((base / "manifest.json").read_text())
                                    if c["name"] == name))
    pattern = read_pattern(base / "files" / f"{name}.gr")
    return cases_mod.floor_rw(case, cases_mod.true_cell(case, types), pattern.x, pattern.y,
                              tuple(fit_range))


def _types(cand) -> dict[str, str]:
    info = {**cand.structure.info, **cand.final.info}
    return {k: str(info.get(k, "")) for k in ("structure_type", "source", "shape")}


def ours_task(name: str, path: str, composition: str | None, folder: str,
              timeout: float) -> dict[str, Any]:
    """`sample` on one file; cached."""
    from invdesign.pipeline import sample  # lazy: torch only in the workers

    cache = Path(folder) / "ours" / f"{name}.json"
    if (hit := _load(cache)) is not None:
        return hit
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(timeout))
    t0, c0, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    try:
        result = sample(path, composition=composition, **SAMPLE_KW)
    except Timeout:
        return _save(cache, {"name": name, "error": f"timeout after {timeout:g} s",
                             "seconds": time.perf_counter() - t0, "git": _git()})
    except Exception as exc:  # the benchmark records any failure of the pipeline
        return _save(cache, {"name": name, "error": f"{type(exc).__name__}: {exc}"[:300],
                             "seconds": time.perf_counter() - t0, "git": _git(),
                             "traceback": traceback.format_exc()[-2000:]})
    finally:
        signal.alarm(0)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    top = [{"rank": c.rank, "rw": float(c.rw), "final_rw": float(c.final_rw),
            "kind": c.final.kind, "formula": c.final.formula, "n_atoms": c.final.n_atoms,
            "valid": bool(c.geometry()["valid"]), **_types(c)} for c in result.candidates[:5]]
    return _save(cache, {"name": name, "rw": float(result.best.final_rw), "seconds": seconds,
                         "cpu_seconds": cpu, "load_average": load, "git": _git(), "top": top,
                         "fit_range": list(result.fit_range), "model": result.model,
                         "n_candidates": len(result.candidates), "how": result.how})


def _run(task: tuple) -> tuple[str, str, dict[str, Any]]:
    fn, args = task
    try:
        return fn, args[0] if fn == "ours" else args[1], (
            ours_task(*args) if fn == "ours" else pdffit2_task(*args))
    except Exception as exc:  # keep the pool alive; the table shows the failure
        return fn, args[0] if fn == "ours" else args[1], {"error": f"{type(exc).__name__}: {exc}"}


def _cache_path(task: tuple, folder: Path) -> tuple[str, Path]:
    fn, args = task
    name = args[0] if fn == "ours" else args[1]
    return name, folder / ("ours" if fn == "ours" else "pdffit2") / f"{name}.json"


def run_all(tasks: list[tuple], workers: int, record, folder: Path) -> None:
    """Run tasks in `workers` processes (spawned, 10 tasks each), at most `workers` at a time.

    A worker that dies (killed for memory, crashed in C code) breaks the pool: the tasks it may
    have held are tried once more, then recorded (and cached) as failed."""
    queue, tries = deque(tasks), Counter()
    ctx = multiprocessing.get_context("spawn")
    while queue:
        inflight: dict = {}
        try:
            with ProcessPoolExecutor(max(1, workers), mp_context=ctx, initializer=_init_worker,
                                     max_tasks_per_child=10) as pool:
                while queue or inflight:
                    while queue and len(inflight) < max(1, workers):
                        task = queue.popleft()
                        inflight[pool.submit(_run, task)] = task
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in done:
                        fn, name, rec = future.result()  # BrokenProcessPool if a worker died
                        del inflight[future]
                        record(fn, name, rec)
        except BrokenProcessPool:
            for task in inflight.values():
                tries[task] += 1
                if tries[task] < 2:
                    queue.append(task)
                    continue
                name, path = _cache_path(task, folder)
                record(task[0], name, _save(path, {"name": name, "error": "worker died "
                                                   "(killed or crashed) twice", "git": _git()}))


def _init_worker() -> None:
    import torch  # lazy: only workers run the pipeline

    torch.set_num_threads(1)


#: cluster shapes that are cuts of a crystal structure type (ase.cluster octahedra and
#: cuboctahedra are fcc; icosahedra and decahedra are twinned, no crystal type)
SHAPE_TYPES = {"octahedron": "fcc", "cuboctahedron": "fcc"}


def type_matches(truth: str, found: dict[str, str]) -> bool:
    """The candidate's structure type is the true one (an fcc cluster shape counts as fcc)."""
    st = found.get("structure_type", "").lower()
    return SHAPE_TYPES.get(st, st) == truth.lower()


def summarise(sim: list[dict], measured: list[dict], chili: list[dict]) -> dict[str, Any]:
    done = [c for c in sim if c.get("ratio") is not None]
    out: dict[str, Any] = {"n_cases": len(sim), "n_done": len(done),
                           "n_failed": sum(1 for c in sim if c.get("ours_error"))}
    if done:
        out.update({
            "median_ratio": statistics.median(c["ratio"] for c in done),
            "fraction_ratio_le_1": sum(c["ratio"] <= 1 for c in done) / len(done),
            "top1": sum(c["top1"] for c in done) / len(done),
            "top3": sum(c["top3"] for c in done) / len(done),
            "median_seconds": statistics.median(c["ours_seconds"] for c in done),
            "max_seconds": max(c["ours_seconds"] for c in done),
            "median_cpu_seconds": statistics.median(c.get("ours_cpu_seconds") or math.nan
                                                    for c in done),
            "median_rw_ours": statistics.median(c["ours_rw"] for c in done),
            "median_rw_pdffit2": statistics.median(c["pdffit2_rw"] for c in done),
            "median_pdffit2_seconds": statistics.median(c["pdffit2_seconds"] for c in done),
            "median_pdffit2_over_floor": statistics.median(
                c["pdffit2_rw"] / c["floor_rw"] for c in done if c.get("floor_rw")),
            "n_types": len({c["structure_type"] for c in done}),
            "pdffit2_median_abs_a_error": statistics.median(
                abs(c["pdffit2_params"]["a"] / c["truth"]["cellpar"][0] - 1) for c in done),
            "pdffit2_median_abs_diameter_error": statistics.median(
                abs(c["pdffit2_params"]["spdiameter"] / c["truth"]["spdiameter"] - 1)
                for c in done),
        })
    out["measured_all_le_pdffit2"] = bool(measured) and all(
        m.get("ratio") is not None and m["ratio"] <= 1 for m in measured)
    return out


def _row(name: str, truth: str, fit: dict | None, ours: dict | None) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "structure_type": truth}
    if fit:
        row.update(pdffit2_rw=fit.get("rw"), pdffit2_seconds=fit.get("seconds"),
                   floor_rw=fit.get("floor_rw"),
                   pdffit2_params=fit.get("params"), pdffit2_error=fit.get("error"))
    if ours:
        row.update(ours_rw=ours.get("rw"), ours_seconds=ours.get("seconds"),
                   ours_cpu_seconds=ours.get("cpu_seconds"), load_average=ours.get("load_average"),
                   ours_top=ours.get("top"), ours_error=ours.get("error"),
                   ours_fit_range=ours.get("fit_range"), ours_git=ours.get("git"))
        top = ours.get("top") or []
        row["top1"] = bool(top) and type_matches(truth, top[0])
        row["top3"] = any(type_matches(truth, t) for t in top[:3])
    if fit and ours and math.isfinite(fit.get("rw") or math.inf) and ours.get("rw") is not None:
        row["ratio"] = ours["rw"] / fit["rw"]
    return row


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100, help="simulated cases")
    p.add_argument("--workers", type=int, default=2, help="processes (2 max here)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated set")
    p.add_argument("--out", type=Path, default=OUT, help="result JSON")
    p.add_argument("--cache", type=Path, default=CACHE, help="per-case cache folder")
    p.add_argument("--timeout", type=float, default=300.0, help="s per sample call")
    p.add_argument("--skip-ours", action="store_true", help="only files and PDFfit2 fits")
    p.add_argument("--no-measured", action="store_true", help="leave out the measured files")
    p.add_argument("--no-chili", action="store_true", help="leave out item 7's files")
    p.add_argument("--fresh-ours", action="store_true", help="discard cached `sample` results")
    p.add_argument("--retry-errors", action="store_true",
                   help="recompute cached `sample` results that failed")
    p.add_argument("--report-only", action="store_true",
                   help="compute nothing: the table from the cached cases")
    args = p.parse_args(argv)

    folder = args.cache / f"seed{args.seed}"
    (folder / "files").mkdir(parents=True, exist_ok=True)
    sim_cases = cases_mod.draw(cases_mod.library_types(), args.cases, args.seed)
    cases_mod.write_manifest(sim_cases, folder / "manifest.json")
    measured = [] if args.no_measured else cases_mod.measured_cases()
    chili = [] if args.no_chili else list(cases_mod.CHILI_FILES)
    for f in (folder / "ours").glob("*.json"):
        if args.fresh_ours or (args.retry_errors and "error" in (_load(f) or {})):
            f.unlink()

    fits: list[tuple] = [("pdffit2", ("measured", m.name, str(folder))) for m, _ in measured]
    fits += [("pdffit2", ("sim", c.name, str(folder))) for c in sim_cases]
    ours: list[tuple] = []
    if not args.skip_ours:
        ours += [("ours", (m.name, str(m.file), m.composition, str(folder), args.timeout))
                 for m, _ in measured]
        ours += [("ours", (c.name, str(folder / "files" / f"{c.name}.gr"), c.composition,
                           str(folder), args.timeout)) for c in sim_cases]
        ours += [("ours", (f"chili {label}", str(cases_mod.DATA / rel), comp, str(folder),
                           args.timeout)) for label, rel, comp in chili]
    results: dict[tuple[str, str], dict] = {}
    t0 = time.perf_counter()

    def record(fn: str, name: str, rec: dict[str, Any]) -> None:
        results[(fn, name)] = rec
        msg = rec.get("error") or (f"Rw {rec['rw']:.4f}, {rec['seconds']:.1f} s"
                                   if rec.get("rw") is not None else "")
        print(f"[{time.perf_counter() - t0:7.0f} s] {fn:8s} {name:30s} {msg}", flush=True)

    for tasks in (fits, ours):  # the files exist before `sample` reads them
        todo = []
        for task in tasks:
            name, path = _cache_path(task, folder)
            if (hit := _load(path)) is not None and not (task[0] == "pdffit2" and
                                                         "floor_rw" not in hit and
                                                         task[1][0] == "sim"):
                results[(task[0], name)] = hit
            elif not args.report_only:
                todo.append(task)
        run_all(todo, args.workers, record, folder)

    sim_rows = [_row(c.name, c.structure_type, results.get(("pdffit2", c.name)),
                     results.get(("ours", c.name))) | {"composition": c.composition,
                                                       "truth": asdict(c)} for c in sim_cases]
    meas_rows = [_row(m.name, m.structure_type, results.get(("pdffit2", m.name)),
                      results.get(("ours", m.name))) | {"file": m.file.name} for m, _ in measured]
    chili_rows = [{**(results.get(("ours", f"chili {label}")) or {}), "name": label, "file": rel,
                   "composition": comp} for label, rel, comp in chili]
    report = {
        "command": "PYTHONPATH=. python benchmarks/measured_vs_pdffit2.py " + " ".join(
            a for a in (sys.argv[1:] if argv is None else argv) if a != "--report-only"),
        "git": _git(), "sample_kwargs": SAMPLE_KW, "pdffit2_version": engine.version(),
        "workers": args.workers, "cpu_count": os.cpu_count(),
        "summary": summarise(sim_rows, meas_rows, chili_rows),
        "measured": meas_rows, "chili_experimental": chili_rows, "simulated": sim_rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1, default=float))
    print(table(report))
    return 0


def table(report: dict[str, Any]) -> str:
    """The markdown tables of the NOTES."""
    s = report["summary"]
    lines = [f"simulated: {s.get('n_done', 0)} of {s['n_cases']} done "
             f"({s.get('n_types', 0)} types), failed {s['n_failed']}", "",
             "| median ratio | ratio <= 1 | top-1 | top-3 | median t (s) | max t (s) | "
             "median Rw ours | median Rw PDFfit2 |", "|---|---|---|---|---|---|---|---|"]
    if s.get("n_done"):
        lines.append(f"| {s['median_ratio']:.3f} | {s['fraction_ratio_le_1']:.0%} | "
                     f"{s['top1']:.0%} | {s['top3']:.0%} | {s['median_seconds']:.1f} | "
                     f"{s['max_seconds']:.1f} | {s['median_rw_ours']:.4f} | "
                     f"{s['median_rw_pdffit2']:.4f} |")
    lines += ["", "| measured | type | Rw ours | Rw PDFfit2 | ratio | top-1 type ours | t (s) |",
              "|---|---|---|---|---|---|---|"]
    for m in report["measured"]:
        top = (m.get("ours_top") or [{}])[0]
        lines.append(f"| {m['name']} | {m['structure_type']} | {_f(m.get('ours_rw'))} | "
                     f"{_f(m.get('pdffit2_rw'))} | {_f(m.get('ratio'), 3)} | "
                     f"{top.get('structure_type') or top.get('shape', '')} | "
                     f"{_f(m.get('ours_seconds'), 1)} |")
    lines += ["", "| file | composition | top-3 (type, source, Rw) | t (s) |", "|---|---|---|---|"]
    for c in report["chili_experimental"]:
        top = "; ".join(f"{t.get('structure_type') or t.get('shape') or t.get('kind')} "
                        f"({t.get('source')}) {t['final_rw']:.3f}" for t in c.get("top", [])[:3])
        lines.append(f"| {c['name']} | {c['composition'] or 'header'} | "
                     f"{top or c.get('error', '')} | {_f(c.get('seconds'), 1)} |")
    return "\n".join(lines)


def _f(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
