"""ops/monitoring's files: each parses strictly as Google's own proto (Dashboard of
google-cloud-monitoring-dashboards, AlertPolicy of google-cloud-monitoring), names only
metrics of Google's Dataflow and Pub/Sub lists (ops.monitoring.METRICS), aligns each the way
its kind allows, and watches what the catalog's stream templates read and write."""

from __future__ import annotations

import json
import re

import pytest
from google.cloud.monitoring_dashboard_v1.types import Dashboard
from google.cloud.monitoring_v3.types import AlertPolicy
from google.protobuf import json_format

from ops import monitoring
from ops.lab import Catalog

PROJECT = "lab-project-123"
CATALOG = Catalog.from_registry()
FILES = sorted(p.relative_to(monitoring.HERE).as_posix() for p in monitoring.HERE.rglob("*.json"))
# Aligners that take a rate or difference: for DELTA and CUMULATIVE metrics only.
CHANGE_ALIGNERS = {"ALIGN_RATE", "ALIGN_DELTA"}


def strict(document, message_type):
    """Parses as the proto, refusing any field the proto does not have."""
    message = message_type.pb()()
    json_format.Parse(json.dumps(document), message, ignore_unknown_fields=False)
    return message


def rendered() -> list[tuple[str, dict, type]]:
    found = [("dashboard", monitoring.dashboard(CATALOG, PROJECT), Dashboard)]
    for name, policy in monitoring.policies(
        CATALOG, PROJECT, ["projects/p/notificationChannels/1"]
    ):
        found.append((name, policy, AlertPolicy))
    return found


def test_the_files_are_the_ones_the_docstring_lists():
    assert FILES == [
        "batch_widgets.json",
        "dashboard.json",
        "policies/backlog_age.json",
        "policies/dead_letters.json",
        "policies/job_failed.json",
        "stream_widgets.json",
    ]
    for name in FILES:
        assert name.rsplit("/", 1)[-1] in monitoring.__doc__


@pytest.mark.parametrize("name", FILES)
def test_each_file_as_written_parses_strictly_as_its_proto(name):
    document = monitoring.load(name)
    if name.startswith("policies/"):
        strict(document, AlertPolicy)
    elif name == "dashboard.json":
        strict(document, Dashboard)
    else:  # a list of widgets: parsed inside a dashboard
        strict({"displayName": "x", "gridLayout": {"widgets": document}}, Dashboard)


@pytest.mark.parametrize("name, document, message_type", rendered(), ids=lambda v: str(v)[:40])
def test_each_rendered_document_parses_strictly_and_has_no_placeholder_left(
    name, document, message_type
):
    strict(document, message_type)
    # ${resource.labels.X} is Monitoring's own legend template; ${NAME} would be ours, unfilled.
    assert not re.search(r"\$\{[A-Z_]+\}", json.dumps(document)), name
    assert monitoring.ours(document["displayName"])


def test_a_field_the_proto_lacks_is_refused():
    # The check above can fail: a misspelt field is an error, not silently dropped.
    policy = monitoring.load("policies/job_failed.json")
    policy["conditions"][0]["conditionThreshold"]["treshold"] = 1
    with pytest.raises(json_format.ParseError):
        strict(policy, AlertPolicy)


def aggregations(document) -> list[tuple[str, dict]]:
    """(filter, its aggregation) for every time series the document asks for."""
    found = []
    if isinstance(document, dict):
        if isinstance(document.get("filter"), str):
            aligners = document.get("aggregations") or [document.get("aggregation") or {}]
            found += [(document["filter"], a) for a in aligners]
        for value in document.values():
            found += aggregations(value)
    elif isinstance(document, list):
        for value in document:
            found += aggregations(value)
    return found


@pytest.mark.parametrize("name, document, message_type", rendered(), ids=lambda v: str(v)[:40])
def test_every_metric_is_in_googles_lists_with_its_resource_and_a_fitting_aligner(
    name, document, message_type
):
    series = aggregations(document)
    assert series, name
    for query, aggregation in series:
        (metric,) = monitoring.metric_types(query)
        assert metric in monitoring.METRICS, f"{metric} is not in ops.monitoring.METRICS"
        kind, resource = monitoring.METRICS[metric]
        assert monitoring.resource_types(query) == [resource], query
        aligner = aggregation.get("perSeriesAligner")
        assert aligner, query
        if aligner in CHANGE_ALIGNERS:
            assert kind in ("DELTA", "CUMULATIVE"), f"{aligner} on the {kind} {metric}"


