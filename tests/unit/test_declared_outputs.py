"""Every DoFn of `pipelines/` that declares its output type declares what Beam would infer.

Beam infers an undeclared output type while the graph is built, by interpreting the
bytecode of `process` and of what it calls (~14 ms for mnist's _ToOutputsFn alone), at every
launch. Declaring it spares the launcher that work; declaring anything else would change
the PCollection's coder, and with it the graph a running stream job is updated with."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.typehints import trivial_inference, typehints
from apache_beam.typehints.decorators import get_type_hints

PACKAGE = Path(__file__).resolve().parents[2] / "pipelines"


def declaring_dofns() -> list[type]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = importlib.import_module(name.removesuffix(".__init__"))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, beam.DoFn):
                continue
            if get_type_hints(cls).output_types:
                found.append(cls)
    return found


def inferred_output(cls: type) -> object:
    """What Beam infers for `cls`'s main output when nothing is declared."""
    returned = trivial_inference.infer_return_type(cls.process, [typehints.Any, typehints.Any])
    return trivial_inference.element_type(returned)


def test_the_search_finds_the_declaring_dofns():
    names = {cls.__name__ for cls in declaring_dofns()}
    assert {"_ToOutputsFn", "_FailedBatchFn", "_MeasureFn", "_FailedInferenceFn"} <= names


@pytest.mark.parametrize("cls", declaring_dofns(), ids=lambda cls: cls.__qualname__)
def test_a_declared_output_type_is_what_beam_infers(cls):
    declared = get_type_hints(cls).simple_output_type(cls.__name__)
    assert declared == inferred_output(cls)


def test_the_check_tells_a_wrong_declaration():
    # The control: a declaration that is not what Beam infers is told apart.
    @beam.typehints.with_output_types(tuple[str, str, bytes])
    class Wrong(beam.DoFn):
        def process(self, element):
            yield element, element, element

    declared = get_type_hints(Wrong).simple_output_type("Wrong")
    assert declared != inferred_output(Wrong)
