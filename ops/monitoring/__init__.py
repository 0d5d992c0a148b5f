"""Cloud Monitoring for the templates: one dashboard and the alert policies, built from the JSON
files next to this module, which are the configuration (thresholds included: edit them there).

  dashboard.json            the dashboard; its widgets are the two lists below
  stream_widgets.json       per stream template: its input subscription's backlog and oldest
                            unacknowledged age, outputs and dead letters per second, system lag
                            and data freshness, vCPUs in use
  batch_widgets.json        the batch jobs: elements and elapsed time
  policies/job_failed.json  once per project: a Dataflow job failed
  policies/backlog_age.json per stream template: its input waits too long
  policies/dead_letters.json per stream template: its dead-letter topic's publish rate

Each is a Dashboard (google.monitoring.dashboard.v1) or an AlertPolicy (google.monitoring.v3)
in JSON, with `${NAME}` placeholders in its text (`$$` is a literal $), filled from the
catalog (ops/lab.py). Pure: nothing here runs a command (ops/commands/monitoring.py does).

Every metric the files name is in METRICS, with its kind and resource type as Google's metric
lists give them; the tests check each file against it.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

from ops.lab import Catalog, TemplateInfo

HERE = Path(__file__).resolve().parent
# What marks a dashboard, policy or notification channel as ops/flex's: setup updates and
# teardown deletes exactly those whose display name starts with it.
PREFIX = "Dataflow lab: "

# The metric types the files use: type -> (metric kind, monitored resource type).
# From Google's metric lists, https://cloud.google.com/monitoring/api/metrics_gcp, sections
# "dataflow" (https://cloud.google.com/monitoring/api/metrics_gcp_d_h#gcp-dataflow) and
# "pubsub" (https://cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-pubsub), as listed on
# METRICS_LISTED. Not fetched by any test (no network): compare with the pages when adding one.
METRICS_LISTED = "2026-12-07"
METRICS = {
    "dataflow.googleapis.com/job/current_num_vcpus": ("GAUGE", "dataflow_job"),
    "dataflow.googleapis.com/job/data_watermark_age": ("GAUGE", "dataflow_job"),
    "dataflow.googleapis.com/job/elapsed_time": ("GAUGE", "dataflow_job"),
    "dataflow.googleapis.com/job/element_count": ("GAUGE", "dataflow_job"),
    "dataflow.googleapis.com/job/is_failed": ("GAUGE", "dataflow_job"),
    "dataflow.googleapis.com/job/system_lag": ("GAUGE", "dataflow_job"),
    "pubsub.googleapis.com/subscription/num_undelivered_messages": ("GAUGE", "pubsub_subscription"),
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age": (
        "GAUGE",
        "pubsub_subscription",
    ),
    "pubsub.googleapis.com/topic/send_message_operation_count": ("DELTA", "pubsub_topic"),
}
# jobs.run names a batch job TEMPLATE-%Y%m%d-%H%M%S.
BATCH_STAMP = "[0-9]{8}-[0-9]{6}"

_METRIC = re.compile(r'metric\.type\s*=\s*"([^"]+)"')
_RESOURCE = re.compile(r'resource\.type\s*=\s*"([^"]+)"')


def load(name: str) -> Any:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def fill(value: Any, fields: dict[str, str]) -> Any:
    """The document with each string's ${NAME} replaced; a NAME not in fields is an error of
    the file, said with the name."""
    if isinstance(value, dict):
        return {key: fill(item, fields) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, fields) for item in value]
    if isinstance(value, str):
        try:
            return string.Template(value).substitute(fields)
        except KeyError as missing:
            raise ValueError(f"unknown placeholder ${{{missing.args[0]}}} in {value!r}") from None
    return value


def stream_fields(template: TemplateInfo, project: str) -> dict[str, str] | None:
    """The placeholders of a stream template's widgets and policies; None when it has no
    input subscription and dead-letter topic to watch."""
    subscriptions = template.subscriptions_read()
    dead_letter = template.dead_letter_topic()
    if not template.streaming or not subscriptions or not dead_letter:
        return None
    outputs = [t for t in template.topics_written() if t != dead_letter]
    return {
        "PREFIX": PREFIX,
        "PROJECT": project,
        "TEMPLATE": template.name,
        "JOB_NAME": template.job_base,
        "SUBSCRIPTION": subscriptions[0],
        "DEAD_LETTER_TOPIC": dead_letter,
        "OUTPUT_TOPICS": ", ".join(f'"{t}"' for t in outputs) or '""',
    }


def watched(catalog: Catalog, project: str) -> list[dict[str, str]]:
    found = (stream_fields(catalog[name], project) for name in catalog.streaming)
    return [fields for fields in found if fields]


def dashboard(catalog: Catalog, project: str) -> dict:
    base = {"PREFIX": PREFIX, "PROJECT": project}
    document = fill(load("dashboard.json"), base)
    widgets = document["gridLayout"]["widgets"]
    for fields in watched(catalog, project):
        widgets += fill(load("stream_widgets.json"), fields)
    batch = [catalog[name].job_base for name in catalog.names if name not in catalog.streaming]
    if batch:
        pattern = f"({'|'.join(batch)})-{BATCH_STAMP}"
        widgets += fill(load("batch_widgets.json"), {**base, "BATCH_JOB_NAMES": pattern})
    return document


POLICY_FILES = ("backlog_age", "dead_letters")  # per stream template; job_failed: once


def policies(catalog: Catalog, project: str, channels: list[str]) -> list[tuple[str, dict]]:
    """(a file name for it, the policy), each notifying `channels`."""
    found = [
        (
            "policy-job_failed.json",
            fill(load("policies/job_failed.json"), {"PREFIX": PREFIX, "PROJECT": project}),
        )
    ]
    for fields in watched(catalog, project):
        for kind in POLICY_FILES:
            document = fill(load(f"policies/{kind}.json"), fields)
            found.append((f"policy-{kind}-{fields['TEMPLATE']}.json", document))
    for _, document in found:
        document["notificationChannels"] = list(channels)
    return found


def channel_name(email: str) -> str:
    return f"{PREFIX}alerts to {email}"


def ours(display_name: object) -> bool:
    return isinstance(display_name, str) and display_name.startswith(PREFIX)


def filters(document: Any) -> list[str]:
    """Every monitoring filter in a document (its `filter` fields)."""
    if isinstance(document, dict):
        own = [v for k, v in document.items() if k == "filter" and isinstance(v, str)]
        return own + [f for v in document.values() for f in filters(v)]
    if isinstance(document, list):
        return [f for v in document for f in filters(v)]
    return []


def metric_types(text: str) -> list[str]:
    return _METRIC.findall(text)


def resource_types(text: str) -> list[str]:
    return _RESOURCE.findall(text)
