"""Mutation score of the core numeric modules (issue 28, item 5), one mutmut campaign per module.

Usage (from the repository root; needs the `mutation` extra: `pip install -e '.[mutation]'`):

    python benchmarks/mutation_score.py                 # every module below
    python benchmarks/mutation_score.py pattern splits  # some of them
    python benchmarks/mutation_score.py --list          # the modules, their tests and functions

For each module it prints: mutants, killed, survived, timeout, other (no tests / suspicious /
segfault), the score (killed + timeout over all mutants, %), and the surviving mutants by name
(`mutmut show NAME` inside the module's work folder prints the diff).

Why a work folder per module: mutmut 3 copies the source folder into `mutants/` and walks it
without following symbolic links, so `invdesign/generators` and `invdesign/evaluators` (links to the
top-level `generators/` and `evaluators/`) would be missing from the mutated copy. The script
therefore builds `<workdir>/<module>/` from `git archive HEAD` (the committed sources and tests;
`--worktree` takes the working tree instead) with the two links replaced by the real folders,
`pyproject.toml` with a `[tool.mutmut]` table for that module appended, and a link
`shared -> ../shared` so the real-data tests run (tests/conftest.py looks two folders above
`tests/`). mutmut runs there (`python -m mutmut run --max-children 2`), so nothing is written into
the checkout. Each module runs only its own narrow test selection; mutmut further runs, per mutant,
only the tests that called the mutated function. Workers are forked from mutmut's main process
with one torch/OpenMP thread each (OMP_NUM_THREADS=1); a module whose tests hang that way (torch
thread pools do not survive a fork) sets `isolation="forkserver"` (or pass `--forkserver`): mutmut
then forks workers from a clean server and runs the stats, clean and forced-failure passes in fresh
processes (slower: about a minute more per module).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Module:
    """One campaign: the file to mutate (as a path under the resolved `invdesign/`), the tests to
    run, and optionally the functions to mutate (mutmut name globs; all functions when empty)."""

    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = field(default=())
    isolation: str = "fork"

    @property
    def dotted(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")


#: the reader tests (not tests/io/test_outputs.py and test_atomic.py: output writing, slow CLI runs)
_READER_TESTS = (
    "tests/io/test_measured.py", "tests/io/test_reader_values.py", "tests/io/test_validation.py",
    "tests/io/test_headers_mutants.py", "tests/io/test_reader_mutants.py",
    "tests/io/test_measured_mutants.py", "tests/io/test_powder.py",
)

MODULES: dict[str, Module] = {
    "pattern": Module(
        "invdesign/evaluators/metrics/pattern.py",
        # not tests/evaluators/forward/: its DebyeCalculator runs take ~15 s per mutant here
        ("tests/evaluators/metrics/",),
    ),
    "losses": Module(
        "invdesign/generators/losses.py",
        ("tests/generators/test_losses.py", "tests/generators/test_losses_mutants.py"),
    ),
    "structure_metrics": Module(
        "invdesign/evaluators/metrics/structure.py",
        ("tests/evaluators/metrics/",),
        # the metrics; not the particle orientation search (_orientations, _kabsch, _refine,
        # _align_particle: 1,000 orientations per call, minutes per mutant on 2 shared cores)
        ("sort_by_norm", "_difference", "chili_mae", "match", "matched_errors", "_mean_abs",
         "_align_cell", "aligned_errors", "aligned_summary", "_pool", "matched_summary",
         "count_accuracy", "species_accuracy"),
    ),
    "measured": Module("invdesign/io/measured.py", _READER_TESTS),
    "headers": Module("invdesign/io/headers.py", _READER_TESTS),
    "splits": Module(
        "invdesign/data/splits.py",
        ("tests/data/test_splits.py", "tests/data/test_splits_mutants.py",
         # not test_task_split_and_config_group: it reads configs/, which the work folder lacks
         *(f"tests/data/test_splits_leave_type_out.py::{t}" for t in (
             "test_fold_contents_are_exact", "test_only_the_chosen_graphs_are_split",
             "test_fold_by_index_and_any_case_names_the_same_type",
             "test_bad_folds_are_refused_in_one_line", "test_bare_kind_without_fold_is_refused",
             "test_too_few_remaining_sources_are_refused",
             "test_the_held_out_type_is_never_in_train_or_val_and_sources_stay_whole",
             "test_existing_kinds_are_unchanged"))),
    ),
    "match": Module(
        "invdesign/evaluators/metrics/match.py",
        ("tests/evaluators/metrics/test_match.py",
         "tests/evaluators/metrics/test_match_mutants.py"),
    ),
    "crystal_pdf": Module(
        "invdesign/physics/crystal_pdf.py",
        ("tests/physics/test_crystal_pdf.py", "tests/physics/test_crystal_pdf_mutants.py"),
    ),
    "segmentation": Module(
        "invdesign/generators/vae/segmentation.py",
        (
            "tests/generators/vae/test_segmentation.py",
            "tests/generators/vae/test_segmentation_values.py",
            "tests/generators/vae/test_segmentation_mutants.py",
        ),
    ),
}


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", "mutants") or n.endswith(".pyc")}


def _snapshot(work: Path, ref: str | None) -> None:
    """`invdesign/` (links resolved into real folders) and `tests/` of the commit `ref`, or of the
    working tree when `ref` is None."""
    if ref is None:
        # symlinks=False: the links invdesign/generators and invdesign/evaluators become folders.
        shutil.copytree(REPO / "invdesign", work / "invdesign", symlinks=False, ignore=_ignore)
        shutil.copytree(REPO / "tests", work / "tests", symlinks=True, ignore=_ignore)
        return
    paths = ["invdesign", "generators", "evaluators", "tests"]
    archive = subprocess.run(["git", "archive", ref, *paths], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    for link in (work / "invdesign").iterdir():
        if link.is_symlink():  # invdesign/generators -> ../generators: move the folder in
            target = (link.parent / link.readlink()).resolve()
            link.unlink()
            shutil.move(target, link)


def prepare(name: str, mod: Module, workdir: Path, ref: str | None, isolation: str) -> Path:
    """Fresh work folder for one module: sources, tests, config, data link."""
    work = workdir / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _snapshot(work, ref)
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (work / "shared").symlink_to(shared)
    tests = [t for t in mod.tests if (work / t.split("::")[0]).exists()]  # path or node id
    quoted = ", ".join(f'"{t}"' for t in tests)
    config = (
        "\n[tool.mutmut]\n"
        'source_paths = ["invdesign"]\n'
        f'only_mutate = ["{mod.path}"]\n'
        f"pytest_add_cli_args_test_selection = [{quoted}]\n"
        # -p no:cacheprovider: the work folder is thrown away; -x: one failure kills the mutant.
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x", "-q"]\n'
        "use_git_change_detection = false\n"
        f'process_isolation = "{isolation}"\n'
    )
    text = (REPO / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(text + config)
    return work


_RESULT = re.compile(r"^\s+(\S+): (.+)$")
_SPINNER = re.compile(r"^[\u2800-\u28ff] ")  # mutmut's progress lines (braille spinner)


def run_module(name: str, mod: Module, workdir: Path, children: int, ref: str | None,
               isolation: str | None = None) -> dict:
    """Run mutmut for one module; return counts and survivors."""
    work = prepare(name, mod, workdir, ref, isolation or mod.isolation)
    start = time.monotonic()
    globs = [f"{mod.dotted}.x_{f}__mutmut_*" for f in mod.functions]
    # One thread per worker: the machine has 2 cores and mutmut runs `children` workers.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *globs],
        cwd=work, capture_output=True, text=True, env=env,
    )
    seconds = time.monotonic() - start
    log = [ln for ln in (proc.stdout + proc.stderr).splitlines() if not _SPINNER.match(ln)]
    (work / "mutmut_run.log").write_text("\n".join(log) + "\n")
    res = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=work, capture_output=True, text=True,
    )
    status: dict[str, str] = {}
    for line in res.stdout.splitlines():
        m = _RESULT.match(line)
        if m and m.group(1).startswith(mod.dotted + "."):
            status[m.group(1)] = m.group(2).strip()
    if mod.functions:  # only the mutants of the chosen functions count
        status = {k: v for k, v in status.items() if v != "not checked"}
    counts = {s: sum(v == s for v in status.values()) for s in ("killed", "survived", "timeout")}
    total = len(status)
    other = total - sum(counts.values())
    score = 100.0 * (counts["killed"] + counts["timeout"]) / total if total else float("nan")
    return {
        "name": name, "mutants": total, **counts, "other": other, "score": score,
        "seconds": seconds, "returncode": proc.returncode, "work": work,
        "survivors": sorted(k for k, v in status.items() if v != "killed" and v != "timeout"),
        "status": status,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help=f"default all: {', '.join(MODULES)}")
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "invdesign_mutmut",
                    help="parent of the per-module work folders (default: TMPDIR/invdesign_mutmut)")
    ap.add_argument("--max-children", type=int, default=2, help="parallel mutmut workers")
    ap.add_argument("--ref", default="HEAD",
                    help="commit whose sources and tests are mutated and run (default HEAD)")
    ap.add_argument("--worktree", action="store_true",
                    help="use the working tree (uncommitted edits included) instead of --ref")
    ap.add_argument("--forkserver", action="store_true",
                    help="fork every module's workers from mutmut's fork server (slower)")
    ap.add_argument("--list", action="store_true", help="print the modules and exit")
    args = ap.parse_args(argv)
    names = args.modules or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        ap.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    if args.list:
        for n in names:
            m = MODULES[n]
            print(f"{n}: {m.path}  tests: {' '.join(m.tests)}  functions: {m.functions or 'all'}")
        return 0
    rows = []
    for n in names:
        r = run_module(n, MODULES[n], args.workdir, args.max_children,
                       None if args.worktree else args.ref,
                       "forkserver" if args.forkserver else None)
        rows.append(r)
        print(
            f"{n:18s} mutants {r['mutants']:4d}  killed {r['killed']:4d}  survived "
            f"{r['survived']:3d}  timeout {r['timeout']:3d}  other {r['other']:3d}  "
            f"score {r['score']:5.1f} %  ({r['seconds']:.0f} s)",
            flush=True,
        )
        if r["returncode"] != 0:
            print(f"  mutmut exited {r['returncode']}: see {r['work'] / 'mutmut_run.log'}")
        for s in r["survivors"]:
            print(f"  {r['status'][s]:10s} {s}")
    total = sum(r["seconds"] for r in rows)
    print(f"total {total:.0f} s; work folders under {args.workdir}")
    return 0 if all(r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
