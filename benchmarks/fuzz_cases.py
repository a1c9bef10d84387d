"""The cases of the fuzz campaign (issue 22) run by `benchmarks/fuzz_report.py`.

Each `Case` makes its tiny inputs in its own folder (`setup`), names the `invdesign` arguments, the
right outcome ('refuse': one line and a non-zero exit; 'ok'; 'either': success or a one-line
refusal) and an optional extra check on the folder after the run. Inputs: the shipped
`examples/*.gr` as a valid base to corrupt, copies of shipped checkpoints edited here, and the
assets `fuzz_report.py` builds once (`ASSETS`: a tiny CHILI-3K folder `tiny`, a checkpoint of
another task `xrd_ck`).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    """One bad input or fault. `setup(dir)` makes the files; `argv` follows `invdesign`;
    `expect` is 'refuse', 'ok' or 'either'; `check(dir, run)` returns a problem or None."""

    name: str
    argv: list[str]
    setup: Callable[[Path], None] = lambda d: None
    expect: str = "refuse"
    check: Callable[[Path, Run], str | None] | None = None
    timeout: float = 120.0
    runner: str = "plain"  # or "concurrent" (twice at once), "sigterm"
    mutable: tuple[str, ...] = ()  # files the case expects to change (not counted as inputs)
    report_ok: bool = False  # a refusal may leave a report its message names (data build)


@dataclass
class Run:
    rc: int | None
    stderr: str = ""
    seconds: float = 0.0
    note: str = ""
    extra: list[Run] = field(default_factory=list)


# ---------------------------------------------------------------------------------- inputs
def gr_parts(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    start_line = next(i for i, t in enumerate(lines) if t.strip() and t.strip()[0].isdigit()
                      and not t.startswith("#"))
    return lines[:start_line], np.loadtxt(lines[start_line:])


def write_gr(path: Path, header: list[str], data: np.ndarray) -> None:
    rows = [" ".join(repr(float(v)) for v in row) for row in data]
    path.write_text("\n".join(header + rows) + "\n")


def gr_variant(edit: Callable[[list[str], np.ndarray], tuple[list[str], np.ndarray]],
               base: str = "Pt_truncoct_2nm.gr") -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        header, data = gr_parts(REPO / "examples" / base)
        write_gr(d / "x.gr", *edit(header, data.copy()))
    return setup


def copy_example(name: str = "Pt_truncoct_2nm.gr", dest: str = "x.gr") -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "examples" / name, d / dest)
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        for s in setups:
            s(d)
    return setup


def _set(data: np.ndarray, row: int, col: int, value: float) -> np.ndarray:
    data[row, col] = value
    return data


XYZ_OK = "8\nMgO cube\n" + "".join(
    f"{'Mg' if (i + j + k) % 2 == 0 else 'O'} {2.1 * i} {2.1 * j} {2.1 * k}\n"
    for i in (0, 1) for j in (0, 1) for k in (0, 1))


def candidates(**files: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / "cands").mkdir()
        for name, text in files.items():
            (d / "cands" / name.replace("_xyz", ".xyz").replace("_cif", ".cif")).write_text(text)
    return setup


def copy_asset(name: str, dest: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        src = ASSETS / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, d / dest)
    return setup


def copy_repo(rel: str, dest: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        src = REPO / rel
        (shutil.copytree if src.is_dir() else shutil.copy)(src, d / dest)
    return setup


def edit_ckpt(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """A copy of checkpoints/mlp-xpdf-pos_abs as ck/ with its metadata edited."""
    def setup(d: Path) -> None:
        from safetensors import safe_open  # lazy: torch only in the harness steps that need it
        from safetensors.torch import save_file

        shutil.copytree(REPO / "checkpoints" / "mlp-xpdf-pos_abs", d / "ck")
        file = d / "ck" / "model.safetensors"
        with safe_open(str(file), "pt") as f:
            meta = dict(f.metadata())
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        doc = json.loads(meta["invdesign"])
        edit(doc)
        meta["invdesign"] = json.dumps(doc)
        save_file(tensors, str(file), metadata=meta)
    return setup


def edit_json(rel: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        path = d / rel
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))
    return setup


def truncate(rel: str, fraction: float = 0.5) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        path = d / rel
        path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    return setup


def poison_index(d: Path) -> None:
    from invdesign.data.index import build_index  # lazy: h5 indexing only for this case

    build_index((d / "ds").resolve())
    edit_json("ds/.invdesign-index.json",
              lambda doc: [s.update(n_atoms="many") for e in doc["files"].values()
                           for s in e["sizes"]])(d)


def flip_bytes(d: Path, offset: int = 117, length: int = 16) -> None:
    """16 bytes of the first file's HDF5 metadata inverted (found by tests/fuzz/test_fuzz_hdf5)."""
    path = d / "ds" / "RockSalt_TiO.h5"
    raw = bytearray(path.read_bytes())
    raw[offset:offset + length] = bytes(b ^ 0xFF for b in raw[offset:offset + length])
    path.write_bytes(bytes(raw))


