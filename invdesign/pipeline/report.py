"""Plain-text report of a sample run: what was taken from where, how, and the ranked table (the
screened Rw, which ranks unrefined candidates, the refined Rw, and the energy screening's eV/atom:
E_f of the material, a particle's excess over it; `summary.csv` also holds `rw`, a particle's Rw
at the measured instrument values, and `formation_energy_basis`)."""

from __future__ import annotations

from invdesign.pipeline.result import SampleResult

COLUMNS = (("rank", "{:>4}"), ("rw_scan", "{:>9.4f}"), ("rw_refined", "{:>10}"),
           ("n_atoms", "{:>7}"), ("composition", "{:<14}"), ("nn_distance", "{:>7.3f}"),
           ("min_distance", "{:>7.3f}"),
           ("valid", "{:>5}"), ("formation_energy_per_atom", "{:>7.3f}"),
           ("particle_excess_energy_per_atom", "{:>7.3f}"), ("source", "{:<15}"),
           ("structure_type", "{:<15}"),
           ("file", "{}"))
HEADERS = {"rw_scan": "rw_screen", "rw_refined": "rw_refined", "nn_distance": "nn (Å)",
           "min_distance": "min (Å)", "structure_type": "type",
           "formation_energy_per_atom": "E_f", "particle_excess_energy_per_atom": "excess"}


def _cell(name: str, fmt: str, value) -> str:
    if value is None or value == "":
        return fmt.replace(".4f", "").replace(".3f", "").format("-")
    if name == "rw_refined":
        return fmt.format(f"{value:.4f}")
    if name == "composition" and len(str(value)) > 14:
        value = str(value)[:13] + "~"
    if name == "valid":
        value = "yes" if value else "no"
    return fmt.format(value)


def table(result: SampleResult, limit: int | None = None) -> str:
    """The ranked candidates as an aligned text table (best first)."""
    rows = result.rows()[:limit]
    headers = dict(HEADERS)
    if result.metric == "Rwp":  # a powder fit ranks: the columns hold Rwp
        headers.update(rw_scan="rwp_screen", rw_refined="rwp_refined")
    head = []
    for name, fmt in COLUMNS:
        width_fmt = fmt.replace(".4f", "").replace(".3f", "")
        head.append(width_fmt.format(headers.get(name, name)))
    lines = ["  ".join(head).rstrip()]
    for row in rows:
        lines.append("  ".join(_cell(n, f, row.get(n)) for n, f in COLUMNS).rstrip())
    return "\n".join(lines)


def report(result: SampleResult, limit: int | None = None, taken: bool = True) -> str:
    """Taken values (what came from where), how the answer was made, and the table."""
    lines = ["taken:"] + [f"  {k}: {v}" for k, v in result.taken.items()] if taken else []
    lines += ["how: " + result.how, f"model: {result.model}"
              + (f" (sha256 {result.checkpoint_hash[:12]})" if result.checkpoint_hash else ""), ""]
    size = result.answers.get("saxs_size")
    if size:
        lines += [f"size (SAXS): diameter {size['diameter']:.1f} Å, polydispersity "
                  f"{size['polydispersity']:.3f} ({size['distribution']} spheres), Rw "
                  f"{size['rw']:.4f}", ""]
    lines.append(table(result, limit) if result.candidates else "no structure candidates")
    if result.out:
        lines += ["", f"written to {result.out}"]
    return "\n".join(lines)
