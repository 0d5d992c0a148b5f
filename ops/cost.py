"""What a Dataflow job used, what that costs, and whether its own counts add up.

`report(job, metrics)` reads two gcloud answers, parsed from JSON:

    job      gcloud dataflow jobs describe JOB --region R --full --format=json
    metrics  gcloud beta dataflow metrics list JOB --region R --source=all --format=json

(Without --full, the summary view has no `environment`, so a job on Streaming Engine's
resource-based billing cannot be told from one billed by data processed. `metrics list` is
only in gcloud's beta and alpha tracks. It gives the committed values; with
--tentative, the tentative ones too, marked `"tentative": "true"` in their context.)

and returns the text ops/flex cost prints. Pure: it runs no command (ops/flex asks gcloud).

Dataflow's job metrics (origin `dataflow/v1b3`) and their units: TotalVcpuTime (vCPU-seconds),
TotalMemoryUsage (MB-seconds), TotalPdUsage and TotalSsdUsage (GB-seconds),
TotalStreamingDataProcessed, TotalShuffleDataProcessed and BillableShuffleDataProcessed (GB),
TotalSeCuUsage (Streaming Engine compute units of resource-based billing, taken as
compute-unit-hours: the unit Google prices them in; neither gcloud's nor Beam's sources name
this metric or its unit, so both rest on Dataflow's own answers). The estimate prices them
with ops/pricing.py, each figure with its source in the footer; a figure not in the table is
"not estimated", never a number. It is a list-price estimate of Dataflow's own charges, not the
bill (no discounts, and no Pub/Sub, BigQuery, Cloud Storage or logging charges).

A stream job on resource-based billing (environment.useStreamingEngineResourceBasedBilling, or
environment.streamingMode STREAMING_MODE_AT_LEAST_ONCE: Google says at-least-once mode always
uses it) is billed by compute units, not by data processed; without `environment` (the summary
view) neither is estimated. The fields are those of the Job resource's Environment (Dataflow
v1b3; gcloud's generated dataflow_v1b3_messages.Environment).

The job's own counters (origin `user`) are summed over the steps that report them, committed
values where Dataflow has them. A job's counts must add up (BALANCES): every element read ends
as exactly one output or dead letter.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ops.answers import streaming_mode
from ops.pricing import PRICING_URL, SOURCES, prices_for

SERVICE_ORIGIN = "dataflow/v1b3"
USER_ORIGIN = "user"
MB_PER_GB = 1024  # Dataflow reports memory in MB; Google Cloud prices it per GB of 2^30 bytes
SECONDS_PER_HOUR = 3600

# For each job's counter namespace: (read, the outcomes each read element ends as exactly one of).
BALANCES = {
    "mnist": ("rows_read", ("predictions", "dead_letters")),
    "pedestrian": ("frames_read", ("frames_processed", "dead_letters")),
}
FINISHED = ("JOB_STATE_DONE", "JOB_STATE_DRAINED")  # every element read has ended somewhere
STOPPED = ("JOB_STATE_CANCELLED", "JOB_STATE_FAILED", "JOB_STATE_STOPPED")


def _number(value) -> float | None:
    """A metric's scalar as a number (gcloud gives int64 values as numbers or strings); None
    for anything else (a distribution, a gauge, garbage)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _name(entry) -> tuple[str, str, dict]:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, dict):
        return "", "", {}
    context = name.get("context") if isinstance(name.get("context"), dict) else {}
    return str(name.get("origin", "")), str(name.get("name", "")), context


def service_metrics(metrics: list) -> dict[str, float]:
    """Dataflow's job-level metrics by name (the committed value where there are both)."""
    found: dict[str, float] = {}
    tentative: dict[str, float] = {}
    for entry in metrics or []:
        origin, name, context = _name(entry)
        value = _number(entry.get("scalar")) if isinstance(entry, dict) else None
        if origin != SERVICE_ORIGIN or value is None:
            continue
        if context.get("tentative") == "true":
            tentative.setdefault(name, value)
        else:
            found.setdefault(name, value)
    return {**tentative, **found}


def user_counters(metrics: list) -> tuple[dict[tuple[str, str], float], bool]:
    """((namespace, name) -> value summed over steps, whether any is only tentative)."""
    committed: dict[tuple[str, str], float] = defaultdict(float)
    tentative: dict[tuple[str, str], float] = defaultdict(float)
    for entry in metrics or []:
        origin, name, context = _name(entry)
        value = _number(entry.get("scalar")) if isinstance(entry, dict) else None
        if origin != USER_ORIGIN or value is None:
            continue
        key = (str(context.get("namespace", "")), name)
        (tentative if context.get("tentative") == "true" else committed)[key] += value
    only_tentative = any(key not in committed for key in tentative)
    return {**tentative, **committed}, only_tentative


