#!/usr/bin/env python3
"""A stand-in for `gcloud` and `bq` (installed under both names) for tests of ops/flex.

It answers nothing from Google Cloud: it records each call as one JSON line in $FAKE_LOG and
answers from the environment, so a test can play a project where everything is absent or
present, where active jobs exist, or where one command fails:

  FAKE_STATE   absent (default) | present: describe/show checks fail | succeed
  FAKE_FAIL    a substring: the first call whose command line holds it fails (exit 1)
  FAKE_JOBS    the jobs, lines of ID<TAB>NAME<TAB>STATE[<TAB>TEMPLATE LABEL]: what
               `dataflow jobs list` prints (the fields its value(...) format asks for) and
               `dataflow jobs describe ID` answers about labels and workers
               (after a `dataflow jobs cancel`, the cancelled and Cancelling ones are gone)
  FAKE_CHECK   the state of the graph-validation job `update` starts (default JOB_STATE_DONE)
  FAKE_STEPS   JSON {job ID: [step names]}: a job's pipeline transforms (describe --full)
  FAKE_STAGE   the GitHub connection's installation stage (default COMPLETE)
  FAKE_PROJECT what `gcloud config get-value project` prints (not logged: it is local)
"""

import json
import os
import re
import sys

CHECK_VERBS = {"describe", "show"}
CHECK_JOB_ID = "2026-01-01_00_00_00-99"  # the job a graph check starts
PROJECT_ROLES = [
    "roles/dataflow.worker",
    "roles/bigquery.jobUser",
    "roles/bigquery.readSessionUser",
    "roles/logging.logWriter",
    "roles/secretmanager.admin",
]


def main() -> int:
    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if tool == "gcloud" and args[:3] == ["config", "get-value", "project"]:
        print(os.environ.get("FAKE_PROJECT", ""))
        return 0
    with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps([tool] + args) + "\n")
    line = " ".join([tool] + args)
    fail = os.environ.get("FAKE_FAIL")
    if fail and fail in line:
        print(f"ERROR: (fake) {line} failed", file=sys.stderr)
        return 1
    present = os.environ.get("FAKE_STATE", "absent") == "present"
    words = [a for a in args if not a.startswith("-")]
    fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "")
    jobs = [
        dict(
            zip(("id", "name", "state", "template"), r.split("\t")),
            type="Streaming",
            creationTime="2026-01-01 00:00:00",
        )
        for r in os.environ.get("FAKE_JOBS", "").splitlines()
        if r
    ]
    if words[:3] == ["dataflow", "jobs", "list"]:
        # Once something was cancelled, it and the jobs already stopping are gone.
        with open(os.environ["FAKE_LOG"], encoding="utf-8") as log:
            cancels = [c for c in map(json.loads, log) if c[1:4] == ["dataflow", "jobs", "cancel"]]
        if cancels:
            gone = {a for c in cancels for a in c[4:] if not a.startswith("-")}
            jobs = [j for j in jobs if j["id"] not in gone and j["state"] != "Cancelling"]
        fields = re.fullmatch(r"value\((.*)\)", fmt).group(1).split(",")
        for job in jobs:
            print("\t".join(job.get(f, "") for f in fields))
        return 0
    if words[:3] == ["dataflow", "jobs", "describe"]:
        job_id = words[3]
        if "currentState" in fmt:
            print(
                os.environ.get("FAKE_CHECK", "JOB_STATE_DONE")
                if job_id == CHECK_JOB_ID
                else "JOB_STATE_RUNNING"
            )
        elif "originalPipelineTransform" in fmt:
            for step in json.loads(os.environ.get("FAKE_STEPS", "{}")).get(job_id, []):
                print(step)
        elif "labels.template" in fmt:
            job = next((j for j in jobs if j["id"] == job_id), {})
            print(f"{job.get('template', '')}\t1\t2")
        return 0
    if words[:3] == ["dataflow", "flex-template", "run"] and fmt == "value(job.id)":
        print(CHECK_JOB_ID)
        return 0
    if words[:3] == ["billing", "projects", "describe"]:
        print("billingAccounts/0A0A0A-1B1B1B-2C2C2C")
        return 0
    if words[:2] == ["projects", "describe"]:
        print("123456789012")
        return 0
    if words[:2] == ["projects", "get-iam-policy"]:
        if present:
            print("\n".join(PROJECT_ROLES))
        return 0
    if words[:3] == ["builds", "connections", "describe"] and "installationState" in fmt:
        if fmt == "value(installationState.stage)":
            print(os.environ.get("FAKE_STAGE", "COMPLETE"))
        else:
            print("https://github.com/apps/google-cloud-build/installations/new")
        return 0
    if words[:3] == ["builds", "repositories", "list"]:
        if present:
            print("dataflow-lab")
        return 0
    if set(words) & CHECK_VERBS:
        return 0 if present else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
