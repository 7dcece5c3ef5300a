#!/usr/bin/env python3
"""Fails when src/ breaks its dependency rules (docs/architecture.md): run by the test suite.

- Subsystems (src/<dir>) depend on each other in one direction only: no cycle among them.
- The data plane and the DNS directory see snapshots only: src/proxy and src/dns include nothing of
  src/store, src/api, src/compile or src/fleet.
- The snapshot stands without the store: src/snapshot includes nothing of src/store or src/compile.
- The web console (src/console) goes through the API: it includes nothing of src/store, src/compile, src/proxy,
  src/snapshot, src/fleet or src/dns.
- Modules (a .h and its .cpp) form no include cycle.

usage: scripts/check_dependencies.py [SRC_DIR]
"""
import collections
import os
import re
import sys

FORBIDDEN = {
    "proxy": {"store", "api", "compile", "fleet"},
    "dns": {"store", "api", "compile", "fleet"},
    "snapshot": {"store", "compile"},
    # The console sees the control plane only through the API, and the data plane through what exe hands it.
    "console": {"store", "compile", "proxy", "snapshot", "fleet", "dns"},
}
INCLUDE = re.compile(r'\s*#\s*include\s+"([^"]+)"')


def module_graph(src):
    graph = collections.defaultdict(set)
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith((".h", ".cpp")):
                continue
            path = os.path.join(root, name)
            module = os.path.splitext(os.path.relpath(path, src))[0]
            graph[module]
            with open(path, encoding="utf-8") as f:
                for line in f:
                    m = INCLUDE.match(line)
                    if m and os.path.exists(os.path.join(src, m.group(1))):
                        target = os.path.splitext(m.group(1))[0]
                        if target != module:
                            graph[module].add(target)
    return graph


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(max(1000, 4 * len(graph)))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    modules = module_graph(src)
    subsystems = collections.defaultdict(set)
    problems = []
    for module, targets in modules.items():
        for target in targets:
            a, b = module.split("/")[0], target.split("/")[0]
            if a == b:
                continue
            subsystems[a].add(b)
            if b in FORBIDDEN.get(a, ()):
                problems.append(f"{module} includes {target}: src/{a} must not depend on src/{b}")
    for component in cycles(subsystems):
        problems.append("subsystems depend on each other in a cycle: " + ", ".join(sorted(component)))
    for component in cycles(modules):
        problems.append("modules include each other in a cycle: " + ", ".join(sorted(component)))
    for problem in problems:
        print("check_dependencies: " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
