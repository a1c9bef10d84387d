"""Check the import architecture: import-linter's contracts (pyproject.toml) and no import cycles.

    python tools/check_imports.py

Runs `lint-imports` (the layers contract and the DebyeCalculator contract), then looks for import
cycles between modules in grimp's graph (Tarjan's algorithm; imports under `TYPE_CHECKING` do not
count, as they never run). Exit status 0 when every contract is kept and there is no cycle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def cycles() -> list[list[str]]:
    """Strongly connected groups of two or more modules in invdesign's import graph."""

    graph = grimp.build_graph(
        "invdesign", include_external_packages=False, exclude_type_checking_imports=True
    )
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(root: str) -> None:  # iterative Tarjan
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def main() -> int:
    lint = subprocess.run(["lint-imports", "--no-cache"], cwd=REPO, capture_output=True, text=True)
    out = lint.stdout
    print(out[out.find("Contracts"):] if lint.returncode == 0 else out, lint.stderr, sep="", end="")
    found = cycles()
    for group in found:
        print("import cycle:", " <-> ".join(group))
    print(f"import cycles: {len(found)}")
    return 1 if lint.returncode or found else 0


if __name__ == "__main__":
    sys.exit(main())
