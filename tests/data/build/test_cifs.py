"""CIF cleaning (each rejection kind with its reason) and the `cifs` builder."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from pymatgen.core import Lattice
from pymatgen.core import Structure as PmgStructure
from pymatgen.io.cif import CifWriter

from invdesign.cli.main import main
from invdesign.core.errors import InvdesignError
from invdesign.data.build.cif_cleaning import MAX_ATOMS, clean_cif, read_cif_atoms
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


# ------------------------------------------------------------- reader, close contacts, atom limit
def symmetric_cifs() -> dict[str, str]:
    """Symmetrised CIFs (pymatgen's writer: asymmetric unit + the space group's operations) and
    files with duplicate and mixed sites, for comparing the reader with `ase.io.read`."""
    rocksalt = PmgStructure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rutile = PmgStructure.from_spacegroup(
        "P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]])
    wurtzite = PmgStructure.from_spacegroup(
        "P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"], [[1 / 3, 2 / 3, 0],
                                                             [1 / 3, 2 / 3, 0.382]])
    texts = {name: str(CifWriter(s, symprec=0.01)) for name, s in
             [("rocksalt", rocksalt), ("rutile", rutile), ("wurtzite", wurtzite)]}
    sites = texts["rocksalt"].rstrip("\n")
    # an O listed twice, and a Mg at an image of the first Mg: both dropped, as ASE drops them
    texts["duplicates"] = sites + "\n  O  O2  4  0.0  0.0  0.5  1\n  Mg  Mg3  4  0.5  0.5  0.0  1\n"
    texts["mixed"] = cif_text(4.0, [("Zn1", "Zn", 0, 0, 0, 0.6), ("Cu1", "Cu", 0, 0, 0, 0.4),
                                    ("O1", "O", 0.5, 0.5, 0.5, 1.0)])
    return texts


SYMMETRIC = symmetric_cifs()


@pytest.mark.parametrize("name", list(SYMMETRIC))
def test_reader_keeps_the_atoms_ase_keeps(tmp_path, name) -> None:
    path = write(tmp_path, name, SYMMETRIC[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = read(path, format="cif")
    atoms, _ = read_cif_atoms(path)
    assert atoms.get_chemical_symbols() == expected.get_chemical_symbols()
    np.testing.assert_allclose(atoms.get_scaled_positions(), expected.get_scaled_positions(),
                               atol=1e-12)
    np.testing.assert_allclose(atoms.cell[:], expected.cell[:], atol=1e-12)


def test_symmetric_cells_give_their_conventional_atom_counts(tmp_path) -> None:
    # 'mixed': Zn 0.6 and Cu 0.4 on one site are one atom (the dominant Zn), as in ASE
    counts = {name: len(read_cif_atoms(write(tmp_path, name, text))[0])
              for name, text in SYMMETRIC.items()}
    assert counts == {"rocksalt": 8, "rutile": 6, "wurtzite": 4, "duplicates": 8, "mixed": 2}


def test_close_contact_reason_names_the_minimum_image_distance(tmp_path) -> None:
    # 0.9 Å apart through the periodic boundary (x = 0.05 and 0.95 of a 9 Å cell)
    text = cif_text(9.0, [("Zn1", "Zn", 0.05, 0, 0, 1.0), ("O1", "O", 0.95, 0, 0, 1.0)])
    result = clean_cif(write(tmp_path, "wrapped", text))
    assert result.reason == "atoms closer than 1.2 Å (minimum distance 0.900 Å)"


def grid_text(n: int, spacing: float = 2.5) -> str:
    """A P1 cubic cell of `n` atoms (Zn and O alternating) on a simple cubic grid."""
    k = int(np.ceil(n ** (1 / 3)))
    idx = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
    elements = np.where(idx.sum(1) % 2, "Zn", "O")
    frac = (idx + 0.5) / k
    sites = zip(elements, frac, strict=True)
    return cif_text(spacing * k, [(f"{el}{m}", str(el), x, y, z, 1.0)
                                  for m, (el, (x, y, z)) in enumerate(sites)])


def test_large_cell_is_kept_whole_and_its_close_pair_found(tmp_path) -> None:
    result = clean_cif(write(tmp_path, "grid", grid_text(2000)))
    assert result.ok and result.structure.n_atoms == 2000
    assert sorted(set(result.structure.species.tolist())) == [8, 30]
    # the same cell with one atom 1.0 Å from its neighbour (grid spacing 2.5 Å)
    lines = grid_text(2000).splitlines()
    label, el, x, y, z, occ = lines[-1].split()
    lines[-1] = " ".join([label, el, x, y, f"{float(z) - 1.5 / (2.5 * 13):.6f}", occ])
    result = clean_cif(write(tmp_path, "grid_close", "\n".join(lines) + "\n"))
    assert result.reason == "atoms closer than 1.2 Å (minimum distance 1.000 Å)"


def test_cells_above_the_atom_limit_are_refused_with_the_limit(tmp_path) -> None:
    result = clean_cif(write(tmp_path, "grid", grid_text(30)), max_atoms=20)
    assert result.reason == (
        "unit cell of 30 atoms, above the limit of 20 (clean_cif(max_atoms=...) raises it)")
    # 2 listed sites that the space group expands to 8 atoms
    result = clean_cif(write(tmp_path, "rocksalt", SYMMETRIC["rocksalt"]), max_atoms=7)
    assert result.reason == (
        "unit cell of 8 atoms, above the limit of 7 (clean_cif(max_atoms=...) raises it)")
    assert clean_cif(write(tmp_path, "rocksalt", SYMMETRIC["rocksalt"]), max_atoms=8).ok
    assert MAX_ATOMS == 5000
