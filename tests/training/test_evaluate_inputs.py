"""`invdesign evaluate` refuses data it cannot measure (issue 22): a NaN in a stored pattern ends as
one line naming the file, exit code 2, no traceback and no metrics written."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from invdesign.cli.main import main
from invdesign.core.errors import DataFormatError
from invdesign.core.tasks import TaskSpec
from invdesign.data.datamodule import TaskData
from invdesign.testing import make_tiny_chili3k
from invdesign.training.evaluate import check_finite


def test_evaluate_on_nan_patterns_exits_2_with_one_line(tmp_path, tiny_checkpoint, capsys):
    data = make_tiny_chili3k(tmp_path / "ds", metals=("Zn",), crystal_types=("RockSalt",),
                             radii=(3.0,))
    (h5,) = sorted(data.glob("*.h5"))
    with h5py.File(h5, "r+") as f:
        for size in f["ScatteringData"].values():
            size["xPDF"][1, 100] = np.nan
    out = tmp_path / "metrics.json"
    code = main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(data),
                 "--split", "all", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith(f"invdesign: error: {h5}: xPDF pattern of graph ")
    assert err[0].endswith("holds NaN or inf (1 of 1 graphs); evaluation refuses non-finite data")
    assert not out.exists()


def _data(**changes: torch.Tensor) -> TaskData:
    n = 2
    fields = {"patterns": {"xPDF": torch.zeros(n, 4)}, "target": torch.zeros(n, 3, 3),
              "mask": torch.tensor([[True, True, False]] * n), "cell_params": torch.ones(n, 6),
              "pattern_range": {"xPDF": torch.ones(n, 2)}}
    for key, value in changes.items():
        if key in ("patterns", "pattern_range"):
            fields[key] = {"xPDF": value}
        else:
            fields[key] = value
    return TaskData(TaskSpec.parse("xPDF->pos_abs"), fields["patterns"], fields["target"],
                    fields["mask"], torch.zeros(n, 3, dtype=torch.long), torch.full((n,), 2),
                    fields["cell_params"], [10, 11], [{"size_key": "3Å"}, {"size_key": "5Å"}],
                    fields["pattern_range"])


def test_check_finite_names_the_first_bad_row() -> None:
    check_finite(_data(), ["a.h5", "b.h5"])  # finite: nothing raised
    padded = torch.zeros(2, 3, 3)
    padded[:, 2] = float("nan")  # padding slots are not data
    check_finite(_data(target=padded), ["a.h5", "b.h5"])
    bad = torch.zeros(2, 3, 3)
    bad[1, 0, 0] = float("inf")
    with pytest.raises(DataFormatError) as info:
        check_finite(_data(target=bad), ["a.h5", "b.h5"])
    assert str(info.value) == ("b.h5: coordinates of graph 5Å holds NaN or inf (1 of 2 graphs); "
                               "evaluation refuses non-finite data")
    cells = torch.ones(2, 6)
    cells[0, 3] = float("nan")
    with pytest.raises(DataFormatError, match=r"^a.h5: cell parameters of graph 3Å"):
        check_finite(_data(cell_params=cells), ["a.h5", "b.h5"])
