"""ops.cost.report over recorded gcloud answers (tests/support/recorded: `jobs describe` and
`metrics list --source=all`, in gcloud's JSON shapes) and over hostile ones."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops import cost, pricing
from ops.answers import AT_LEAST_ONCE
from tests.support.processes import REPO
from tests.support.properties import PROPERTY

RECORDED = REPO / "tests" / "support" / "recorded"


def recorded(name: str) -> tuple[dict, list]:
    return (
        json.loads((RECORDED / f"{name}.describe.json").read_text()),
        json.loads((RECORDED / f"{name}.metrics.json").read_text()),
    )


def metric(metrics: list, name: str) -> float:
    """The committed value of one of Dataflow's job metrics in a recorded answer."""
    return next(
        m["scalar"]
        for m in metrics
        if m["name"]["origin"] == "dataflow/v1b3"
        and m["name"]["name"] == name
        and "tentative" not in m["name"]["context"]
    )


def line(report: str, label: str) -> str:
    return next(row for row in report.splitlines() if row.strip().startswith(label))


def amount(row: str) -> float:
    return float(re.search(r"\s([\d,]+\.\d+) ", row)[1].replace(",", ""))


def price(row: str) -> float:
    return float(re.search(r"\$([\d,]+\.\d+)$", row)[1].replace(",", ""))


def test_a_finished_batch_job_at_its_own_regions_batch_prices():
    job, metrics = recorded("mnist_batch_done")
    report = cost.report(job, metrics)
    prices = pricing.PRICES["us-central1"]
    vcpu_hours = metric(metrics, "TotalVcpuTime") / 3600
    memory_gb_hours = metric(metrics, "TotalMemoryUsage") / 1024 / 3600
    disk_gb_hours = metric(metrics, "TotalPdUsage") / 3600
    shuffle_gb = metric(metrics, "BillableShuffleDataProcessed")  # not the total: billed
    assert amount(line(report, "vCPU")) == pytest.approx(vcpu_hours, abs=5e-4)
    assert amount(line(report, "memory")) == pytest.approx(memory_gb_hours, abs=5e-4)
    assert amount(line(report, "disk (standard)")) == pytest.approx(disk_gb_hours, abs=5e-4)
    assert amount(line(report, "Shuffle data processed (billable)")) == pytest.approx(
        shuffle_gb, abs=5e-4
    )
    expected = (
        vcpu_hours * prices.vcpu_hour["batch"]
        + memory_gb_hours * prices.memory_gb_hour["batch"]
        + disk_gb_hours * prices.pd_standard_gb_hour
        + shuffle_gb * prices.shuffle_gb
    )
    assert price(line(report, "estimate")) == pytest.approx(expected, abs=1e-4)
    assert f"at us-central1 list prices ({pricing.PRICING_URL}); each from:" in report
    assert (
        "    vCPU, memory, disk (standard), disk (SSD), Shuffle data processed (billable): "
        + pricing.BEAM_COPY
    ) in report.splitlines()
    assert "not in the price table" not in report
    # The job's own counters, summed over steps, the committed values; and they add up.
    assert re.search(r"mnist/dead_letters +12$", report, re.M)  # 11 parse + 1 inference
    assert "mnist: rows_read 10,012 = predictions 10,000 + dead_letters 12: they add up" in report
    assert "BeamML_TF/inference_batch_latency" not in report  # a distribution, not a count
    assert "tentative" not in report


def test_a_running_stream_job_outside_the_table_says_whose_prices_it_uses():
    job, metrics = recorded("mnist_stream_running")
    report = cost.report(job, metrics)
    prices = pricing.PRICES[pricing.FALLBACK_REGION]
    assert "europe-west1" not in pricing.PRICES
    assert (
        "note: the job's region europe-west1 is not in the price table (ops/pricing.py): "
        f"priced at {pricing.FALLBACK_REGION}'s prices instead"
    ) in report
    vcpu = line(report, "vCPU")
    assert price(vcpu) == pytest.approx(
        metric(metrics, "TotalVcpuTime") / 3600 * prices.vcpu_hour["streaming"], abs=1e-4
    )
    # The summary view (no --full) has no environment: the billing mode is unknown.
    assert line(report, "Streaming Engine data processed").endswith("not estimated")
    assert line(report, "Streaming Engine compute units").endswith("not estimated")
    assert "describe without --full" in report
    # With the full view's environment of an exactly-once job: billed by data processed.
    job["environment"] = {"streamingMode": "STREAMING_MODE_EXACTLY_ONCE"}
    report = cost.report(job, metrics)
    data = line(report, "Streaming Engine data processed")
    assert price(data) == pytest.approx(
        metric(metrics, "TotalStreamingDataProcessed") * prices.streaming_engine_gb, abs=1e-4
    )
    assert line(report, "Streaming Engine compute units").endswith("not billed")
    # Still running: what is read and not yet out is in flight, not missing.
    assert (
        "mnist: rows_read 36,120 = predictions 36,010 + dead_letters 42 + 68 still in the job "
        "(JOB_STATE_RUNNING)"
    ) in report


def test_a_drained_job_whose_counts_do_not_add_up_says_so():
    job, metrics = recorded("pedestrian_stream_drained")
    report = cost.report(job, metrics)
    assert (
        "pedestrian: frames_read 5,000 != frames_processed 4,990 + dead_letters 8: they DO NOT "
        "add up (2 missing)"
    ) in report
    # Resource-based billing: data processed is shown, not billed; compute units are priced.
    assert line(report, "Streaming Engine data processed").endswith("not billed")
    units = line(report, "Streaming Engine compute units")
    assert price(units) == pytest.approx(
        metric(metrics, "TotalSeCuUsage") * pricing.PRICES["us-central1"].streaming_engine_cu_hour,
        abs=1e-4,
    )
    assert "billed by compute units, not by data processed" in report
    assert f"    Streaming Engine compute units: {pricing.PAGE}" in report.splitlines()


