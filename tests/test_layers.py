"""The import graph of ``revprof/`` points only down: engine <- services <- command line.

Every ``import revprof...`` / ``from revprof... import`` in every module (at any depth, including
imports inside functions) is an edge. ``docs/architecture.md`` describes the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "revprof"

# Rank of each top-level module or package of revprof; an import may only go to a rank <= its own.
FOUNDATION = {"errors", "units", "interrupts", "bounds", "redaction", "processes"}
ENGINE = {"spec", "network", "recipe", "nn", "losses", "step", "environment", "memory", "__init__"}
SERVICES = {"data", "evaluation", "train", "sweep", "report", "bench"}
COMMAND_LINE = {"cli", "__main__"}
RANK = {
    **{name: 0 for name in FOUNDATION},
    **{name: 1 for name in ENGINE},
    **{name: 2 for name in SERVICES},
    **{name: 3 for name in COMMAND_LINE},
}
LAYER_NAMES = {0: "foundation", 1: "engine", 2: "services", 3: "command line"}


def _unit_of_file(path: Path, package: Path = PACKAGE) -> str:
    """``revprof/memory/measure.py`` -> ``memory``; ``revprof/spec.py`` -> ``spec``."""
    parts = path.relative_to(package).parts
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def _unit_of_module(module: str) -> str | None:
    """``revprof.memory.measure`` -> ``memory``; ``revprof`` -> ``__init__``; others -> None."""
    parts = module.split(".")
    if parts[0] != "revprof":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def import_edges(package: Path = PACKAGE) -> list[tuple[str, str, str, int]]:
    """``(from_unit, to_unit, file, line)`` for every revprof-internal import under ``package``."""
    edges = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        source = _unit_of_file(path, package)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: relative import; use absolute imports"
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                target = _unit_of_module(module)
                if target is not None and target != source:
                    edges.append((source, target, str(path.relative_to(package.parent)), node.lineno))
    return edges


def test_every_unit_has_a_layer():
    units = {_unit_of_file(path) for path in PACKAGE.rglob("*.py")}
    assert units - RANK.keys() == set(), "add each new top-level module to a layer in this test"


def test_imports_point_only_down():
    upward = [
        f"{file}:{line}: {source} ({LAYER_NAMES[RANK[source]]}) imports {target} "
        f"({LAYER_NAMES[RANK[target]]})"
        for source, target, file, line in import_edges()
        if RANK[target] > RANK[source]
    ]
    assert upward == []


def test_no_cycles_between_packages():
    graph: dict[str, set[str]] = {}
    for source, target, _, _ in import_edges():
        graph.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(
        {" <-> ".join(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a, {b})}
    )
    assert cycles == []


def test_the_checker_sees_upward_imports_inside_functions(tmp_path):
    """The checker itself, on a small tree: a function-level upward import is an edge."""
    package = tmp_path / "revprof"
    (package / "memory").mkdir(parents=True)
    (package / "memory" / "measure.py").write_text(
        "from revprof.spec import ArchSpec\n\ndef f():\n    from revprof.train.settings import X\n"
    )
    edges = import_edges(package)
    assert [(s, t) for s, t, _, _ in edges] == [("memory", "spec"), ("memory", "train")]
    assert [line for *_, line in edges] == [1, 4]
