"""Corrupted copies of a tiny safetensors generator checkpoint (the `tiny_checkpoint` fixture):
bytes of the header flipped, the file cut short, metadata entries replaced by values of any JSON
type. Loading either succeeds or raises one `CheckpointError`/`InvdesignError`; never another
exception, never an absurd allocation (issue 22)."""

from __future__ import annotations

import json
import struct

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from invdesign.core.errors import InvdesignError
from invdesign.generators.base import Generator
from invdesign.generators.checkpoint import load_checkpoint

FAST = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

WIDTH_KEYS = ["hidden", "aux_hidden", "aux_points", "species_rank"]
OTHER_HPARAM_KEYS = ["n_layers", "species_vocab", "coord_loss", "nosuch"]
TOP_KEYS = ["format", "version", "generator", "task", "hparams", "config", "metrics"]
SMALL_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 300),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
#: Absurd widths (one allocation each: refused by the schema, else stopped by the memory guard).
#: Absurd depths are not drawn: an unchecked loop over 10^7 layers would take minutes to fail.
ABSURD = st.sampled_from([10**7, 10**9, 10**12, 2**63, -10**7])


def _load_checked(path, memory_guard) -> None:
    try:
        with memory_guard():
            generator = load_checkpoint(path)
    except InvdesignError as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc) and "\n" not in str(exc), f"multi-line message: {exc!r}"
    else:
        event("loaded")
        assert isinstance(generator, Generator)


@FAST
@given(data=st.data())
def test_flipped_header_bytes(tiny_checkpoint, tmp_path_factory, memory_guard, data):
    raw = bytearray(tiny_checkpoint.read_bytes())
    header_end = 8 + struct.unpack("<Q", bytes(raw[:8]))[0]
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, header_end - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.getbasetemp() / "flipped.safetensors"
    path.write_bytes(bytes(raw))
    _load_checked(path, memory_guard)


@FAST
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_file(tiny_checkpoint, tmp_path_factory, memory_guard, fraction):
    raw = tiny_checkpoint.read_bytes()
    path = tmp_path_factory.getbasetemp() / "truncated.safetensors"
    path.write_bytes(raw[: int(len(raw) * fraction)])
    _load_checked(path, memory_guard)


@settings(FAST, max_examples=40)
@given(where=st.sampled_from(["width", "hparams", "top"]), key=st.data(),
       value=st.one_of(SMALL_JSON, ABSURD))
def test_edited_metadata(tiny_checkpoint, tmp_path_factory, memory_guard, where, key, value):
    with safe_open(str(tiny_checkpoint), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (no iterator)
    doc = json.loads(meta["invdesign"])
    if where == "width":
        doc["hparams"][key.draw(st.sampled_from(WIDTH_KEYS))] = value
    elif where == "hparams":
        doc["hparams"][key.draw(st.sampled_from(OTHER_HPARAM_KEYS))] = key.draw(SMALL_JSON)
    else:
        doc[key.draw(st.sampled_from(TOP_KEYS))] = key.draw(SMALL_JSON)
    meta["invdesign"] = json.dumps(doc)
    path = tmp_path_factory.getbasetemp() / "edited.safetensors"
    save_file(tensors, str(path), metadata=meta)
    _load_checked(path, memory_guard)


def test_unedited_copy_loads(tiny_checkpoint, memory_guard):
    """The base of the edits loads (so refusals above come from the corruption)."""
    with memory_guard():
        generator = load_checkpoint(tiny_checkpoint)
    assert generator.hparams()["hidden"] == 16