def _field(job: dict, key: str) -> str | None:
    """A text field of the job's description; None when absent or not text."""
    value = job.get(key)
    return value if isinstance(value, str) and value else None


def _mode(job: dict) -> str | None:
    kind = _field(job, "type")
    if kind == "JOB_TYPE_STREAMING":
        return "streaming"
    if kind == "JOB_TYPE_BATCH":
        return "batch"
    return None


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"


# What a row's cost column says when it has no figure.
NOT_BILLED = "not billed"
NOT_ESTIMATED = "not estimated"


def _billing(job: dict) -> str | None:
    """How a stream job's Streaming Engine is billed: "resource" (by compute units), "data"
    (by data processed), or None when the answer does not say (no `environment`: the summary
    view of `jobs describe`, without --full)."""
    environment = job.get("environment")
    if not isinstance(environment, dict):
        return None
    # Google: "at-least-once mode always uses resource-based billing".
    if environment.get("useStreamingEngineResourceBasedBilling") is True or streaming_mode(job):
        return "resource"
    return "data"


def _resource_lines(job: dict, used: dict[str, float]) -> tuple[list[str], list[str]]:
    """(lines of usage and price, notes on what the estimate leaves out)."""
    mode = _mode(job)
    region = _field(job, "location")
    priced_region, prices = prices_for(region)
    lines, notes, total = [], [], 0.0
    billing = _billing(job) if mode == "streaming" else None
    sources: dict[str, list[str]] = defaultdict(list)  # source -> labels priced from it
    left_out: list[str] = []

    def row(label: str, amount: float, unit: str, price: float | None, field: str = "") -> None:
        """price None: `field` names why (NOT_BILLED or NOT_ESTIMATED)."""
        nonlocal total
        if price is None:
            cost = field
        else:
            cost = dollars(amount * price)
            total += amount * price
            if label not in sources[SOURCES[field]]:
                sources[SOURCES[field]].append(label)
        lines.append(f"  {label:<34}{amount:>14,.3f} {unit:<12}{cost:>13}")

    worker_mode = mode or "batch"
    if mode is None:
        notes.append(f"the job's type is {_field(job, 'type') or 'unknown'}: priced as a batch job")
    if "TotalVcpuTime" in used:
        row(
            "vCPU",
            used["TotalVcpuTime"] / SECONDS_PER_HOUR,
            "vCPU-hours",
            prices.vcpu_hour[worker_mode],
            "vcpu_hour",
        )
    if "TotalMemoryUsage" in used:
        row(
            "memory",
            used["TotalMemoryUsage"] / MB_PER_GB / SECONDS_PER_HOUR,
            "GB-hours",
            prices.memory_gb_hour[worker_mode],
            "memory_gb_hour",
        )
    if "TotalPdUsage" in used:
        row(
            "disk (standard)",
            used["TotalPdUsage"] / SECONDS_PER_HOUR,
            "GB-hours",
            prices.pd_standard_gb_hour,
            "pd_standard_gb_hour",
        )
    if "TotalSsdUsage" in used:
        row(
            "disk (SSD)",
            used["TotalSsdUsage"] / SECONDS_PER_HOUR,
            "GB-hours",
            prices.pd_ssd_gb_hour,
            "pd_ssd_gb_hour",
        )
    if mode == "streaming" and billing is None:
        notes.append(
            "the job's description has no environment (gcloud dataflow jobs describe without "
            "--full): whether Streaming Engine bills it by data processed or by compute units "
            "is unknown, so neither is estimated"
        )
    elif billing == "resource":
        notes.append(
            "the job uses Streaming Engine resource-based billing (at-least-once jobs always "
            "do): it is billed by compute units, not by data processed"
        )
    if "TotalStreamingDataProcessed" in used:
        if mode != "streaming":
            data = (None, NOT_ESTIMATED)
        elif billing == "data":
            data = (prices.streaming_engine_gb, "streaming_engine_gb")
        else:
            data = (None, NOT_BILLED if billing == "resource" else NOT_ESTIMATED)
        row("Streaming Engine data processed", used["TotalStreamingDataProcessed"], "GB", *data)
    if "TotalSeCuUsage" in used:
        if billing == "resource":
            price = prices.streaming_engine_cu_hour
            units = (price, "streaming_engine_cu_hour")
            if price is None:
                units = (None, NOT_ESTIMATED)
                left_out.append("Streaming Engine compute units")
        else:
            units = (None, NOT_BILLED if billing == "data" else NOT_ESTIMATED)
        row("Streaming Engine compute units", used["TotalSeCuUsage"], "unit-hours", *units)
    elif billing == "resource":
        notes.append(
            "Dataflow has not reported TotalSeCuUsage (the compute units) yet: the estimate "
            "leaves them out"
        )
    shuffle_name = next(
        (n for n in ("BillableShuffleDataProcessed", "TotalShuffleDataProcessed") if n in used),
        None,
    )
    if shuffle_name:
        label = "Shuffle data processed" + (
            " (billable)" if shuffle_name.startswith("Billable") else ""
        )
        if mode != "streaming":
            row(label, used[shuffle_name], "GB", prices.shuffle_gb, "shuffle_gb")
        else:
            row(label, used[shuffle_name], "GB", None, NOT_ESTIMATED)
    missing = [
        name for name in ("TotalVcpuTime", "TotalMemoryUsage", "TotalPdUsage") if name not in used
    ]
    if missing:
        notes.append(
            f"Dataflow has not reported {', '.join(missing)} (yet: they appear a few minutes "
            f"after the workers start): the estimate leaves them out"
        )
    if left_out:
        notes.append(
            f"not in the price table (ops/pricing.py), so not estimated: {', '.join(left_out)}"
        )
    if priced_region != region:
        notes.insert(
            0,
            f"the job's region {region or '(unknown)'} is not in the price table "
            f"(ops/pricing.py): priced at {priced_region}'s prices instead",
        )
    lines.append(f"  {'estimate':<34}{'':>27}{dollars(total):>13}")
    lines.append(f"  at {priced_region} list prices ({PRICING_URL}); each from:")
    for source, labels in sources.items():
        lines.append(f"    {', '.join(labels)}: {source}")
    return lines, notes


