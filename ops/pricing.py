"""Dataflow's list prices, in US dollars: the ONE table ops/cost.py estimates a job's cost from.

For us-central1 (Iowa), Dataflow (not Dataflow Prime), on-demand (no committed use discounts),
from https://cloud.google.com/dataflow/pricing. Each figure names its source in SOURCES, which
the report's footer prints:

  BEAM_COPY  the figures Apache Beam copies from that page for its own cost benchmarks
             (apache_beam/testing/load_tests/dataflow_cost_consts.py in Beam 2.77, the one in
             requirements.lock). Beam's copy, not the page: the page renders its tables by
             script, so this project has never read them there.
  PAGE       a figure Beam does not copy, taken from the page's Streaming Engine section as
             of its date; no copy on disk to compare it with.

Compare with the page before relying on a figure, and update the figure and its source.
Not in the table, so never in an estimate (ops/cost.py says "not estimated"): other regions
(ops/cost.py falls back to FALLBACK_REGION and says it does), Dataflow Prime DCUs, GPUs,
FlexRS discounts, snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICING_URL = "https://cloud.google.com/dataflow/pricing"
BEAM_COPY = (
    "Apache Beam 2.77's copy of the pricing page "
    "(apache_beam/testing/load_tests/dataflow_cost_consts.py), not compared with the page"
)
PAGE_DATE = "2026-12-07"
PAGE = f"{PRICING_URL} as of {PAGE_DATE} (not in Beam's copy; compare with the page)"


@dataclass(frozen=True)
class Prices:
    """One region's prices. Worker prices differ for batch and streaming jobs."""

    vcpu_hour: dict  # "batch" | "streaming" -> $ per vCPU-hour
    memory_gb_hour: dict  # "batch" | "streaming" -> $ per GB-hour of worker memory
    pd_standard_gb_hour: float  # $ per GB-hour of standard Persistent Disk
    pd_ssd_gb_hour: float  # $ per GB-hour of SSD Persistent Disk
    shuffle_gb: float  # $ per GB of Dataflow Shuffle data processed (batch)
    streaming_engine_gb: float  # $ per GB of Streaming Engine data processed (streaming)
    # $ per Streaming Engine compute unit-hour: resource-based billing, which at-least-once
    # streaming always uses; None where the table has no figure.
    streaming_engine_cu_hour: float | None


PRICES = {
    "us-central1": Prices(
        vcpu_hour={"batch": 0.056, "streaming": 0.069},
        memory_gb_hour={"batch": 0.003557, "streaming": 0.0035557},
        pd_standard_gb_hour=0.000054,
        pd_ssd_gb_hour=0.000298,
        shuffle_gb=0.011,
        streaming_engine_gb=0.018,
        streaming_engine_cu_hour=0.089,
    ),
}
# Where each field's figures come from (every field of Prices has one).
SOURCES = {
    "vcpu_hour": BEAM_COPY,
    "memory_gb_hour": BEAM_COPY,
    "pd_standard_gb_hour": BEAM_COPY,
    "pd_ssd_gb_hour": BEAM_COPY,
    "shuffle_gb": BEAM_COPY,
    "streaming_engine_gb": BEAM_COPY,
    "streaming_engine_cu_hour": PAGE,
}
# The region whose prices stand in for one the table does not have (the estimate says so).
FALLBACK_REGION = "us-central1"


def prices_for(region: str | None) -> tuple[str, Prices]:
    """(the region whose prices apply, its prices): the job's own, else FALLBACK_REGION's."""
    if region in PRICES:
        return region, PRICES[region]
    return FALLBACK_REGION, PRICES[FALLBACK_REGION]
