"""The evaluator registry: evaluators are found by name, their packages imported on first lookup."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators import base
from invdesign.evaluators.base import (
    Evaluator,
    build_evaluator,
    evaluator_class,
    evaluator_names,
    register_evaluator,
)


def _fresh(code: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter; it prints one JSON line, returned."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lookup_imports_the_package_of_the_name_only() -> None:
    """'forward' is found without importing it by hand, and without the property package."""
    out = _fresh(
        "import json, sys\n"
        "from invdesign.evaluators.base import evaluator_class\n"
        "before = sorted(m for m in sys.modules if m.startswith('invdesign.evaluators.'))\n"
        "cls = evaluator_class('forward')\n"
        "prop = [m for m in sys.modules if m.startswith('invdesign.evaluators.property')]\n"
        "print(json.dumps({'before': before, 'cls': cls.__name__, 'prop': prop}))\n"
    )
    assert out == {"before": ["invdesign.evaluators.base"], "cls": "ForwardEvaluator",
                   "prop": []}


def test_lookup_of_a_name_without_its_own_package_discovers_all() -> None:
    out = _fresh(
        "import json\n"
        "from invdesign.evaluators.base import evaluator_class\n"
        "cls = evaluator_class('formation_energy')\n"
        "print(json.dumps([cls.__module__, cls.__name__]))\n"
    )
    assert out == ["invdesign.evaluators.property.evaluator", "FormationEnergyEvaluator"]


def test_names_list_every_shipped_evaluator() -> None:
    assert evaluator_names() == ["chgnet_formation_energy", "formation_energy", "forward",
                                 "particle_excess"]
    assert evaluator_class("forward").name == "forward"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(InvdesignError, match=r"unknown evaluator 'nope'; available: "
                                             r"chgnet_formation_energy, formation_energy, forward, "
                                             r"particle_excess$"):
        evaluator_class("nope")


def test_register_and_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base.REGISTRY, "classes", dict(base.REGISTRY.classes))

    @register_evaluator("atom_count")
    class AtomCount(Evaluator):
        def __init__(self, offset: int = 0) -> None:
            self.offset = offset

        def evaluate(self, structures: Sequence[Structure]) -> list[dict[str, Any]]:
            return [{"n_atoms": s.n_atoms + self.offset} for s in structures]

    pair = Structure([78, 78], [[0.0, 0.0, 0.0], [2.77, 0.0, 0.0]])
    assert build_evaluator("atom_count", offset=1).evaluate([pair]) == [{"n_atoms": 3}]
    assert AtomCount.name == "atom_count"
    register_evaluator("atom_count")(AtomCount)  # the same class again: allowed

    class Other(AtomCount):
        pass

    with pytest.raises(ValueError, match="'atom_count' registered twice"):
        register_evaluator("atom_count")(Other)
