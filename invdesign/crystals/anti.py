"""Anti-types: a binary structure type with the anion on the other role's sites.

A binary ionic type (one cation role, one anion role 'X') also exists with the roles swapped: NiAs
(B8_1) gives anti-NiAs, where the anion sits on the octahedral sites and the cation in trigonal
prisms; rock salt or CsCl give themselves again (their duplicates collapse in the pool). A binary
type without an anion role (an intermetallic prototype such as Ni2In) hosts an ionic compound with
either role as the anion: Rb2S on the In sites of Ni2In is the anti-Ni2In ("filled anti-NiAs")
high-pressure phase of the alkali sulfides. Named '<type>:anti' and '<type>:X=<role>'; the
variant keeps the type's sites, lattice, space group and source, and no longer hosts all-metal
compositions (its anion role takes a non-metal, `library.placements`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from invdesign.crystals.library import Site, StructureType


def role_swaps(types: Iterable[StructureType]) -> list[StructureType]:
    """The anti-types of the binary types among `types` (see the module docstring)."""
    out = []
    for stype in types:
        if len(stype.roles) != 2:
            continue
        anions = stype.anion_roles
        first, second = stype.roles
        if len(anions) == 1:
            cation = second if first == anions[0] else first
            # the example's anion stays the example of the anion role (now on the cation's
            # sites), so the radius scaling of its cation-anion contacts is unchanged
            out.append(_relabelled(stype, "anti", {anions[0]: "A", cation: "X"},
                                   {"X": stype.species[anions[0]], "A": stype.species[cation]}))
        elif not anions:
            out.extend(_relabelled(stype, f"X={role}", {role: "X", other: "A"})
                       for role, other in ((first, second), (second, first)))
    return out


def _relabelled(stype: StructureType, tag: str, mapping: dict[str, str],
                species: dict[str, int] | None = None) -> StructureType:
    """`stype` with its roles renamed by `mapping` (every role named); `species` the example's
    element per new role (default: each role keeps its element)."""
    return replace(
        stype, name=f"{stype.name}:{tag}",
        roles={mapping[r]: n for r, n in stype.roles.items()},
        sites=tuple(Site(mapping[s.role], s.wyckoff, s.xyz) for s in stype.sites),
        species=species or {mapping[r]: z for r, z in stype.species.items()},
        metallic=False, note=(f"{stype.note}; " if stype.note else "") + f"roles swapped ({tag})")
