"""Regenerate `invdesign/core/resources/elements.csv` from the `mendeleev` package.

Run: `python tools/make_element_table.py`. The table is shipped so that importing invdesign does not
open mendeleev's database (2 s per process, paid again in every worker of a parallel build).
Columns: atomic_number, symbol, atomic_radius (Slater, pm), atomic_weight (u), electron_affinity
(eV, missing -> 0.0, as CHILI's node features need a number), metallic_radius (pm, empty
when unknown).
"""

from pathlib import Path

from mendeleev.fetch import fetch_table

OUT = Path(__file__).resolve().parents[1] / "invdesign" / "resources" / "elements.csv"


def main() -> None:
    table = fetch_table("elements")
    cols = [
        "atomic_number",
        "symbol",
        "atomic_radius",
        "atomic_weight",
        "electron_affinity",
        "metallic_radius",
    ]
    table = table[cols].copy()
    table["electron_affinity"] = table["electron_affinity"].fillna(0.0)
    table.to_csv(OUT, index=False, float_format="%.6g")
    print(f"wrote {OUT} ({len(table)} elements)")


if __name__ == "__main__":
    main()
