"""Settings every property test shares: no per-example deadline (a loaded 2-core CI machine
is slow). The number of examples comes from the hypothesis profile tests/conftest.py loads:
1,000 each in CI (CI=true), 100 locally."""

from hypothesis import HealthCheck, settings

PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
