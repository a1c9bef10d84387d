"""Regenerate `evaluators/property/elemental_references.json` from pymatgen's bundled MP entries.

Run: `python tools/make_elemental_references.py`. pymatgen ships the Materials Project GGA(+U)
computed entries it fits its compatibility corrections on
(`analysis/compatibility/calc_compounds.json.gz`); the 89 single-element entries are the MP
elemental reference phases. Their energy per atom (eV/atom) is mu_i in the CHGNet formation-energy
recipe E_f = E_CHGNet / n - sum_i x_i mu_i. The file moves between pymatgen versions, so the values
are kept in the project.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "evaluators" / "property" / "elemental_references.json"


def main() -> None:
    source = resources.files("pymatgen.analysis.compatibility") / "calc_compounds.json.gz"
    with gzip.open(source) as handle:
        entries = json.load(handle)
    table: dict[str, dict] = {}
    for name, entry in entries.items():
        composition = entry["composition"]
        if len(composition) != 1:
            continue
        ((element, count),) = composition.items()
        table[element] = {
            "energy_per_atom": (entry["energy"] + entry.get("correction", 0.0)) / count,
            "mp_id": entry.get("entry_id"),
            "phase": name,
        }
    payload = {
        "source": "pymatgen/analysis/compatibility/calc_compounds.json.gz "
        "(MP GGA/GGA+U elemental entries)",
        "unit": "eV/atom",
        "elements": dict(sorted(table.items())),
    }
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {OUT} ({len(table)} elements)")


if __name__ == "__main__":
    main()
