"""The plan of `sample`: which candidate sources (`sources.SOURCES`) contribute to the pool, the
checkpoint each model source samples, the notes on sources left out, and `produce`, which makes
the pool's structures (each model conditioned on the patterns on its own grid)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.generators.checkpoint import load_checkpoint
from invdesign.pipeline.inputs import ModelInput, model_inputs
from invdesign.pipeline.inputs import describe as describe_inputs
from invdesign.pipeline.outputs import OutputFolder
from invdesign.pipeline.sources import (
    SOURCES,
    CandidateSource,
    ModelMissing,
    PoolInputs,
    SourceContext,
)


def load_generator(path: Path, device: str = "cpu"):
    """The generator of a checkpoint (`load_checkpoint`; the registry imports only its package)."""
    return load_checkpoint(path, device=device)


def label(checkpoint: Path) -> str:
    """A checkpoint's name: its folder's (for a weights file, the folder holding it)."""
    return checkpoint.parent.name if checkpoint.is_file() else checkpoint.name


@dataclass(frozen=True)
class Part:
    """One source of the pool; `checkpoint`: the checkpoint it samples (None: known structures)."""

    source: CandidateSource
    checkpoint: Path | None


@dataclass(frozen=True)
class Plan:
    """The sources of the pool.

    Attributes:
        parts: the sources that apply, in production order.
        notes: why a source that would apply was left out (a checkpoint not installed).
    """

    parts: tuple[Part, ...]
    notes: tuple[str, ...] = ()

    @property
    def checkpoints(self) -> list[Path]:
        """The checkpoints sampled, in order (each once)."""
        return list(dict.fromkeys(p.checkpoint for p in self.parts if p.checkpoint is not None))

    @property
    def model_name(self) -> str:
        """The sampled checkpoints' folder names ('+'-joined), else 'known structures'."""
        return "+".join(label(c) for c in self.checkpoints) or "known structures"

    @property
    def methods(self) -> list[str]:
        """The sentences on the methods of the sources (each once)."""
        return list(dict.fromkeys(p.source.method for p in self.parts if p.source.method))

    def text(self, counts: Sequence[int] | None = None) -> str:
        """One sentence: the sources of the pool, with how many structures each made."""
        words = []
        for i, part in enumerate(self.parts):
            what = (f"samples of {label(part.checkpoint)}" if part.checkpoint is not None
                    else f"{part.source.name} structures")
            words.append(what if counts is None else f"{counts[i]} {what}")
        return ", ".join(words) + "".join(f" ({note})" for note in self.notes)


def make_plan(inputs: PoolInputs, loaded: Path,
              sources: Sequence[CandidateSource] | None = None) -> Plan:
    """Every source that applies to `inputs`; a model source whose checkpoint is not installed
    is left out with a note (raised when no other source applies).

    Args:
        inputs: composition, size, the loaded generator's task, the library.
        loaded: the checkpoint the run loaded.
        sources: the sources asked (default: `SOURCES`, read at the call).
    """
    sources = SOURCES if sources is None else sources
    parts: list[Part] = []
    notes: list[str] = []
    missing: ModelMissing | None = None
    for source in sources:
        if not source.applies(inputs):
            continue
        try:
            parts.append(Part(source, source.checkpoint(inputs, loaded)))
        except ModelMissing as err:
            notes.append(err.note)
            missing = missing or err
    if not parts:
        if missing is not None:
            raise missing
        raise InvdesignError("no candidate source applies (give --composition or a PDF)")
    return Plan(tuple(parts), tuple(notes))


def produce(plan: Plan, inputs: PoolInputs, loaded: tuple[Path, Any], patterns: dict[str, Any],
            taken: dict[str, str], folder: OutputFolder | None, say: Callable[[str], None], *,
            n: int, seed: int, device: str, sampling: Mapping[str, Any]
            ) -> tuple[list[Structure], list[str], list[int]]:
    """Every structure of the plan's sources, notes on model sources left out (the data do not
    cover their grid; raised when no other source contributes), and the count of each part.

    Args:
        loaded: the checkpoint the run loaded and its generator.
        patterns: kind -> measured pattern; taken: the run's 'taken' values (model inputs added).
        folder: where the input plots go (None: nowhere).
        n: samples per generator; seed, device, sampling: of the generators' `sample`.
    """
    made: list[Structure] = []
    counts: list[int] = []
    notes = list(plan.notes)
    plotted = False
    refused: InvdesignError | None = None
    for part in plan.parts:
        generator, inputs_ = None, {}
        if part.checkpoint is not None:
            generator = (loaded[1] if part.checkpoint == loaded[0]
                         else load_generator(part.checkpoint, device=device))
            try:
                inputs_ = model_inputs(patterns, generator.task, inputs.size, check=True)
            except InvdesignError as err:
                if len(plan.parts) == 1:
                    raise
                refused = refused or err
                notes.append(f"{label(part.checkpoint)} not sampled: {err}")
                say(f"{label(part.checkpoint)} not sampled: {err}")
                counts.append(0)
                continue
            if not plotted:
                _input_plots(patterns, inputs_, taken, folder, say, used=True)
                plotted = True
        context = SourceContext(inputs, generator, inputs_, seed, device, sampling, say)
        batch = list(part.source.candidates(context, n))
        say(f"{part.source.name}: {len(batch)} structures")
        made += batch
        counts.append(len(batch))
    if not made and refused is not None:
        raise refused
    if not plotted:
        try:
            shown = model_inputs(patterns, loaded[1].task, inputs.size, check=False)
        except InvdesignError:
            shown = {}
        _input_plots(patterns, shown, {}, folder, say, used=False)
    return made, notes, counts


def _input_plots(patterns, inputs: dict[str, ModelInput], taken: dict[str, str],
                 folder: OutputFolder | None, say: Callable[[str], None], used: bool) -> None:
    """`input_<kind>.png` of each model input in `folder`; its description into `taken`."""
    if used:
        for key, value in describe_inputs(inputs).items():
            taken[key] = value
            say(f"{key}: {value}")
    if folder is not None:
        for inp in inputs.values():
            folder.write_input_plot(patterns[inp.kind], inp, used=used)
