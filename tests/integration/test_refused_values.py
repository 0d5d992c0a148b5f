"""End to end (issue 18): a value the console's regex refuses is refused by the template's own
command line too, before anything runs: one line naming the parameter, exit status 2.

One careless value per parameter of every template (those of the issue where it names one),
each run as the Flex launcher runs the entry file: a subprocess."""

from __future__ import annotations

import pytest

from pipelines.core.regex import plain
from pipelines.registry import TEMPLATES, job_module
from tests.support.processes import REPO, run_template

# A refused value per kind (kind name -> value); numbers get one past their upper bound.
CARELESS = {
    "Pub/Sub topics": "projects/my-project-/topics/frames",
    "Pub/Sub subscriptions": "projects/my-project/subscriptions/goog-frames",
    "Pub/Sub topics/subscriptions": "projects/my-project/topics/a b",
    "Cloud Storage file or pattern": "gs://ab/in.txt",
    "Cloud Storage file prefix": "gs://goog-bucket/out",
    "Cloud Storage folder": "gs://Bucket/model",
    "BigQuery table or Cloud Storage file": "my-project:MN-IST.Images",
    "choice": "direct",
}


def valid_command_line(template: str, tmp_path) -> dict[str, str]:
    """Values every required parameter accepts, so that only the careless one is wrong."""
    if job_module(template).TEMPLATE.streaming:
        return {
            "input_subscription": "projects/my-project/subscriptions/frames-sub",
            "output": "projects/my-project/topics/results",
        }
    if template == "mnist_batch":
        return {"input": str(REPO / "data" / "mnist_sample.csv"), "output": str(tmp_path / "p")}
    return {"output": str(tmp_path / "out"), "output2": str(tmp_path / "out2")}


def cases():
    for template in sorted(TEMPLATES):
        for p in job_module(template).TEMPLATE.parameters:
            if p.kind is None:
                continue
            if p.kind.name.startswith("number"):
                high = p.kind.expected.rsplit(" to ", 1)[1]
                value = plain(float(high) + 1) if "." in high else str(int(high) + 1)
            else:
                value = CARELESS[p.kind.name]
            yield pytest.param(template, p.name, value, id=f"{template}-{p.name}")


@pytest.mark.parametrize(("template", "name", "value"), cases())
def test_a_careless_value_is_one_line_naming_the_parameter_and_exit_2(
    template, name, value, tmp_path
):
    job = job_module(template)
    parameter = next(p for p in job.TEMPLATE.parameters if p.name == name)
    assert parameter.kind.problem(value, on_dataflow=False), "the sample must be refused"
    given = valid_command_line(template, tmp_path)
    known = {p.name for p in job.TEMPLATE.parameters}
    if name.startswith("input"):  # exactly one input
        given = {k: v for k, v in given.items() if not k.startswith("input")}
    given[name] = value
    argv = [f"--{k}={v}" for k, v in given.items() if k in known]
    completed = run_template(template, argv, check=False, timeout=300)
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2, completed.stderr[-3000:]
    assert len(lines) == 1, completed.stderr[-3000:]
    assert lines[0].startswith(f"{template}: error: ") and f"--{name}" in lines[0], lines