def dollars(amount: float) -> str:
    # Lab jobs cost cents: four decimals keep them from all reading $0.00.
    return f"${amount:,.4f}" if amount < 10 else f"${amount:,.2f}"


def _balance_lines(job: dict, counters: dict[tuple[str, str], float]) -> list[str]:
    state = _field(job, "currentState") or ""
    lines = []
    for namespace, (read_name, outcome_names) in BALANCES.items():
        if (namespace, read_name) not in counters:
            continue
        read = counters[(namespace, read_name)]
        outcomes = {name: counters.get((namespace, name), 0.0) for name in outcome_names}
        ended = sum(outcomes.values())
        sum_text = " + ".join(f"{name} {_count(value)}" for name, value in outcomes.items())
        equation = f"{namespace}: {read_name} {_count(read)}"
        if read == ended:
            lines.append(f"  {equation} = {sum_text}: they add up")
        elif ended < read and state not in FINISHED:
            where = (
                "still in the job" if state not in STOPPED else "not finished when the job stopped"
            )
            state_text = state or "state unknown"
            lines.append(
                f"  {equation} = {sum_text} + {_count(read - ended)} {where} ({state_text})"
            )
        else:
            lines.append(
                f"  {equation} != {sum_text}: they DO NOT add up "
                f"({_count(abs(read - ended))} {'missing' if ended < read else 'too many'})"
            )
    return lines


def report(job: dict, metrics: list) -> str:
    """The cost-and-counts report of one job (see the module docstring)."""
    job = job if isinstance(job, dict) else {}
    mode = _mode(job) or "type unknown"
    name = _field(job, "name")
    head = (
        f"Job {_field(job, 'id') or '?'}{f' {name}' if name else ''} ({mode}, "
        f"{_field(job, 'currentState') or 'state unknown'}) in "
        f"{_field(job, 'location') or 'region unknown'}"
    )
    lines = [head]
    if _field(job, "createTime"):
        lines.append(
            f"  created {job['createTime']}, state since {_field(job, 'currentStateTime') or '?'}"
        )
    used = service_metrics(metrics)
    resource_lines, notes = _resource_lines(job, used)
    lines += ["Resources (Dataflow's job metrics)", *resource_lines]
    lines += [f"  note: {note}" for note in notes]
    counters, only_tentative = user_counters(metrics)
    lines.append("Counts (the job's own counters)")
    if not counters:
        lines.append("  none reported (yet)")
    width = max((len(f"{ns}/{name}") for ns, name in counters), default=0)
    for (namespace, name), value in sorted(counters.items()):
        lines.append(f"  {f'{namespace}/{name}':<{width}}  {_count(value):>14}")
    lines += _balance_lines(job, counters)
    if only_tentative:
        lines.append("  note: some counts are tentative (Dataflow has not committed them yet)")
    return "\n".join(row.rstrip() for row in lines)