def nan_patterns(d: Path) -> None:
    with h5py.File(d / "ds" / "RockSalt_ZnO.h5", "r+") as h5:
        for size in h5["ScatteringData"].values():
            size["xPDF"][1, :] = np.nan


def big_cif(d: Path, per_edge: int = 22, step: float = 2.55) -> None:
    (d / "cifs").mkdir()
    length = per_edge * step
    grid = (np.indices((per_edge,) * 3).reshape(3, -1).T + 0.5) / per_edge
    rows = "".join(f"Cu{i} Cu {x:.6f} {y:.6f} {z:.6f}\n" for i, (x, y, z) in enumerate(grid))
    (d / "cifs" / "big.cif").write_text(
        f"data_big\n_symmetry_space_group_name_H-M 'P 1'\n_cell_length_a {length}\n"
        f"_cell_length_b {length}\n_cell_length_c {length}\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_atom_site_label\n"
        "_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        + rows)


def device_node(d: Path) -> None:
    os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null


def symlinked_input(d: Path) -> None:
    (d / "same2").mkdir()
    shutil.copy(REPO / "examples" / "Pt_truncoct_2nm.gr", d / "same2" / "x.gr")
    (d / "lnk").symlink_to("same2")


def train_config(text: str = "") -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        name = "mlp_xpdf_pos_abs.yaml"
        found = [REPO / "configs" / "experiment" / name, REPO / "configs" / name]
        src = next(p for p in found if p.is_file()).read_text()
        (d / "cfg.yaml").write_text(src.replace("name: mlp_xpdf_pos_abs", text or
                                                "name: mlp_xpdf_pos_abs"))
    return setup


# ---------------------------------------------------------------------------------- checks
def still_char_device(d: Path, run: Run) -> str | None:
    return None if (d / "null").is_char_device() else "device node replaced by a regular file"


def h5_rebuilt(d: Path, run: Run) -> str | None:
    try:
        with h5py.File(d / "ds" / "RockSalt_ZnO.h5", "r") as h5:
            return None if "ScatteringData" in h5 else "rebuilt file lacks ScatteringData"
    except OSError:
        return "truncated file still unreadable after the rerun"


def coincident_not_ok(d: Path, run: Run) -> str | None:
    text = (d / "p.csv").read_text() if (d / "p.csv").is_file() else ""
    row = next((r for r in text.splitlines() if "stack" in r), None)
    if row is None:
        return None if run.rc else "coincident-atom file missing from the CSV"
    return "coincident atoms ranked 'ok'" if ",ok," in row or row.endswith(",ok") else None


def one_winner(d: Path, run: Run) -> str | None:
    n_ok = sum(r.rc == 0 for r in [run, *run.extra])
    return None if n_ok == 1 else f"{n_ok} of 2 concurrent runs exited 0"


ASSETS = Path()  # set by fuzz_report.main(): `tiny` CHILI folder, `xrd_ck` (XRD->pos_abs)
PDF = ["sample", "--pdf", "x.gr", "--n", "2", "--out", "out"]
ZNO = copy_example("ZnO_wurtzite_1nm.gr")
TRAIN = ["train", "--config", "cfg.yaml", "--data", "ds", "trainer.max_epochs=1",
         "generator.hparams.hidden=8"]
EVAL = ["evaluate", "--checkpoint", "ck", "--data", "ds", "--split", "all"]
TINY = copy_asset("tiny", "ds")
MLP = copy_repo("checkpoints/mlp-xpdf-pos_abs", "ck")
PROP = copy_repo("checkpoints/property-default", "pk")


def issue_cases() -> list[Case]:
    """The cases listed in issue 22."""
    ck = edit_ckpt
    return [
        Case("out-symlink-force", ["sample", "--pdf", "lnk/x.gr", "--out", "same2", "--force",
                                   "--n", "2"], symlinked_input),
        Case("out-dotdot-force", ["sample", "--pdf", "same/x.gr", "--out", "same/../same",
                                  "--force", "--n", "2"], copy_example(dest="same/x.gr")),
        Case("screen-out-is-input", ["screen", "cands", "--out", "cands/input.xyz"],
             candidates(a_xyz=XYZ_OK, input_xyz=XYZ_OK)),
        Case("screen-out-device", ["screen", "cands", "--out", "null"],
             both(candidates(a_xyz=XYZ_OK), device_node), "either", still_char_device),
        Case("evaluate-out-device", [*EVAL, "--out", "null"], both(TINY, MLP, device_node),
             "either", still_char_device),
        Case("evaluate-out-is-input", [*EVAL, "--out", "ds/RockSalt_ZnO.h5"], both(TINY, MLP)),
        Case("sample-concurrent-same-out", PDF, copy_example(), "either", one_winner,
             runner="concurrent"),
        Case("train-out-existing-ckpt", [*TRAIN, "--out", "ck"], both(TINY, MLP, train_config())),
        Case("sample-sigterm", ["sample", "--pdf", "x.gr", "--n", "16", "--out", "out"],
             copy_example(), runner="sigterm"),
        Case("build-rerun-truncated-h5", ["data", "build", "chili3k", "--out", "ds", "--metals",
                                          "Zn", "Ti", "--crystal-types", "RockSalt", "Wurtzite",
                                          "--radii", "3", "5", "--no-progress"],
             both(TINY, truncate("ds/RockSalt_ZnO.h5")), "ok", h5_rebuilt,
             mutable=("ds/RockSalt_ZnO.h5", "ds/build_report.tsv")),
        Case("gr-all-zero", PDF, gr_variant(lambda h, d: (h, _set(d, slice(None), 1, 0.0)))),
        Case("composition-huge", [*PDF, "--composition", "Pt1000000000000"], copy_example()),
        Case("out-unwritable", ["sample", "--pdf", "x.gr", "--n", "2", "--out", "x.gr/sub"],
             copy_example()),
        Case("out-too-long", ["sample", "--pdf", "x.gr", "--n", "2", "--out", "o" * 300],
             copy_example()),
        Case("ckpt-unknown-hparam", [*PDF, "--checkpoint", "ck"],
             both(ZNO, ck(lambda m: m["hparams"].update(nosuch=1)))),
        Case("ckpt-hparam-wrong-type", [*PDF, "--checkpoint", "ck"],
             both(ZNO, ck(lambda m: m["hparams"].update(hidden="wide")))),
        Case("ckpt-hparams-not-dict", [*PDF, "--checkpoint", "ck"],
             both(ZNO, ck(lambda m: m.update(hparams=[1, 2])))),
        Case("ckpt-version-wrong-type", [*PDF, "--checkpoint", "ck"],
             both(ZNO, ck(lambda m: m.update(version="one")))),
        Case("ckpt-absurd-width", [*PDF, "--checkpoint", "ck"],
             both(ZNO, ck(lambda m: m["hparams"].update(hidden=10**7)))),
        Case("index-cache-poisoned", ["data", "info", "ds"], both(TINY, poison_index),
             "either"),  # the cache is ours: rebuilding it is as good as refusing
        Case("property-ckpt-string-ymean", ["screen", "cands", "--checkpoint", "pk", "--out",
                                            "p.csv"],
             both(candidates(a_xyz=XYZ_OK), PROP, edit_json("pk/config.json",
                                                            lambda c: c.update(y_mean="abc")))),
        Case("train-unknown-key", [*TRAIN, "nosuch.key=1"], both(TINY, train_config())),
        Case("train-negative-width", [*TRAIN, "generator.hparams.hidden=-5"],
             both(TINY, train_config())),
        Case("train-interp-unset-env", [*TRAIN, "--out", "trained"],
             both(TINY, train_config("name: ${oc.env:FUZZ_UNSET_VARIABLE}"))),
        Case("train-interp-missing-key", [*TRAIN, "--out", "trained"],
             both(TINY, train_config("name: ${nosuch.key}"))),
        Case("train-env-interp-stored", [*TRAIN, "--out", "trained"],
             both(TINY, train_config("name: ${oc.env:HOME}"))),
        Case("screen-lone-1-atom", ["screen", "cands", "--out", "p.csv"],
             candidates(one_xyz="1\none atom\nCu 0 0 0\n"), "either"),
        Case("qdamp-nan", [*PDF, "--qdamp", "nan"], copy_example()),
        Case("biso-inf", [*PDF, "--biso", "inf"], copy_example()),
        Case("header-qdamp-1e999", PDF, gr_variant(
            lambda h, d: ([t if not t.startswith("qmax =") else t + "\nqdamp = 1e999"
                           for t in h], d))),
        Case("gr-huge-value", PDF, gr_variant(lambda h, d: (h, _set(d, 500, 1, 1e300)))),
        Case("gr-negative-r", PDF, gr_variant(lambda h, d: (h, _set(d, slice(None), 0,
                                                                    d[:, 0] - 1.0)))),
        Case("n-100000", ["sample", "--pdf", "x.gr", "--n", "100000", "--out", "out"],
             copy_example(), timeout=90),
        Case("refine-top-negative", [*PDF, "--refine", "--refine-top", "-1"], copy_example()),
        Case("evaluate-nan-patterns", EVAL, both(TINY, MLP, nan_patterns)),
        Case("screen-coincident-atoms", ["screen", "cands", "--out", "p.csv"],
             candidates(a_xyz=XYZ_OK, stack_xyz="3\nstack\nCu 0 0 0\nCu 0 0 0\nCu 0 0 0\n"),
             "ok", coincident_not_ok),
        Case("cif-10000-atoms", ["data", "build", "cifs", "--cif-dir", "cifs", "--out", "built",
                                 "--radii", "5", "--no-progress"], big_cif, "either",
             timeout=90, report_ok=True),
    ]


def classic_cases() -> list[Case]:
    """The README's promise: malformed files, unreadable inputs, foreign checkpoints, options."""
    ex = copy_example()
    gr = gr_variant
    return [
        Case("gr-no-numbers", PDF, lambda d: (d / "x.gr").write_text("# header\nr G\nabc def\n")),
        Case("gr-binary", PDF, lambda d: (d / "x.gr").write_bytes(bytes(range(256)) * 8)),
        Case("gr-missing", PDF),
        Case("gr-non-monotonic", PDF, gr(lambda h, d: (h, d[[*range(100), 101, 100,
                                                             *range(102, len(d))]]))),
        Case("gr-repeated-r", PDF, gr(lambda h, d: (h, np.insert(d, 100, d[100], axis=0)))),
        Case("gr-nan", PDF, gr(lambda h, d: (h, _set(d, 300, 1, np.nan)))),
        Case("gr-inf", PDF, gr(lambda h, d: (h, _set(d, 300, 1, np.inf)))),
        Case("gr-short-range", PDF, gr(lambda h, d: (h, d[d[:, 0] <= 5.0]))),
        Case("gr-ragged-columns", PDF,
             lambda d: (d / "x.gr").write_text("".join(
                 f"{0.1 * i} {i % 3}" + (" 1" if i == 20 else "") + "\n" for i in range(60)))),
        Case("cif-unreadable-screen", ["screen", "cands", "--out", "p.csv"],
             candidates(bad_cif="data_x\n_cell_length_a foo\nloop_\n_atom_site_label\n"),
             "either"),
        Case("cif-unreadable-build", ["data", "build", "cifs", "--cif-dir", "cands", "--out",
                                      "built", "--radii", "5", "--no-progress"],
             candidates(bad_cif="data_x\n_cell_length_a foo\n"), "either", report_ok=True),
        Case("h5-truncated-info", ["data", "info", "ds"],
             both(TINY, truncate("ds/Wurtzite_ZnO.h5"))),
        Case("h5-truncated-evaluate", EVAL, both(TINY, MLP, truncate("ds/Wurtzite_ZnO.h5", 0.9))),
        Case("h5-flipped-bytes", ["data", "info", "ds"], both(TINY, flip_bytes)),
        Case("h5-not-hdf5", ["data", "info", "ds"],
             both(TINY, lambda d: (d / "ds" / "RockSalt_TiO.h5").write_text("not hdf5"))),
        Case("ckpt-other-task", [*PDF, "--checkpoint", "xrdck"],
             both(ZNO, copy_asset("xrd_ck", "xrdck"))),
        Case("ckpt-property-as-generator", [*PDF, "--checkpoint", "pk"], both(ex, PROP)),
        Case("ckpt-generator-as-property", ["screen", "cands", "--checkpoint", "ck", "--out",
                                            "p.csv"], both(candidates(a_xyz=XYZ_OK), MLP)),
        Case("ckpt-truncated", [*PDF, "--checkpoint", "ck"],
             both(ex, MLP, truncate("ck/model.safetensors", 0.3))),
        Case("ckpt-pickle", [*PDF, "--checkpoint", "ck/model.safetensors"],
             both(ex, lambda d: (d / "ck").mkdir(),
                  lambda d: (d / "ck" / "model.safetensors").write_bytes(
                      b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.")),),
        Case("evaluate-property-ckpt", [*EVAL[:2], "pk", *EVAL[3:]], both(TINY, PROP)),
        Case("opt-n-zero", [*PDF, "--n", "0"], ex),
        Case("opt-n-negative", [*PDF, "--n", "-3"], ex),
        Case("opt-n-not-int", [*PDF, "--n", "two"], ex),
        Case("opt-fit-range-reversed", [*PDF, "--fit-range", "20", "2"], ex),
        Case("opt-qmax-negative", [*PDF, "--qmax", "-1"], ex),
        Case("opt-qmin-above-qmax", [*PDF, "--qmin", "40", "--qmax", "30"], ex),
        Case("opt-steps-for-mlp", [*PDF, "--steps", "5"], ZNO),
        Case("opt-sampler-unknown", [*PDF, "--sampler", "nosuch"], ZNO),
        Case("opt-model-unknown", [*PDF, "--model", "nosuch"], ex),
        Case("opt-composition-unknown", [*PDF, "--composition", "Xx2"], ex),
        Case("opt-composition-empty", [*PDF, "--composition", " "], ex),
        Case("opt-device-unknown", [*PDF, "--device", "nosuch"], ex),
        Case("opt-no-pattern", ["sample", "--n", "2", "--out", "out"]),
        Case("opt-xrd-without-unit", ["sample", "--xrd", "x.gr", "--n", "2", "--out", "out"], ex),
        Case("opt-screen-top-negative", ["screen", "cands", "--out", "p.csv", "--check",
                                         "chgnet", "--top", "-1"], candidates(a_xyz=XYZ_OK)),
        Case("opt-screen-max-ef-nan", ["screen", "cands", "--out", "p.csv", "--max-ef", "nan"],
             candidates(a_xyz=XYZ_OK)),
        Case("opt-build-workers-zero", ["data", "build", "chili3k", "--out", "built", "--metals",
                                        "Zn", "--crystal-types", "RockSalt", "--radii", "3",
                                        "--workers", "0", "--no-progress"]),
        Case("opt-build-radius-negative", ["data", "build", "chili3k", "--out", "built",
                                           "--metals", "Zn", "--crystal-types", "RockSalt",
                                           "--radii", "-3", "--no-progress"]),
        Case("opt-build-unknown-metal", ["data", "build", "chili3k", "--out", "built", "--metals",
                                         "Xx", "--no-progress"]),
        Case("opt-train-config-missing", ["train", "--config", "nosuch.yaml", "--data", "ds"],
             TINY),
        Case("opt-evaluate-data-missing", [*EVAL[:4], "nosuch"], MLP),
    ]
