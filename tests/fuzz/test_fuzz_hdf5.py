"""Truncated and bit-flipped CHILI HDF5 files through `ChiliDataset` (index, then every graph):
each read either succeeds or raises one `InvdesignError` naming the file; never another exception
(issue 22). The tiny folder (`make_tiny_chili3k`, two files) is built and indexed once."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from invdesign.core.errors import InvdesignError
from invdesign.data.dataset import ChiliDataset

FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="session")
def indexed_folder(tiny_chili_folder) -> Path:
    """The tiny folder with its index cache written (a copy then carries a valid cache)."""
    ds = ChiliDataset(tiny_chili_folder)
    assert len(ds) == 4 and (tiny_chili_folder / ".invdesign-index.json").is_file()
    return tiny_chili_folder


def _read_all(folder: Path, name: str) -> None:
    try:
        ds = ChiliDataset(folder)
        for i in range(len(ds)):
            ds.get(i)
    except InvdesignError as exc:
        event("refused")
        assert "\n" not in str(exc), f"multi-line message: {exc!r}"
        assert name in str(exc), f"message does not name the file: {exc}"
    else:
        event("read")


@FAST
@given(which=st.integers(0, 1), fraction=st.floats(0.0, 1.0, exclude_max=True),
       keep_cache=st.booleans())
def test_truncated_file(indexed_folder, tmp_path_factory, which, fraction, keep_cache):
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / "ds"
    shutil.copytree(indexed_folder, folder)
    if not keep_cache:
        (folder / ".invdesign-index.json").unlink()
    victim = sorted(folder.glob("*.h5"))[which]
    victim.write_bytes(victim.read_bytes()[: int(victim.stat().st_size * fraction)])
    _read_all(folder, victim.name)


@FAST
@given(which=st.integers(0, 1), start=st.integers(0, 250_000),
       length=st.sampled_from([1, 16, 512, 4096]), mask=st.sampled_from([0xFF, 0x01, 0x80]))
@example(which=0, start=117, length=16, mask=0xFF)  # found here: h5py's RuntimeError escaped
def test_flipped_bytes_behind_a_valid_cache(indexed_folder, tmp_path_factory, which, start,
                                            length, mask):
    """Same size and mtime as when indexed: the cache is reused, so `get` meets the damage."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / "ds"
    shutil.copytree(indexed_folder, folder)
    victim = sorted(folder.glob("*.h5"))[which]
    stat = victim.stat()
    raw = bytearray(victim.read_bytes())
    start %= len(raw)
    raw[start:start + length] = bytes(b ^ mask for b in raw[start:start + length])
    victim.write_bytes(bytes(raw))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _read_all(folder, victim.name)
