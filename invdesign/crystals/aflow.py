"""The AFLOW prototypes as structure types: a broad library beside the curated one.

pymatgen ships the 288 prototypes of the AFLOW Library of Crystallographic Prototypes
(`pymatgen/analysis/prototypes/aflow_prototypes.json.gz`: structure, AFLOW label,
Strukturbericht designation, mineral name). Each becomes a `StructureType` through
`library.type_from_structure`: every atom a site, the prototype's own lattice, roles from its
elements (the most electronegative non-metal is the anion role 'X', so Co2Si (C37) takes Rb2S
with S on the Si sites: an anti-type comes with the prototype whose anion is the minority).
Named `aflow_<label>` (with the Strukturbericht designation or mineral when the label is
shared), source 'aflow'. Prototypes spglib cannot read are left out.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import warnings
from functools import cache
from pathlib import Path

from pymatgen.core import Structure as PmgStructure

from invdesign.core.errors import InvdesignError
from invdesign.crystals.library import StructureType, type_from_structure

SOURCE = "aflow"


def prototype_entries() -> list[dict]:
    """pymatgen's AFLOW prototype records (`snl`, `tags`), read without importing
    `pymatgen.analysis.prototypes` (its import takes about 15 s)."""
    spec = importlib.util.find_spec("pymatgen.analysis.prototypes")
    if spec is None or not spec.submodule_search_locations:
        raise InvdesignError("pymatgen's AFLOW prototype file is missing; reinstall pymatgen")
    path = Path(list(spec.submodule_search_locations)[0]) / "aflow_prototypes.json.gz"
    with gzip.open(path) as handle:
        return json.load(handle)


def _name(tags: dict, taken: set[str]) -> str:
    """`aflow_<label>`, then the Strukturbericht designation or mineral when the label is taken."""
    base = f"aflow_{tags['aflow']}".lower()
    for extra in ("", tags.get("strukturbericht") or "", tags.get("mineral") or ""):
        name = f"{base}_{extra}".lower().replace(" ", "-") if extra else base
        if name not in taken:
            return name
    k = 2
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


@cache
def aflow_types() -> tuple[StructureType, ...]:
    """The AFLOW prototypes pymatgen ships, as structure types, in its file's order."""
    out: list[StructureType] = []
    taken: set[str] = set()
    for entry in prototype_entries():
        tags = entry["tags"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen warns about provenance fields
            pmg = PmgStructure.from_dict(entry["snl"])
        if not pmg.is_ordered:
            continue
        described = ", ".join(v for v in (tags.get("strukturbericht"), tags.get("mineral")) if v)
        name = _name(tags, taken)
        try:
            stype = type_from_structure(pmg, name, SOURCE,
                                        note=f"AFLOW prototype {tags['aflow']}"
                                        + (f" ({described})" if described else ""))
        except InvdesignError:
            continue
        taken.add(name)
        out.append(stype)
    return tuple(out)
