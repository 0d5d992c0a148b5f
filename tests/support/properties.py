"""Settings every property test shares: the issue asks for at least 1,000 examples each,
in CI as locally, with no per-example deadline (a loaded 2-core CI machine is slow)."""

from hypothesis import HealthCheck, settings

PROPERTY = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
