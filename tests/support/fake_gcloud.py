"""A recording stand-in for Google Cloud behind ops' Gcloud runner (no binary on PATH).

`FakeGcloud` is the real ops.gcloud.Gcloud with only `_execute` (the one place a process
starts) and `sleep` replaced: every printed line, dry-run answer, failure report and retry is
the code users run. It records each command in `calls` and answers the way gcloud and bq
would with --format=json, from a small played project:

  state     "absent" (describe/show checks fail) or "present" (they succeed)
  fail      a substring: the first call whose command line holds it fails (exit 1)
  jobs      the active jobs: dicts with id, name, state and optionally template (the label)
            and mode (environment.streamingMode, default STREAMING_MODE_EXACTLY_ONCE);
            after a `dataflow jobs cancel`, the cancelled and Cancelling ones are gone
  check     the state of the graph-validation job that `update` starts
  steps     {job ID: [step names]}: a job's pipeline transforms (describe --full)
  stage     the GitHub connection's installation stage
  versions  {gs:// URL of a kept spec: (created, image)}
  metrics   what `beta dataflow metrics list` answers
  described {job ID: what `dataflow jobs describe` answers}, instead of a played answer
  monitored {"dashboards" | "policies" | "channels": what its monitoring list answers};
            in a present project, by default, the ones setup makes (ops.monitoring)
  tags      what `container images list-tags` answers
  project   what `gcloud config get-value project` prints (not recorded: it is local)
  raw       {substring: stdout}: what any call whose command line holds the substring prints
            instead of the played answer (an answer of an unexpected shape)

`limits` records each call's time limit (the runner's timeout, or the longer one it asked for).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ops.gcloud import Gcloud

CHECK_JOB_ID = "2026-01-01_00_00_00-99"  # the job a graph check starts
BILLING_ACCOUNT = "0A0A0A-1B1B1B-2C2C2C"
PROJECT_NUMBER = "123456789012"
REPOSITORY_LINK = "dataflow-lab"
PLAYED_EMAIL = "staff@example.org"  # the e-mail channel of a present project
_WORKER = "dataflow-worker@lab-project-123.iam.gserviceaccount.com"
_BUILDER = "flex-builder@lab-project-123.iam.gserviceaccount.com"
PROJECT_GRANTS = (
    ("roles/dataflow.worker", _WORKER),
    ("roles/bigquery.jobUser", _WORKER),
    ("roles/bigquery.readSessionUser", _WORKER),
    ("roles/logging.logWriter", _BUILDER),
    (
        "roles/secretmanager.admin",
        f"service-{PROJECT_NUMBER}@gcp-sa-cloudbuild.iam.gserviceaccount.com",
    ),
    ("roles/viewer", "someone-else@example.com"),
)


# Fields of a played job that only `describe` answers.
HIDDEN = ("template", "mode")


class FakeGcloud(Gcloud):
    def __init__(
        self,
        *,
        state: str = "absent",
        fail: str | None = None,
        jobs: list[dict] | None = None,
        check: str = "JOB_STATE_DONE",
        steps: dict | None = None,
        stage: str = "COMPLETE",
        versions: dict | None = None,
        metrics: list | None = None,
        described: dict | None = None,
        policy: dict | None = None,
        monitored: dict | None = None,
        tags: list | None = None,
        project: str = "",
        raw: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        super().__init__(dry_run=True, **({"cwd": cwd} if cwd else {}))
        self.state = state
        self.fail = fail
        self.jobs = [dict(j) for j in (jobs or [])]
        self.check = check
        self.steps = steps or {}
        self.stage = stage
        self.versions = versions or {}
        self.metrics = metrics or []
        self.described = described or {}
        # In a present project, the project-level grants setup and trigger make.
        self.policy = policy or {
            "etag": "BwYAAAAAAAA=",
            "bindings": [
                {"role": role, "members": [f"serviceAccount:{account}"]}
                for role, account in PROJECT_GRANTS
            ],
        }
        self.monitored = monitored or {}
        self.tags = tags or []
        self.project = project
        self.raw = raw or {}
        self.limits: list[float] = []
        self.calls: list[list[str]] = []
        self.slept: list[float] = []
        self.failed = False

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    # --- answers ------------------------------------------------------------------------
    def _execute(
        self, argv, *, capture: bool, quiet: bool, wait: float = 0
    ) -> tuple[int, str, str]:
        argv = list(argv)
        if argv[:4] == ["gcloud", "config", "get-value", "project"]:
            return (0, self.project + "\n", "") if self.project else (0, "(unset)\n", "")
        self.calls.append(argv)
        self.limits.append(self.limit(wait))
        line = shlex.join(argv)
        if self.fail and self.fail in line and not self.failed:
            self.failed = True
            return 1, "", f"ERROR: (fake) {line} failed\n"
        for key, out in self.raw.items():
            if key in line:
                return 0, out, ""
        answer = self._answer(argv)
        if isinstance(answer, int):
            return answer, "", "" if answer == 0 else "ERROR: (fake) NOT_FOUND\n"
        return 0, answer if isinstance(answer, str) else json.dumps(answer), ""

    def _answer(self, argv: list[str]):
        words = [a for a in argv if not a.startswith("-")]
        wants_json = "--format=json" in argv
        present = self.state == "present"
        if words[1:4] == ["dataflow", "jobs", "list"]:
            return [
                {"type": "Streaming", "creationTime": "2026-01-01 00:00:00", **job}
                for job in self._live_jobs()
            ]
        if words[1:4] == ["dataflow", "jobs", "describe"]:
            return self._describe(words[4])
        if words[1:4] == ["dataflow", "flex-template", "run"] and wants_json:
            return {"job": {"id": CHECK_JOB_ID, "name": words[4]}}
        if words[1:5] == ["beta", "dataflow", "metrics", "list"]:
            return self.metrics
        for group in ("dashboards", "policies", "channels"):
            if group in words[1:5] and words[words.index(group) + 1 : words.index(group) + 2] == [
                "list"
            ]:
                if group in self.monitored or not present:
                    return self.monitored.get(group, [])
                return _ours(group, argv)
        if words[1:4] == ["container", "images", "list-tags"]:
            return self.tags
        if words[1:4] == ["billing", "projects", "describe"]:
            return {"billingAccountName": f"billingAccounts/{BILLING_ACCOUNT}"}
        if words[1:4] == ["billing", "budgets", "list"]:
            return []
        if words[1:3] == ["projects", "describe"]:
            return {"projectNumber": PROJECT_NUMBER}
        if words[1:3] == ["projects", "get-iam-policy"]:
            return self.policy if present else {"etag": "BwYAAAAAAAA=", "bindings": []}
        if words[1:4] == ["builds", "connections", "describe"] and wants_json:
            return {
                "installationState": {
                    "stage": self.stage,
                    "actionUri": "https://github.com/apps/google-cloud-build/installations/new",
                }
            }
        if words[1:4] == ["builds", "repositories", "list"]:
            return (
                [{"name": f"projects/p/locations/l/connections/c/repositories/{REPOSITORY_LINK}"}]
                if present
                else []
            )
        if words[1:4] == ["storage", "objects", "list"]:
            prefix = words[4].rsplit("*", 1)[0]
            return [
                {
                    "name": url.removeprefix("gs://").split("/", 1)[1],
                    "timeCreated": created,
                    "metadata": {"image": image},
                }
                for url, (created, image) in self.versions.items()
                if url.startswith(prefix)
            ]
        if words[1:3] == ["storage", "cat"]:
            created, image = self.versions[words[3]]
            return json.dumps({"image": image, "sdkInfo": {"language": "PYTHON"}, "metadata": {}})
        if words[1:4] == ["storage", "objects", "describe"] and words[4] in self.versions:
            return 0
        if {"describe", "show"} & set(words):
            return 0 if present else 1
        return 0

    def _live_jobs(self) -> list[dict]:
        cancelled = {
            a
            for c in self.calls
            if c[1:4] == ["dataflow", "jobs", "cancel"]
            for a in c[4:]
            if not a.startswith("-")
        }
        if not cancelled:
            return [{k: v for k, v in j.items() if k not in HIDDEN} for j in self.jobs]
        return [
            {k: v for k, v in j.items() if k not in HIDDEN}
            for j in self.jobs
            if j["id"] not in cancelled and j["state"] != "Cancelling"
        ]

    def _describe(self, job_id: str) -> dict:
        if job_id in self.described:
            return self.described[job_id]
        transforms = [{"name": n} for n in self.steps.get(job_id, [])]
        if job_id == CHECK_JOB_ID:
            return {
                "id": job_id,
                "currentState": self.check,
                "pipelineDescription": {"originalPipelineTransform": transforms},
            }
        job = next((j for j in self.jobs if j["id"] == job_id), {})
        return {
            "id": job_id,
            "name": job.get("name", ""),
            "currentState": "JOB_STATE_RUNNING",
            "labels": {"template": job["template"]} if job.get("template") else {},
            "environment": {
                "workerPools": [{"numWorkers": 1, "autoscalingSettings": {"maxNumWorkers": 2}}],
                "streamingMode": job.get("mode", "STREAMING_MODE_EXACTLY_ONCE"),
            },
            "pipelineDescription": {"originalPipelineTransform": transforms},
        }


def _ours(group: str, argv: list[str]) -> list[dict]:
    """What a project set up by ops/flex lists: its dashboard, policies and a channel."""
    from ops import monitoring
    from ops.lab import Catalog

    project = next(a.split("=", 1)[1] for a in argv if a.startswith("--project="))
    catalog = Catalog.from_registry()
    root = f"projects/{project}"
    if group == "dashboards":
        board = monitoring.dashboard(catalog, project)
        return [{**board, "name": f"{root}/dashboards/d1", "etag": "e1"}]
    if group == "policies":
        return [
            {**policy, "name": f"{root}/alertPolicies/p{i}"}
            for i, (_, policy) in enumerate(monitoring.policies(catalog, project, []))
        ]
    return [
        {
            "name": f"{root}/notificationChannels/c1",
            "type": "email",
            "displayName": monitoring.channel_name(PLAYED_EMAIL),
            "labels": {"email_address": PLAYED_EMAIL},
        }
    ]
