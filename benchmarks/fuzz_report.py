"""Fuzz campaign of issue 22: bad inputs and faults against the real CLI, each handled or not.

    python benchmarks/fuzz_report.py [--only SUBSTRING ...] [--workers 2] [--keep]

Every case (`benchmarks/fuzz_cases.py`: each case listed in issue 22, plus the README's promise:
malformed `.gr`, unreadable CIF, truncated HDF5, a checkpoint for another task, bad options) runs
`python -m invdesign.cli.main ...` in a subprocess, in its own folder under a temporary directory,
with a timeout and a 6 GiB address-space limit. Recorded per case: exit code, stderr lines, error
lines, traceback, sha256 of every file in the case folder before and after (changed or deleted
inputs), leftover temporary/partial files, outputs written where none should be.

A refusal is handled when: non-zero exit, exactly one `invdesign: error:` line (for option syntax,
argparse's `invdesign ...: error:` line), no traceback, no Python warning, no input changed, no
partial file left, no output written. Other stderr lines are the command's progress lines (`sample`
prints what it took from where on stderr) or argparse's usage line; their count is shown. Cases
whose right outcome is success ('ok') or either success or a one-line refusal ('either') say so in
the `expected` column and carry an extra check. The exit status is 0 regardless: this is a report;
the last line gives the totals.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import fuzz_cases
from fuzz_cases import REPO, Case, Run

CLI = [sys.executable, "-m", "invdesign.cli.main"]
ERROR_LINE = re.compile(r"^invdesign( [\w-]+)*: error: ")
WARNING_LINE = re.compile(r"(^|:\d+: )\w*Warning: ")
TEMP_NAME = re.compile(r"\.partial|\.tmp|^tmp|\.lock$")
IGNORED = (".invdesign-index.json", ".invdesign-cache")  # caches the data layer may (re)write
MEMORY_LIMIT = 6 * 2**30  # bytes of address space per case (absurd widths fail, not swap)


@dataclass
class Outcome:
    case: Case
    run: Run
    changed: list[str]
    leftovers: list[str]
    outputs: list[str]
    problem: str | None

    @property
    def lines(self) -> list[str]:
        return [t for t in self.run.stderr.splitlines() if t.strip()]

    @property
    def errors(self) -> int:
        return sum(bool(ERROR_LINE.match(t)) for t in self.lines)

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.run.stderr

    @property
    def warnings(self) -> int:
        return sum(bool(WARNING_LINE.search(t)) for t in self.lines)

    @property
    def clean(self) -> bool:
        """Nothing lost, nothing half-written, nothing where nothing belongs, no traceback."""
        return not (self.traceback or self.warnings or self.changed or self.leftovers
                    or self.problem or self.run.rc is None)

    @property
    def refused(self) -> bool:
        """One clear line and a non-zero exit, nothing written."""
        return self.run.rc not in (0, None) and self.errors == 1 and not self.outputs

    @property
    def handled(self) -> bool:
        if not self.clean:
            return False
        if self.case.runner == "sigterm":
            return self.run.rc != 0 and self.errors <= 1 and not self.outputs
        if self.case.expect == "ok":
            return self.run.rc == 0
        if self.case.expect == "either":
            return self.run.rc == 0 or self.refused
        return self.refused

    def describe(self) -> str:
        rc = "timeout" if self.run.rc is None else f"rc={self.run.rc}"
        parts = [f"{rc} lines={len(self.lines)} err={self.errors}"]
        parts += ["TRACEBACK"] * self.traceback
        parts += [f"warnings={self.warnings}"] * bool(self.warnings)
        parts += [f"changed={','.join(self.changed)}"] * bool(self.changed)
        parts += [f"leftover={','.join(self.leftovers)}"] * bool(self.leftovers)
        parts += [f"output={','.join(self.outputs)}"] * bool(self.outputs)
        parts += [self.problem or "", self.run.note]
        return " ".join(p for p in parts if p)


# ------------------------------------------------------------------------------- processes
def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def start(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUZZ_")}
    return subprocess.Popen(CLI + argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_limit_memory,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float, t0: float) -> Run:
    try:
        _, err = proc.communicate(timeout=max(timeout - (time.monotonic() - t0), 1.0))
        return Run(proc.returncode, err, time.monotonic() - t0)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        return Run(None, err, time.monotonic() - t0, note=f"timeout {timeout:.0f} s")


def run_plain(case: Case, cwd: Path) -> Run:
    return finish(start(case.argv, cwd), case.timeout, time.monotonic())


def run_concurrent(case: Case, cwd: Path) -> Run:
    """The same command twice at once: one may win, the other must be refused."""
    t0 = time.monotonic()
    runs = [finish(p, case.timeout, t0) for p in [start(case.argv, cwd) for _ in range(2)]]
    losers = [r for r in runs if r.rc != 0]
    main = losers[0] if losers else runs[1]
    main.extra = [r for r in runs if r is not main]
    main.note = f"{sum(r.rc == 0 for r in runs)} of 2 runs exited 0"
    return main


def run_sigterm(case: Case, cwd: Path) -> Run:
    """SIGTERM half a second after a partial output shows up (else after 60 s)."""
    t0 = time.monotonic()
    proc = start(case.argv, cwd)
    while proc.poll() is None and time.monotonic() - t0 < 60:
        if any(".partial" in p.name for p in cwd.rglob("*")):
            time.sleep(0.5)
            break
        time.sleep(0.1)
    if proc.poll() is not None:
        return Run(proc.returncode, proc.communicate()[1], time.monotonic() - t0,
                   note="finished before SIGTERM could be sent")
    proc.send_signal(signal.SIGTERM)
    run = finish(proc, 60, time.monotonic())
    run.note = (run.note + " SIGTERM sent").strip()
    return run


RUNNERS = {"plain": run_plain, "concurrent": run_concurrent, "sigterm": run_sigterm}


# ------------------------------------------------------------------------------- measuring
def checksums(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of each file below `folder` (device nodes, FIFOs: their type)."""
    sums = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if any(part in IGNORED for part in Path(rel).parts) or path.is_dir():
            continue
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            sums[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            sums[rel] = f"type {stat.S_IFMT(mode):o}"
    return sums


def out_targets(argv: list[str]) -> list[str]:
    """The paths given to --out/--json (screen also writes a .png beside its CSV)."""
    paths = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--out", "--json")]
    if argv and argv[0] == "screen":
        paths += [str(Path(p).with_suffix(".png")) for p in paths]
    return paths


def run_case(case: Case, root: Path) -> Outcome:
    cwd = root / case.name
    cwd.mkdir()
    try:
        case.setup(cwd)
    except Exception as exc:  # a broken case is reported, never stops the campaign
        return Outcome(case, Run(None, note=f"setup failed: {type(exc).__name__}: {exc}"),
                       [], [], [], "case not run")
    before = checksums(cwd)
    existing = {p for p in out_targets(case.argv) if os.path.lexists(cwd / p)}
    run = RUNNERS[case.runner](case, cwd)
    after = checksums(cwd)
    changed = [rel for rel, digest in before.items()
               if rel not in case.mutable and after.get(rel) != digest]
    leftovers = sorted(rel for rel in after if rel not in before and TEMP_NAME.search(rel))
    leftovers += sorted(p.relative_to(cwd).as_posix() for p in cwd.rglob("*")
                        if p.is_dir() and TEMP_NAME.search(p.name))
    outputs = [p for p in out_targets(case.argv)
               if p not in existing and os.path.lexists(cwd / p)]
    if run.rc == 0 or case.runner == "concurrent" or case.report_ok:
        outputs = []  # success writes; so may one of two concurrent runs, or a refusal's report
    try:
        problem = case.check(cwd, run) if case.check else None
    except Exception as exc:  # a check must report, never stop the campaign
        problem = f"check failed: {type(exc).__name__}: {exc}"
    return Outcome(case, run, changed, leftovers, outputs, problem)


def build_assets(folder: Path) -> None:
    """A tiny CHILI-3K folder (4 files, 8 graphs) and a tiny XRD->pos_abs MLP checkpoint."""
    import torch  # lazy: only the asset build needs torch in this process

    import invdesign.generators.mlp  # noqa: F401  (registers 'mlp')
    from invdesign.core.tasks import TaskSpec
    from invdesign.generators.base import build_generator
    from invdesign.generators.checkpoint import save_checkpoint
    from invdesign.testing import make_tiny_chili3k

    make_tiny_chili3k(folder / "tiny")
    torch.manual_seed(0)
    gen = build_generator("mlp", TaskSpec.parse("XRD->pos_abs"), hidden=16, aux_hidden=16,
                          species_vocab=[8, 30, 78])
    save_checkpoint(folder / "xrd_ck", gen)


def table(outcomes: list[Outcome]) -> str:
    width = max(len(o.case.name) for o in outcomes)
    rows = [f"{'case':<{width}}  {'expected':<8}  {'handled':<7}  outcome"]
    rows += [f"{o.case.name:<{width}}  {o.case.expect:<8}  {'yes' if o.handled else 'NO':<7}  "
             f"{o.describe()}" for o in outcomes]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=[], help="run cases whose name contains one")
    parser.add_argument("--workers", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--verbose", action="store_true", help="print unhandled cases' stderr")
    args = parser.parse_args(argv)
    cases = fuzz_cases.issue_cases() + fuzz_cases.classic_cases()
    cases = [c for c in cases if not args.only or any(s in c.name for s in args.only)]
    root = Path(tempfile.mkdtemp(prefix="invdesign-fuzz-"))
    t0 = time.monotonic()
    try:
        fuzz_cases.ASSETS = root / "_assets"
        build_assets(fuzz_cases.ASSETS)
        repo_before = checksums(REPO / "examples") | checksums(REPO / "checkpoints")
        with ThreadPoolExecutor(args.workers) as pool:
            outcomes = list(pool.map(lambda c: run_case(c, root), cases))
        repo_after = checksums(REPO / "examples") | checksums(REPO / "checkpoints")
    finally:
        if args.keep:
            print(f"cases kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(table(outcomes))
    if args.verbose:
        for o in outcomes:
            if not o.handled:
                print(f"\n--- {o.case.name}: invdesign {' '.join(o.case.argv)}\n"
                      + "\n".join(o.lines[-12:]))
    changed = [f"{o.case.name}:{rel}" for o in outcomes for rel in o.changed]
    changed += [f"repo:{rel}" for rel, d in repo_before.items() if repo_after.get(rel) != d]
    unhandled = [o.case.name for o in outcomes if not o.handled]
    print(f"\nunhandled: {', '.join(unhandled) or 'none'}")
    print(f"input files whose checksum changed: {', '.join(changed) or 'none'}")
    print(f"TOTALS: cases tried {len(outcomes)}, handled {len(outcomes) - len(unhandled)}, "
          f"unhandled {len(unhandled)}, input files changed {len(changed)} "
          f"({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
