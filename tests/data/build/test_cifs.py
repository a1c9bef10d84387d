"""CIF cleaning (each rejection kind with its reason) and the `cifs` builder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from invdesign.cli.main import main
from invdesign.core.errors import InvdesignError
from invdesign.data.build.cif_cleaning import clean_cif
from invdesign.data.build.cifs import build_cifs
from invdesign.data.build.runner import REPORT_NAME
from invdesign.data.hdf5_io import read_chili_file


def cif_text(a: float, sites: list[tuple[str, str, float, float, float, float]]) -> str:
    """A P1 cubic CIF (edge `a` Å) with sites (label, element, x, y, z, occupancy)."""
    rows = "\n".join(f"{lab} {el} {x} {y} {z} {occ}" for lab, el, x, y, z, occ in sites)
    return f"""data_test
_cell_length_a {a}
_cell_length_b {a}
_cell_length_c {a}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
_symmetry_Int_Tables_number 1
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
{rows}
"""


GOOD = cif_text(3.0, [("Zn1", "Zn", 0, 0, 0, 1.0), ("O1", "O", 0.5, 0.5, 0.5, 1.0)])
BAD = {
    "unreadable": ("this is not a CIF file\n_cell_length_a oops\nloop_\n", "unreadable"),
    "partial": (
        cif_text(3.0, [("Zn1", "Zn", 0, 0, 0, 0.5), ("O1", "O", 0.5, 0.5, 0.5, 1.0)]),
        "partial occupancy 0.5",
    ),
    "close": (
        cif_text(4.0, [("Zn1", "Zn", 0, 0, 0, 1.0), ("O1", "O", 0.25, 0, 0, 1.0)]),
        "closer than 1.2",
    ),
    "outside": (
        cif_text(3.0, [("U1", "U", 0, 0, 0, 1.0), ("O1", "O", 0.5, 0.5, 0.5, 1.0)]),
        "outside the allowed set: U",
    ),
    "nometal": (
        cif_text(3.0, [("S1", "S", 0, 0, 0, 1.0), ("O1", "O", 0.5, 0.5, 0.5, 1.0)]),
        "no metal",
    ),
}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.cif"
    path.write_text(text)
    return path


def test_good_cif_passes(tmp_path) -> None:
    result = clean_cif(write(tmp_path, "good", GOOD))
    assert result.ok and result.reason == ""
    assert sorted(result.structure.species.tolist()) == [8, 30]
    assert result.structure.min_distance() == pytest.approx(3.0 * 3**0.5 / 2)


@pytest.mark.parametrize("kind", list(BAD))
def test_each_bad_kind_rejected_with_reason(tmp_path, kind: str) -> None:
    text, reason = BAD[kind]
    result = clean_cif(write(tmp_path, kind, text))
    assert not result.ok and reason in result.reason


def test_build_writes_good_and_reports_every_rejection(tmp_path) -> None:
    cif_dir = tmp_path / "cifs"
    cif_dir.mkdir()
    write(cif_dir, "good", GOOD)
    for kind, (text, _) in BAD.items():
        write(cif_dir, kind, text)
    out = tmp_path / "out"
    summary = build_cifs(cif_dir, out, radii=[3.0], simulate=False, progress=False)
    assert [p.name for p in out.glob("*.h5")] == ["good.h5"]
    record = read_chili_file(out / "good.h5")
    assert record.crystal_type == "Unknown" and record.space_group_number == 221
    with open(out / REPORT_NAME) as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert rows["good"]["status"] == "written"
    for kind, (_, reason) in BAD.items():
        assert rows[kind]["status"] == "rejected" and reason in rows[kind]["reason"]
    assert summary.count("rejected") == len(BAD)


def test_no_usable_cif_is_an_error(tmp_path) -> None:
    write(tmp_path, "bad", BAD["unreadable"][0])
    with pytest.raises(InvdesignError, match="no usable CIF"):
        build_cifs(tmp_path, tmp_path / "out", radii=[3.0], simulate=False, progress=False)
    assert "unreadable" in (tmp_path / "out" / REPORT_NAME).read_text()


def test_empty_folder_is_an_error(tmp_path) -> None:
    with pytest.raises(InvdesignError, match="no \\*.cif files"):
        build_cifs(tmp_path, tmp_path / "out", progress=False)


def test_cli_reports_an_unreadable_cif_and_builds_the_rest(tmp_path, capsys) -> None:
    cif_dir = tmp_path / "cifs"
    cif_dir.mkdir()
    write(cif_dir, "good", GOOD)
    write(cif_dir, "broken", BAD["unreadable"][0])
    out = tmp_path / "out"
    argv = ["data", "build", "cifs", "--cif-dir", str(cif_dir), "--out", str(out)]
    code = main([*argv, "--radii", "3", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert captured.out.startswith("1 written, 0 exists, 1 rejected, 0 failed")
    assert [p.name for p in out.glob("*.h5")] == ["good.h5"]
    with open(out / REPORT_NAME) as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert rows["broken"]["status"] == "rejected" and "unreadable" in rows["broken"]["reason"]
    assert rows["good"]["status"] == "written"
