"""The pedestrian detector's graph file, checked at launch without TensorFlow (hypothesis:
any bytes, the real graph cut short or changed, graphs that lack a node): a graph that holds
every node the detector takes, or one line, exit 2, before any worker tries to load it.
docs/boundaries.md lists it."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.models import MODELS_DIR_ENV
from pipelines.pedestrian import ssd
from pipelines.pedestrian.detector import GRAPH_RELATIVE_PATH, default_graph_path
from pipelines.pedestrian.options import DetectorMissing, check_detector_installed, graph_problem
from tests.support import markers
from tests.support.hostile import one_line


def length_delimited(value: bytes) -> bytes:
    """Field 1, wire type 2: the key, the length as a varint, the bytes."""
    size, out = len(value), bytearray(b"\x0a")
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    return bytes(out) + bytes([size]) + value


def node(name: bytes) -> bytes:
    """A NodeDef with only its name (field 1), as a GraphDef's repeated field 1 holds it."""
    return length_delimited(length_delimited(name))


def graph(names) -> bytes:
    return b"".join(node(name.encode()) for name in names)


NODES = sorted(ssd.GRAPH_NODES)


@functools.cache
def real_graph() -> bytes:
    return default_graph_path().read_bytes()


def test_a_graph_of_the_detectors_nodes_passes_and_one_without_one_is_named():
    assert graph_problem(graph(NODES + ["other"])) is None
    problem = graph_problem(graph(NODES[1:]))
    assert problem == f"a graph without the detector's node {NODES[0]!r}"
    assert graph_problem(b"") == f"a graph without the detector's node {NODES[0]!r} and " + (
        f"{len(NODES) - 1} more"
    )


@given(
    st.binary(max_size=300)
    | st.lists(st.sampled_from(NODES) | st.text(max_size=10), max_size=len(NODES) + 2).map(graph)
    | st.builds(
        lambda data, cut: data[:cut],
        st.lists(st.sampled_from(NODES)).map(graph),
        st.integers(0, 2000),
    )
)
def test_any_graph_file_passes_or_says_why_in_one_line(data):
    problem = graph_problem(data)
    if problem is not None:
        one_line(problem)


@markers.needs_detector
@given(st.integers(0, 12_000_000), st.integers(0, 255))
def test_the_real_graph_passes_and_a_changed_byte_passes_or_says_why(cut, value):
    assert graph_problem(real_graph()) is None
    changed = bytearray(real_graph()[: cut + 1])
    changed[-1] = value
    problem = graph_problem(bytes(changed))
    assert problem is None or "\n" not in problem


def test_a_garbage_graph_is_one_line_at_launch(tmp_path, monkeypatch):
    target = tmp_path / GRAPH_RELATIVE_PATH
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\x0a\xff\xff\xff\xff\x0f not a graph")
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    with pytest.raises(DetectorMissing) as refused:
        check_detector_installed()
    assert "is not a TensorFlow graph" in str(refused.value)
    one_line(str(refused.value))