@pytest.mark.parametrize(
    "at_least_once",
    [
        {"streamingMode": "STREAMING_MODE_AT_LEAST_ONCE"},
        # launched by ops/flex run with the experiment, before Dataflow filled the field in
        {"experiments": [AT_LEAST_ONCE]},
    ],
)
def test_an_at_least_once_job_is_billed_by_compute_units_whatever_the_flag_says(at_least_once):
    job, metrics = recorded("pedestrian_stream_drained")
    job["environment"].pop("useStreamingEngineResourceBasedBilling")
    job["environment"].pop("streamingMode", None)
    job["environment"].update(at_least_once)
    report = cost.report(job, metrics)
    assert line(report, "Streaming Engine data processed").endswith("not billed")
    assert line(report, "Streaming Engine compute units").startswith("  Streaming Engine")
    assert "$" in line(report, "Streaming Engine compute units")


def test_a_figure_the_table_lacks_is_not_estimated_never_a_number(monkeypatch):
    job, metrics = recorded("pedestrian_stream_drained")
    with_units = cost.report(job, metrics)
    table = dict(pricing.PRICES)
    table["us-central1"] = dataclasses.replace(table["us-central1"], streaming_engine_cu_hour=None)
    monkeypatch.setattr(pricing, "PRICES", table)
    report = cost.report(job, metrics)
    assert line(report, "Streaming Engine compute units").endswith("not estimated")
    assert "so not estimated: Streaming Engine compute units" in report
    assert pricing.PAGE not in report  # no figure priced from that source
    assert price(line(report, "estimate")) < price(line(with_units, "estimate"))


def test_every_price_names_its_source():
    fields = {f.name for f in dataclasses.fields(pricing.Prices)}
    assert set(pricing.SOURCES) == fields
    assert all(source for source in pricing.SOURCES.values())


def test_resource_billing_without_compute_units_says_they_are_left_out():
    job, metrics = recorded("pedestrian_stream_drained")
    metrics = [m for m in metrics if m["name"]["name"] != "TotalSeCuUsage"]
    report = cost.report(job, metrics)
    assert "Dataflow has not reported TotalSeCuUsage" in report


def test_the_same_drained_job_with_counts_that_add_up():
    job, metrics = recorded("pedestrian_stream_drained")
    for m in metrics:
        if m["name"]["name"] == "frames_processed":
            m["scalar"] = 4992
    assert "frames_read 5,000 = frames_processed 4,992 + dead_letters 8: they add up" in (
        cost.report(job, metrics)
    )


def tentative(entries: list, more: float = 0) -> list:
    """The entries `metrics list --tentative` adds beside the committed ones."""
    added = copy.deepcopy(entries)
    for entry in added:
        entry["name"]["context"]["tentative"] = "true"
        if "scalar" in entry:
            entry["scalar"] += more
    return added


def test_committed_counts_win_over_tentative_ones_and_tentative_alone_is_said():
    job, metrics = recorded("mnist_batch_done")
    assert not any("tentative" in m["name"]["context"] for m in metrics)  # gcloud's default
    with_tentative = metrics + tentative(metrics, more=1000)
    assert cost.report(job, with_tentative) == cost.report(job, metrics)
    report = cost.report(job, tentative(metrics))
    assert "note: some counts are tentative" in report
    assert "mnist: rows_read 10,012 = predictions 10,000 + dead_letters 12" in report


def test_a_job_that_has_reported_nothing_yet():
    report = cost.report(
        {"id": "2026-12-01_x", "name": "mnist_stream", "currentState": "JOB_STATE_PENDING"}, []
    )
    assert "Dataflow has not reported TotalVcpuTime, TotalMemoryUsage, TotalPdUsage" in report
    assert "none reported (yet)" in report
    assert "the job's region (unknown) is not in the price table" in report


def test_every_balanced_namespace_and_counter_is_one_the_jobs_count():
    sources = "\n".join(p.read_text() for p in Path(REPO, "pipelines").rglob("*.py"))
    from pipelines.mnist.transforms import METRICS_NAMESPACE as MNIST
    from pipelines.pedestrian.transforms import METRICS_NAMESPACE as PEDESTRIAN

    assert set(cost.BALANCES) == {MNIST, PEDESTRIAN}
    for read, outcomes in cost.BALANCES.values():
        for name in (read, *outcomes):
            # Metrics.counter(METRICS_NAMESPACE, "name") or a module's _counter("name")
            assert re.search(rf'counter\((?:METRICS_NAMESPACE, )?"{name}"\)', sources), name


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = (
    scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=8), scalars)
)
metric_entries = st.fixed_dictionaries(
    {
        "name": st.fixed_dictionaries(
            {
                "name": st.sampled_from(["TotalVcpuTime", "rows_read", "predictions", "x"])
                | st.text(max_size=10),
                "origin": st.sampled_from(["dataflow/v1b3", "user", "other"]),
                "context": st.dictionaries(
                    st.sampled_from(["namespace", "step", "tentative"]),
                    st.sampled_from(["mnist", "pedestrian", "true", "s1"]) | st.text(max_size=5),
                ),
            }
        ),
        "scalar": json_values,
    }
)


@PROPERTY
@given(
    job=st.dictionaries(
        st.sampled_from(["id", "type", "location", "currentState", "environment"]), json_values
    )
    | json_values,
    metrics=st.lists(metric_entries | json_values, max_size=12),
)
def test_the_report_never_fails_on_whatever_gcloud_answers(job, metrics):
    assert cost.report(job, metrics).startswith("Job ")
