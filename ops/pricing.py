"""Dataflow's list prices, in US dollars: the ONE table ops/cost.py estimates a job's cost from.

Source: https://cloud.google.com/dataflow/pricing ("Pricing details"), for us-central1 (Iowa),
Dataflow (not Dataflow Prime), on-demand (no committed use discounts). The figures are the
ones Apache Beam copies from that page for its own cost benchmarks
(apache_beam/testing/load_tests/dataflow_cost_consts.py in Beam 2.77, and
org.apache.beam.it.gcp.LoadTestBase, which agree); checked on PRICES_DATE. The page itself
renders its tables by script, so the copies this project can search did not show them:
compare with the page before relying on a figure, and update this table and PRICES_DATE.

Not in the table, so never in an estimate (ops/cost.py says so when a job used them): other
regions (ops/cost.py falls back to FALLBACK_REGION and says it does), Streaming Engine compute
units (resource-based billing), Dataflow Prime DCUs, GPUs, FlexRS discounts, snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICING_URL = "https://cloud.google.com/dataflow/pricing"
PRICES_DATE = "2026-12-02"


@dataclass(frozen=True)
class Prices:
    """One region's prices. Worker prices differ for batch and streaming jobs."""

    vcpu_hour: dict  # "batch" | "streaming" -> $ per vCPU-hour
    memory_gb_hour: dict  # "batch" | "streaming" -> $ per GB-hour of worker memory
    pd_standard_gb_hour: float  # $ per GB-hour of standard Persistent Disk
    pd_ssd_gb_hour: float  # $ per GB-hour of SSD Persistent Disk
    shuffle_gb: float  # $ per GB of Dataflow Shuffle data processed (batch)
    streaming_engine_gb: float  # $ per GB of Streaming Engine data processed (streaming)


PRICES = {
    "us-central1": Prices(
        vcpu_hour={"batch": 0.056, "streaming": 0.069},
        memory_gb_hour={"batch": 0.003557, "streaming": 0.0035557},
        pd_standard_gb_hour=0.000054,
        pd_ssd_gb_hour=0.000298,
        shuffle_gb=0.011,
        streaming_engine_gb=0.018,
    ),
}
# The region whose prices stand in for one the table does not have (the estimate says so).
FALLBACK_REGION = "us-central1"


def prices_for(region: str | None) -> tuple[str, Prices]:
    """(the region whose prices apply, its prices): the job's own, else FALLBACK_REGION's."""
    if region in PRICES:
        return region, PRICES[region]
    return FALLBACK_REGION, PRICES[FALLBACK_REGION]
