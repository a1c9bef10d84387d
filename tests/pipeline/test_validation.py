"""`invdesign sample` at its edges (issue 22, items 2 and 4): every bad number, pattern or
composition ends as one line on stderr naming the option or file, exit code 2, no traceback and
nothing written; candidates with coincident atoms are never valid; a run that cannot produce the
requested number of candidates says how many it produced."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from invdesign.cli.main import main
from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.geometry import invalid_reason
from invdesign.core.structure import Structure
from invdesign.io.measured import read_pattern
from invdesign.pipeline import sample
from invdesign.pipeline.inputs import MAX_N, check_options
from invdesign.pipeline.result import Candidate
from invdesign.pipeline.sizing import estimate_size

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PT = EXAMPLES / "Pt_truncoct_2nm.gr"
R = np.round(np.arange(0.0, 30.0, 0.01), 4)


def _gr(path: Path, r: np.ndarray = R, g: np.ndarray | None = None, header: str = "") -> Path:
    g = np.sin(3 * r) * np.exp(-r / 8) if g is None else g
    path.write_text(header + "".join(f"{a:.4f} {b:.6g}\n" for a, b in zip(r, g, strict=True)))
    return path


def _huge(path: Path) -> Path:
    g = np.sin(R)
    g[500] = 1e300
    return _gr(path, g=g)


def _refused_by_cli(tmp_path: Path, capsys, args: list[str], gr: Path) -> str:
    """Run `invdesign sample` with `args`; assert the refusal's form; return the error line."""
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    code = main(["sample", "--pdf", str(gr), "--out", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("invdesign: error: "), err
    assert "Traceback" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, .partial or lock
    return err[0][len("invdesign: error: "):]


# (setup of the .gr file, extra options, expected error line; {gr} is the file's path)
CASES = {
    "qdamp-nan": (None, ["--qdamp", "nan"],
                  "{gr}: qdamp (option) must be a finite number in [0, 1] Å^-1, not nan"),
    "biso-inf": (None, ["--biso", "inf"],
                 "{gr}: biso (option) must be a finite number in [0, 10] Å^2, not inf"),
    "qmax-inf": (None, ["--qmax", "inf"],
                 "{gr}: qmax (option) must be a finite number in (0, 100] Å^-1, not inf"),
    "header-qdamp-1e999": (lambda p: _gr(p, header="qdamp = 1e999\n"), [],
                           "{gr}: header value qdamp = inf is not a finite number"),
    "gr-1e300": (_huge, [], "{gr}: |G(r)| reaches 1e+300, above the plausible 1e+06 "
                            "(a broken or mis-scaled file)"),
    "gr-all-zero": (lambda p: _gr(p, g=np.zeros_like(R)), [],
                    "{gr}: G(r) is zero everywhere (no signal)"),
    "negative-r": (lambda p: _gr(p, r=R - 1.0), [],
                   "{gr}: r starts at -1: a negative r is not measured "
                   "(the r column must be >= 0)"),
    "composition-1e9": (None, ["--composition", "Pt1e9"],
                        "composition 'Pt1e9': amount of Pt is 1e+09; amounts must be finite, "
                        "positive and at most 1e+06"),
    "composition-1e400": (None, ["--composition", "Pt1e400"],
                          "composition 'Pt1e400': amount of Pt is inf; amounts must be finite, "
                          "positive and at most 1e+06"),
    "n-100000": (None, ["--n", "100000"],
                 f"--n = 100000 is above the limit {MAX_N} candidates per run (run again with "
                 f"another --seed for more) (allowed [1, {MAX_N}])"),
    "n-zero": (None, ["--n", "0"], f"--n = 0 is below 1 (allowed [1, {MAX_N}])"),
    "refine-top-negative": (None, ["--refine", "--refine-top", "-1"],
                            f"--refine-top = -1 is below 1 (allowed [1, {MAX_N}])"),
    "seed-negative": (None, ["--seed", "-1"], "--seed = -1 is below 0 (allowed [0, 4294967295])"),
    "fit-range-nan": (None, ["--fit-range", "nan", "20"],
                      "--fit-range RMIN must be a finite number in [0, inf], not nan"),
    "fit-range-reversed": (None, ["--fit-range", "20", "2"],
                           "--fit-range 20 2: RMIN must be below RMAX"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, case) -> None:
    make, args, expected = CASES[case]
    gr = make(tmp_path / "x.gr") if make else _gr(tmp_path / "x.gr")
    assert _refused_by_cli(tmp_path, capsys, args, gr) == expected.format(gr=gr)


def test_check_options_returns_checked_values() -> None:
    assert check_options(3, 7, 2, [1.5, 20]) == (3, 7, 2, (1.5, 20.0))
    assert check_options(np.int64(MAX_N), 0, 1) == (MAX_N, 0, 1, None)
    with pytest.raises(InvdesignError, match=r"^--fit-range must be two numbers"):
        check_options(1, 0, 1, (1.0,))


def test_sizing_refuses_flat_and_non_finite_g() -> None:
    with pytest.raises(ValueError, match=r"^G\(r\) is zero everywhere beyond 1.5 Å"):
        estimate_size(R, np.zeros_like(R))
    g = np.sin(R)
    g[10] = np.nan
    with pytest.raises(ValueError, match=r"^G\(r\) holds NaN or inf$"):
        estimate_size(R, g)
    noise = np.where(np.arange(R.size) % 2, 1.0, -1.0) * np.random.default_rng(0).random(R.size)
    with pytest.raises(ValueError, match="does not rise above its point-to-point noise"):
        estimate_size(R, noise)


def test_all_zero_pattern_given_to_the_api_is_refused_in_one_line(tmp_path,
                                                                   tiny_checkpoint) -> None:
    """A `MeasuredPattern` made in Python skips the reader: the size estimate refuses it."""
    pattern = read_pattern(_gr(tmp_path / "x.gr"))
    flat = dataclasses.replace(pattern, y=np.where(pattern.x < 1.0, pattern.y, 0.0))
    with pytest.raises(DataFormatError) as info:
        sample(flat, composition="Pt", checkpoint=tiny_checkpoint, n=2, out=tmp_path / "out")
    assert str(info.value) == (f"{tmp_path / 'x.gr'}: cannot read the particle size off G(r): "
                               "G(r) is zero everywhere beyond 1.5 Å (no signal to size)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.gr"]


def test_patterns_made_in_python_are_checked_like_files(tmp_path) -> None:
    pattern = read_pattern(_gr(tmp_path / "x.gr"))
    cases = [
        ({"qdamp": float("nan")},
         "qdamp (default) must be a finite number in [0, 1] Å^-1, not nan"),
        ({"biso": float("inf")}, "biso (default) must be a finite number in [0, 10] Å^2, not inf"),
        ({"y": np.full_like(pattern.y, 1e300)}, "|G(r)| reaches 1e+300, above the plausible 1e+06 "
                                                "(a broken or mis-scaled file)"),
        ({"x": pattern.x - 1.0}, "r starts at -1: a negative r is not measured "
                                 "(the r column must be >= 0)"),
        ({"x": pattern.x[::-1].copy()}, "x is not strictly increasing"),
    ]
    for change, message in cases:
        with pytest.raises(DataFormatError) as info:
            sample(dataclasses.replace(pattern, **change), n=1, out=tmp_path / "out")
        assert str(info.value) == f"{tmp_path / 'x.gr'}: {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.gr"]


def test_candidates_with_coincident_atoms_are_invalid() -> None:
    stacked = Structure(np.array([29, 29, 29]), np.zeros((3, 3)))
    row = Candidate(0, stacked, rw=0.1, scale=1.0).row()
    assert row["valid"] is False and row["min_distance"] == 0.0
    assert invalid_reason(stacked) == ("atoms overlap: minimum distance 0 Å, below 0.7 x the sum "
                                       "of their atomic radii")
    cell = Structure(np.array([29, 29]), np.zeros((2, 3)), np.eye(3) * 3.6)
    assert Candidate(0, cell, rw=0.1, scale=1.0).row()["valid"] is False
    dimer = Structure(np.array([29, 29]), np.array([[0.0, 0, 0], [2.5, 0, 0]]))
    assert Candidate(0, dimer, rw=0.1, scale=1.0).row()["valid"] is True
    assert invalid_reason(dimer) is None
    lone = Structure(np.array([29]), np.zeros((1, 3)))
    assert invalid_reason(lone, min_atoms=2) == "1 atom; at least 2 needed"
