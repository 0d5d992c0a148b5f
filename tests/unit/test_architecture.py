"""The layers of `pipelines/` hold: read from the source's imports, the way the next engineer
would draw them.

    core/    parameters, launch, checks, dead letters: imports no job, no domain, no IO
    io/      text, Pub/Sub, tables: the same graph on every runner
    local/   the DirectRunner stream runtime: imported by the launch only
    jobs/    one module per template: TEMPLATE, preflight, build_pipeline
    words/, mnist/, pedestrian/   domain code: pure functions and composites

(That building any template's graph imports no TensorFlow is
tests/integration/test_launch_imports.py: it needs a fresh process per template.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipelines.registry import TEMPLATES

PACKAGE = Path(__file__).resolve().parents[2] / "pipelines"
DOMAINS = ("words", "mnist", "pedestrian")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every pipelines module `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "pipelines"}


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {
    name: {i for i in _imports(path) if i in MODULES} - {name} for name, path in MODULES.items()
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


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


def test_the_local_runtime_is_imported_by_the_launch_only():
    importers = {
        module
        for module, imported in GRAPH.items()
        if _layer(module) != "local" and any(_layer(i) == "local" for i in imported)
    }
    assert importers <= {"pipelines.core.launch"}, importers


def test_core_and_io_import_no_job_and_no_domain():
    for module, imported in GRAPH.items():
        if _layer(module) in ("core", "io"):
            wrong = {i for i in imported if _layer(i) in ("jobs", *DOMAINS)}
            # The launch finds a template's job through the registry, at run time only.
            wrong -= {"pipelines.registry"}
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
        assert "run" not in functions, f"{name}: entry files call launch.run_template"
