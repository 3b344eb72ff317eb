"""The import graph of the project's own modules, read from the source (function-level imports included): no
import circle, and models/ stays below the rest, so a model can be read and tested without the pipeline."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "utils", "utils_pickaback", "packnet_models", "packnet_models_pickaback", "tools", "tools/bench")


def module_name(path):
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported_names(path):
    """Every module name an import statement of the file could mean (`from utils import paths` may be utils.paths)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def import_graph():
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).glob("*.py")
             if p.name != "__init__.py"}
    files |= {module_name(p): p for p in ROOT.glob("*.py")}
    return {module: {name for name in imported_names(path) if name in files and name != module}
            for module, path in files.items()}


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for name in graph[todo.pop()] - seen:
            seen.add(name)
            todo.append(name)
    return seen


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    circles = sorted(module for module in graph if module in reachable(graph, module))
    assert circles == []


def test_models_never_reach_a_module_that_imports_models():
    graph = import_graph()
    for model in (m for m in graph if m.startswith("models.")):
        above = sorted(d for d in reachable(graph, model)
                       if not d.startswith("models.") and any(n.startswith("models.") for n in graph[d]))
        assert above == [], f"{model} imports {above}, which import models"


def test_the_graph_sees_the_imports_it_judges():
    graph = import_graph()
    assert {"models.masking", "utils.errors"} <= graph["models.cpg"] and "models.cpg" in graph["utils.checkpoint"]


def test_utils_never_reach_utils_pickaback():
    """utils/ is the shared plumbing below ModelDiff's package: what needs both (the report, the results table, the
    transfer control) lives in tools/."""
    graph = import_graph()
    for module in (m for m in graph if m.startswith("utils.")):
        above = sorted(d for d in reachable(graph, module) if d.startswith("utils_pickaback."))
        assert above == [], f"{module} reaches {above}"


def test_the_command_lines_offer_the_architectures_the_models_build():
    from models.cpg import ARCHS as BUILT
    from utils.cli import ARCHS as OFFERED
    assert set(OFFERED) == set(BUILT)


def test_module_docstrings_say_what_and_why_in_fifteen_lines():
    """Details and measurements live in docs/, where they are kept current; a module's docstring only points there."""
    files = [p for package in PACKAGES + ("run_pickaback",) for p in (ROOT / package).glob("*.py")]
    long = {}
    for path in files + list(ROOT.glob("*.py")):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and body[0].end_lineno - body[0].lineno + 1 > 15:
            long[module_name(path)] = body[0].end_lineno - body[0].lineno + 1
    assert len(files) > 50 and long == {}
