"""setup's dashboard, alert policies and e-mail channel (ops/monitoring), and teardown's removal.

Each document is written to out/monitoring/ (git-ignored, a dry run too: the printed gcloud
line reads it, so it can be pasted) and handed to gcloud by file. Ours are the ones whose
display name starts with ops.monitoring.PREFIX: a second setup updates them in place, teardown
deletes them, and nobody else's are touched.
"""

from __future__ import annotations

import json

from ops import answers, monitoring
from ops.commands import Context
from ops.gcloud import Stop, say

RENDERED = "out/monitoring"  # under the runner's working directory, where gcloud reads it
DASHBOARDS = ("gcloud", "monitoring", "dashboards")
# Alert policies are only in gcloud's alpha track; notification channels in alpha and beta.
POLICIES = ("gcloud", "alpha", "monitoring", "policies")
CHANNELS = ("gcloud", "beta", "monitoring", "channels")


def write(ctx: Context, name: str, document: dict) -> str:
    folder = ctx.gcloud.cwd / RENDERED
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return f"{RENDERED}/{name}"


def short_id(name: object) -> str | None:
    """The last segment of a resource name (projects/P/dashboards/ID -> ID); None if not one."""
    if not isinstance(name, str) or "/" not in name:
        return None
    last = name.rsplit("/", 1)[-1]
    return last or None


def listing(ctx: Context, group: tuple[str, ...], stand_in: list) -> list[dict]:
    """A monitoring list (dashboards, policies, channels), through its reader."""
    return ctx.gcloud.read(
        [*group, "list", *ctx.project],
        stand_in,
        lambda answer: answers.resources(answer, group[-1]),
    )


def ours_by_display_name(items: list[dict]) -> dict[str, dict]:
    return {
        item["displayName"]: item
        for item in items
        if monitoring.ours(item.get("displayName")) and short_id(item.get("name"))
    }


def ensure_channel(ctx: Context, email: str) -> str:
    """The e-mail notification channel's resource name: ours for this address, else a new one."""
    s, g = ctx.settings, ctx.gcloud
    display = monitoring.channel_name(email)
    for item in listing(ctx, CHANNELS, []):
        labels = item.get("labels") if isinstance(item.get("labels"), dict) else {}
        if item.get("displayName") == display and labels.get("email_address") == email:
            if short_id(item.get("name")):
                say(f"notification channel for {email} exists")
                return item["name"]
    name = g.launch(
        [
            *CHANNELS,
            "create",
            *ctx.project,
            f"--display-name={display}",
            "--type=email",
            f"--channel-labels=email_address={email}",
        ],
        {"name": f"projects/{s.project}/notificationChannels/CHANNEL_ID"},
        answers.created_name,
    )
    if not short_id(name):
        raise Stop("gcloud created the e-mail notification channel but answered no name")
    return name


def ensure_monitoring(ctx: Context) -> None:
    s, g = ctx.settings, ctx.gcloud
    email = ctx.options.alert_email
    if email:
        channels = [ensure_channel(ctx, email)]
    else:
        # A setup without --alert-email keeps the e-mail an earlier one added.
        channels = [
            item["name"] for item in ours_by_display_name(listing(ctx, CHANNELS, [])).values()
        ]
    board = monitoring.dashboard(ctx.catalog, s.project)
    existing = ours_by_display_name(listing(ctx, DASHBOARDS, [])).get(board["displayName"])
    # The etag makes the update refuse to overwrite an edit made since the list.
    if existing and isinstance(existing.get("etag"), str):
        board["etag"] = existing["etag"]
    path = write(ctx, "dashboard.json", board)
    action = ["update", short_id(existing["name"])] if existing else ["create"]
    g.run([*DASHBOARDS, *action, *ctx.project, f"--config-from-file={path}"])
    existing_policies = ours_by_display_name(listing(ctx, POLICIES, []))
    for name, policy in monitoring.policies(ctx.catalog, s.project, channels):
        path = write(ctx, name, policy)
        existing = existing_policies.get(policy["displayName"])
        action = ["update", short_id(existing["name"])] if existing else ["create"]
        g.run([*POLICIES, *action, *ctx.project, f"--policy-from-file={path}"])
    if email:
        notified = f"e-mail to {email}"
    elif channels:
        notified = f"the {len(channels)} notification channel(s) an earlier setup added"
    else:
        notified = "no e-mail: --alert-email ADDRESS adds one"
    say(
        f"dashboard '{board['displayName']}' and alert policies set ({notified}; the "
        f"documents sent: {RENDERED}/): "
        f"https://console.cloud.google.com/monitoring/dashboards?project={s.project}"
    )


def remove_monitoring(ctx: Context) -> None:
    """Deletes our policies first (a channel in use cannot go), then channels and dashboard."""
    s, g = ctx.settings, ctx.gcloud
    played = f"projects/{s.project}"
    board = monitoring.dashboard(ctx.catalog, s.project)["displayName"]
    policies = [p["displayName"] for _, p in monitoring.policies(ctx.catalog, s.project, [])]
    kinds = (
        (
            POLICIES,
            [
                {"name": f"{played}/alertPolicies/POLICY_ID_{i}", "displayName": d}
                for i, d in enumerate(policies)
            ],
        ),
        (
            CHANNELS,
            [
                {
                    "name": f"{played}/notificationChannels/CHANNEL_ID",
                    "displayName": monitoring.channel_name("EMAIL"),
                }
            ],
        ),
        (DASHBOARDS, [{"name": f"{played}/dashboards/DASHBOARD_ID", "displayName": board}]),
    )
    for group, stand_in in kinds:
        for item in ours_by_display_name(listing(ctx, group, stand_in)).values():
            g.run([*group, "delete", short_id(item["name"]), *ctx.project, "--quiet"])
