"""The package's import graph, function-level imports included: no cycle between modules or between
folders, each folder imports only from those below it (docs/design.md, "Layout"), the query stages
import none of the tools around them, and only the entry points import the shells. Each module can
be read, tested and changed knowing only what it imports."""

import ast
import graphlib
from pathlib import Path

import es_faq

PACKAGE = Path(es_faq.__file__).parent

# docs/design.md, "Layout", bottom up: a folder (or top-level module) may import its own layer and
# the layers before it. `es_faq` is the package's __init__ (__version__).
LAYERS = [{"es_faq", "errors", "config"}, {"models"}, {"engine"}, {"search"}, {"kb"}, {"evaluation"}, {"train"},
          {"sync"}, {"api", "cli"}, {"__main__"}]
# The query stages never import these (nor anything built on them).
NOT_FROM_SEARCH = {"kb", "api", "sync", "train", "evaluation", "cli"}
# The shells are imported only by entry points: `python -m es_faq`, and `es-faq serve` for gunicorn's
# configuration file (`from ..api import gunicorn_conf` also runs es_faq/api/__init__.py). Imports
# inside a shell's own folder are its own business.
SHELLS = {"api", "cli"}
ENTRY_POINTS = {("es_faq.__main__", "es_faq.cli"), ("es_faq.cli.serve", "es_faq.api"),
                ("es_faq.cli.serve", "es_faq.api.gunicorn_conf")}


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


def _graph() -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports."""
    paths = list(PACKAGE.rglob("*.py"))
    modules = {_module(p) for p in paths}
    return {_module(p): _imports(p, modules) for p in paths}


def _folder(module: str) -> str:
    """The layer unit a module belongs to: its folder under es_faq/, or the top-level module's name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in graph.items() for b in targets)


def test_no_import_cycle():
    graphlib.TopologicalSorter(_graph()).prepare()  # raises CycleError naming the cycle


def test_no_import_cycle_between_folders():
    folders: dict[str, set[str]] = {}
    for a, b in _edges(_graph()):
        folders.setdefault(_folder(a), set())
        if _folder(a) != _folder(b):
            folders[_folder(a)].add(_folder(b))
    graphlib.TopologicalSorter(folders).prepare()  # raises CycleError naming the folders


def test_every_folder_has_a_layer():
    layered = set().union(*LAYERS)
    assert {_folder(m) for m in _graph()} == layered, "add the new folder to LAYERS and to docs/design.md, Layout"


def test_no_upward_import():
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    upward = [f"{a} imports {b}" for a, b in _edges(_graph()) if layer[_folder(b)] > layer[_folder(a)]]
    assert not upward, "imports against docs/design.md's Layout:\n" + "\n".join(upward)


def test_query_stages_import_no_tools_or_shells():
    bad = [f"{a} imports {b}" for a, b in _edges(_graph())
           if _folder(a) == "search" and _folder(b) in NOT_FROM_SEARCH]
    assert not bad, "\n".join(bad)


def test_only_entry_points_import_the_shells():
    bad = [f"{a} imports {b}" for a, b in _edges(_graph())
           if _folder(b) in SHELLS and _folder(a) != _folder(b) and (a, b) not in ENTRY_POINTS]
    assert not bad, "\n".join(bad)


def test_models_does_not_import_training():
    graph = _graph()
    imported = set().union(*(targets for module, targets in graph.items() if _folder(module) == "models"))
    assert not {m for m in imported if m.startswith("es_faq.train")}
