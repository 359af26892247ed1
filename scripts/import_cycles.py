"""Import cycles among the project's modules (grimp's graph, Tarjan's strongly connected
components): `.venv/bin/python scripts/import_cycles.py`. Prints each cycle's size and
members; the layering contracts in pyproject.toml keep the parser families out of them."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def components(graph: grimp.ImportGraph) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.find_modules_directly_imported_by(node):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            found.append(component)

    sys.setrecursionlimit(100_000)
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return sorted((c for c in found if len(c) > 1), key=len, reverse=True)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("lims", "cells", "samples", "depositions", cache_dir=None)
    cycles = components(graph)
    print(f"{len(graph.modules)} modules, {len(cycles)} import cycles")
    for cycle in cycles:
        print(f"  {len(cycle)}: {', '.join(sorted(cycle))}")


if __name__ == "__main__":
    main()
