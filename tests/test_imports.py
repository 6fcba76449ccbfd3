"""The package's import graph, function-level imports included, has no cycle: each module can be
read, tested and changed knowing only what it imports."""

import ast
import graphlib
from pathlib import Path

import es_faq

PACKAGE = Path(es_faq.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere in it (`from . import x` names module x)."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(part for part in (base, node.module) if part)
            for alias in node.names:
                found |= {name for name in (f"{target}.{alias.name}", target) if name in modules}
    return found - {here}


def test_no_import_cycle():
    paths = list(PACKAGE.rglob("*.py"))
    modules = {_module(p) for p in paths}
    graph = {_module(p): _imports(p, modules) for p in paths}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_models_does_not_import_training():
    modules = {_module(p) for p in PACKAGE.rglob("*.py")}
    graph = set().union(*(_imports(path, modules) for path in (PACKAGE / "models").rglob("*.py")))
    assert not {m for m in graph if m.startswith("es_faq.train")}
