"""The layers of `pipelines/` hold: read from the source's imports, the way the next engineer
would draw them. An import by name (importlib.import_module) counts as an import of every
module its file names in a string, so the registry's jobs are edges too.

    registry    template name -> job: the top; imports the launch and the jobs
    core/    parameters, launch, checks, dead letters: imports no job, no domain, no IO
    io/      text, Pub/Sub, tables: the same graph on every runner
    jobs/    one module per template: TEMPLATE, preflight, build_pipeline
    */parameters.py   every Parameter, declared once; jobs only list them
    words/, mnist/, pedestrian/   domain code: pure functions and composites

and beside it, never imported by it (the launch finds it through an entry point):

    local_runtime/   the DirectRunner stream runtime, not in the image

(That building any template's graph imports no TensorFlow is
tests/integration/test_launch_imports.py: it needs a fresh process per template.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pipelines.registry import TEMPLATES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "local_runtime")
DOMAINS = ("words", "mnist", "pedestrian")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_by_name(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
        )
        for node in ast.walk(tree)
    )


def _imports(path: Path) -> set[str]:
    """Every module of ours `path` imports, at module level or inside a function, by an
    import statement or by name (then every module named in one of its strings)."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    if _imports_by_name(tree):
        found |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    return {name for name in found if name.split(".")[0] in PACKAGES}


MODULES = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
GRAPH = {
    name: {i for i in _imports(path) if i in MODULES} - {name} for name, path in MODULES.items()
}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "pipelines":
        return parts[0]
    return parts[1] if len(parts) > 1 else ""


def test_imports_by_name_are_edges():
    # The registry imports every job by name: the graph must see those imports.
    assert {f"pipelines.jobs.{name}" for name in TEMPLATES} <= GRAPH["pipelines.registry"]


def test_no_import_circles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]):
        state[module] = 1
        for imported in sorted(GRAPH[module]):
            if state.get(imported) == 1:
                circle = path[path.index(imported) :] + [imported]
                pytest.fail("import circle: " + " -> ".join(circle))
            if imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_product_never_imports_the_local_runtime():
    importers = {
        module
        for module, imported in GRAPH.items()
        if module.startswith("pipelines") and any(_layer(i) == "local_runtime" for i in imported)
    }
    assert not importers, importers
    # Not even by a name held in a string (an import by name of a computed string).
    naming = [
        module
        for module, path in MODULES.items()
        if module.startswith("pipelines") and re.search(r"\blocal_runtime\.\w", path.read_text())
    ]
    assert not naming, naming


def test_nothing_imports_the_registry():
    importers = {m for m, imported in GRAPH.items() if "pipelines.registry" in imported}
    assert not importers, importers


def test_core_and_io_import_no_job_and_no_domain():
    for module, imported in GRAPH.items():
        if _layer(module) in ("core", "io"):
            wrong = {i for i in imported if _layer(i) in ("jobs", "registry", *DOMAINS)}
            assert not wrong, f"{module} imports {sorted(wrong)}"


def test_jobs_import_no_other_job_and_domains_import_no_job():
    for module, imported in GRAPH.items():
        jobs = {i for i in imported if _layer(i) == "jobs" and i != "pipelines.jobs"}
        if _layer(module) in ("jobs", *DOMAINS):
            assert not jobs, f"{module} imports {sorted(jobs)}"


def test_every_template_is_a_job_module_of_one_shape():
    for name, module in TEMPLATES.items():
        assert module == f"pipelines.jobs.{name}"
        tree = ast.parse(MODULES[module].read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"preflight", "build_pipeline"} <= functions, name
        assert "run" not in functions, f"{name}: entry files call registry.run_template"
        (preflight,) = [n for n in tree.body if getattr(n, "name", None) == "preflight"]
        # What the job needs of the launch comes as arguments, the same for every job.
        assert [a.arg for a in preflight.args.args] == ["args", "options"], name
        assert [a.arg for a in preflight.args.kwonlyargs] == ["on_dataflow"], name


def test_parameters_are_declared_in_parameters_modules_only():
    """One convention: a template's parameters are declared in its packages' `parameters.py`
    (module constants; a function where a family's words differ per template), and a job
    module only lists them in its TEMPLATE."""
    declaring = set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Parameter":
                declaring.add(module)
    allowed = {m for m in MODULES if m.endswith(".parameters")} | {"pipelines.core.params"}
    assert declaring <= allowed, sorted(declaring - allowed)
    assert {"pipelines.io.parameters", "pipelines.mnist.parameters"} <= declaring