def test_the_metric_list_holds_only_dataflow_and_pubsub_metrics_that_are_used():
    used = {
        metric
        for _, document, _ in rendered()
        for query in monitoring.filters(document)
        for metric in monitoring.metric_types(query)
    }
    assert used == set(monitoring.METRICS)
    for metric, (kind, resource) in monitoring.METRICS.items():
        assert re.fullmatch(r"(dataflow|pubsub)\.googleapis\.com/[a-z_/]+", metric)
        assert kind in ("GAUGE", "DELTA", "CUMULATIVE")
        assert resource in ("dataflow_job", "pubsub_subscription", "pubsub_topic")
    assert re.fullmatch(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]", monitoring.METRICS_LISTED)
    # The list cites Google's pages.
    assert "https://cloud.google.com/monitoring/api/metrics_gcp" in (
        monitoring.HERE / "__init__.py"
    ).read_text(encoding="utf-8")


def test_the_dashboard_watches_each_stream_templates_own_names():
    board = monitoring.dashboard(CATALOG, PROJECT)
    widgets = board["gridLayout"]["widgets"]
    for name in CATALOG.streaming:
        template = CATALOG[name]
        mine = [w for w in widgets if w["title"].startswith(f"{name}: ")]
        text = json.dumps(mine)
        (subscription,) = template.subscriptions_read()
        assert text.count(f'subscription_id=\\"{subscription}\\"') == 2  # backlog, oldest age
        assert f'topic_id=\\"{template.dead_letter_topic()}\\"' in text
        for output in template.topics_written():
            if output != template.dead_letter_topic():
                assert f'\\"{output}\\"' in text
        assert text.count(f'job_name=\\"{template.job_base}\\"') == 3  # lag, freshness, vCPUs
        for metric in ("system_lag", "data_watermark_age", "current_num_vcpus"):
            assert f"dataflow.googleapis.com/job/{metric}" in text


def test_the_batch_widgets_match_the_names_run_gives_batch_jobs_and_no_stream_job():
    board = monitoring.dashboard(CATALOG, PROJECT)
    batch = [w for w in board["gridLayout"]["widgets"] if w["title"].startswith("Batch jobs")]
    assert {w["title"] for w in batch} == {
        "Batch jobs: elements (the largest PCollection of each job)",
        "Batch jobs: elapsed time",
    }
    query = batch[0]["xyChart"]["dataSets"][0]["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
    pattern = re.search(r'full_match\("([^"]+)"\)', query)[1]
    for name in CATALOG.names:
        base = CATALOG[name].job_base
        stamped = f"{base}-20261207-013000"  # jobs.run's name for a batch job
        if name in CATALOG.streaming:
            assert not re.fullmatch(pattern, base) and not re.fullmatch(pattern, stamped)
        else:
            assert re.fullmatch(pattern, stamped), (pattern, stamped)
            assert not re.fullmatch(pattern, base)


def test_the_policies_are_one_failed_job_alert_and_two_per_watched_stream_template():
    channel = "projects/p/notificationChannels/7"
    found = monitoring.policies(CATALOG, PROJECT, [channel])
    names = [name for name, _ in found]
    assert names[0] == "policy-job_failed.json"
    assert sorted(names[1:]) == sorted(
        f"policy-{kind}-{t}.json" for t in CATALOG.streaming for kind in monitoring.POLICY_FILES
    )
    for _, policy in found:
        assert policy["notificationChannels"] == [channel]
    failed = found[0][1]["conditions"][0]["conditionThreshold"]
    assert "dataflow.googleapis.com/job/is_failed" in failed["filter"]
    assert failed["comparison"] == "COMPARISON_GT" and failed["thresholdValue"] == 0
    by_name = dict(found)
    for name in CATALOG.streaming:
        template = CATALOG[name]
        backlog = by_name[f"policy-backlog_age-{name}.json"]["conditions"][0]
        assert "oldest_unacked_message_age" in backlog["conditionThreshold"]["filter"]
        assert template.subscriptions_read()[0] in backlog["conditionThreshold"]["filter"]
        dead = by_name[f"policy-dead_letters-{name}.json"]["conditions"][0]
        assert f'topic_id="{template.dead_letter_topic()}"' in dead["conditionThreshold"]["filter"]
        assert dead["conditionThreshold"]["aggregations"][0]["alignmentPeriod"] == "60s"
    assert monitoring.policies(CATALOG, PROJECT, [])[0][1]["notificationChannels"] == []


def test_a_placeholder_a_file_does_not_fill_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"unknown placeholder \$\{TEMPLATE\}"):
        monitoring.fill({"a": ["${TEMPLATE} x"]}, {"PROJECT": "p"})
    assert monitoring.fill({"a": ["$${x} ${PROJECT}", 3]}, {"PROJECT": "p"}) == {"a": ["${x} p", 3]}
