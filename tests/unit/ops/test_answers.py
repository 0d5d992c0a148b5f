"""ops/answers.py's readers and the rules ops shares with the templates, driven by generated
values: an answer is a value or one line; a name is taken by ops exactly when the templates'
launch takes it; a --param value is refused by ops exactly when the launch refuses it."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from ops import answers, names
from ops.cli import param_value
from ops.gcloud import Gcloud, Stop
from ops.lab import Catalog
from ops.names import Refused
from pipelines.core import grammar
from pipelines.core import names as google
from pipelines.core.params import (
    OneLineErrorParser,
    ParameterError,
    add_to_parser,
    check_required,
    check_syntax,
)
from tests.support.grammar_values import IDS, PARAMETERS, TROUBLE, mutated, strategy_for

READERS = [
    answers.job,
    answers.job_list,
    answers.launched_job_id,
    answers.metrics,
    answers.template_spec,
    answers.version_list,
    answers.project_number,
    answers.connection,
    answers.billing_account,
    answers.policy_roles,
    lambda value: answers.named_list(value, "budgets"),
    answers.image_tags,
    lambda value: answers.resources(value, "dashboards"),
    answers.created_name,
]
# The keys the readers look for, so that generated objects often have them.
KEYS = st.sampled_from(
    [
        "id", "name", "state", "type", "creationTime", "currentState", "labels", "template",
        "environment", "workerPools", "numWorkers", "autoscalingSettings", "maxNumWorkers",
        "pipelineDescription", "originalPipelineTransform", "job", "image", "sdkInfo",
        "language", "metadata", "timeCreated", "projectNumber", "installationState", "stage",
        "actionUri", "billingAccountName", "etag", "bindings", "role", "members", "x",
        "digest", "tags", "displayName",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "2026-01-01_00_00_00-42", "a/b:1", "COMPLETE", "1", "-1", "x.json"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), inner),
    max_leaves=25,
)


def one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message
    assert len(message) < 300, message


@settings(max_examples=200)
@given(value=JSON | st.just(answers.NOTHING))
def test_a_reader_returns_a_value_or_says_in_one_line_what_the_answer_was(value):
    for reader in READERS:
        try:
            reader(value)
        except answers.Wrong as wrong:
            one_line(str(wrong))


class Answering(Gcloud):
    """The real runner, with a gcloud that prints `out`."""

    def __init__(self, out: str):
        super().__init__(dry_run=False)
        self.answer = out

    def _execute(self, argv, *, capture, quiet, wait=0):
        return 0, self.answer, ""


@settings(max_examples=150)
@given(out=st.text(max_size=200) | JSON.map(json.dumps) | st.sampled_from(["[" * 5000, "NaN"]))
def test_any_output_is_a_value_or_one_line_naming_the_command(out):
    for reader in READERS:
        try:
            Answering(out).read(["gcloud", "dataflow", "jobs", "list"], None, reader)
        except Stop as stop:
            one_line(str(stop))
            assert str(stop).startswith("gcloud dataflow jobs list answered ")


def test_what_the_readers_take():
    job = answers.job(
        {
            "id": "j1",
            "labels": {"template": "mnist_stream"},
            "environment": {"workerPools": [{"numWorkers": "3"}]},
        }
    )
    assert (job.id, job.template, job.workers) == ("j1", "mnist_stream", ("3", "?"))
    spec = {"image": "r-docker.pkg.dev/p/repo/t:tag", "sdkInfo": {"language": "PYTHON"}}
    assert answers.template_spec({**spec, "metadata": {}}).image == spec["image"]
    for wrong in ({**spec, "metadata": []}, {**spec, "image": "not an image", "metadata": {}}):
        with pytest.raises(answers.Wrong):
            answers.template_spec(wrong)
    assert answers.project_number({"projectNumber": 12}) == "12"
    assert answers.billing_account({"billingAccountName": ""}) == ""
    with pytest.raises(answers.Wrong, match="a list of numbers, not a list of Dataflow jobs"):
        answers.job_list([1, 2])
    assert answers.shape(answers.NOTHING) == "nothing"


# --- one rule per name: ops and the templates on the same generated names -------------------

BUCKET_CHARS = st.sampled_from(list(google.BUCKET_CHARS + ".") + ["A", " ", "/", "g", "0"])


def bucket_names():
    made = st.text(BUCKET_CHARS, min_size=1, max_size=230)
    dotted = st.lists(st.text(BUCKET_CHARS, min_size=0, max_size=70), min_size=2, max_size=5).map(
        ".".join
    )
    return st.from_regex(grammar.BUCKET, fullmatch=True) | made | dotted | mutated(made)


def template_takes_bucket(bucket: str) -> bool:
    """What a template's launch takes as the bucket of a gs:// file (a / ends the bucket)."""
    value = f"gs://{bucket}/data.csv"
    if "/" in bucket:
        return False
    return grammar.GCS_FILE.problem(value) is None and google.gcs_problem(value) is None


def ops_takes(rule, value: str) -> bool:
    try:
        rule(value)
    except Refused as refused:
        one_line(str(refused))
        return False
    return True


@settings(max_examples=500)
@given(bucket_names())
def test_ops_and_the_templates_take_the_same_bucket_names(bucket):
    assert ops_takes(names.bucket, bucket) == template_takes_bucket(bucket), bucket


def test_the_two_buckets_the_issue_found():
    dotted = "a" * 40 + "." + "b" * 40  # 81 characters: Google allows up to 222 with dots
    assert ops_takes(names.bucket, dotted) and template_takes_bucket(dotted)
    assert not ops_takes(names.bucket, "a..b") and not template_takes_bucket("a..b")


PROJECT_CHARS = st.sampled_from(list(google.PROJECT_CHARS) + ["A", "_", ".", ":", " "])


@settings(max_examples=300)
@given(
    st.from_regex(grammar.PROJECT_ID, fullmatch=True)
    | st.text(PROJECT_CHARS, min_size=1, max_size=34).filter(lambda p: ":" not in p)
)
def test_ops_and_the_templates_take_the_same_project_ids(project):
    # A plain project ID (ops does not take domain-scoped ones, see ops/names.py).
    launch = grammar.PUBSUB_TOPIC.problem(f"projects/{project}/topics/lab") is None
    assert ops_takes(names.project_id, project) == launch, project


BQ_CHARS = st.sampled_from(list(google.TABLE_CHARS) + [".", ":", "\u00e4", "$"])


@settings(max_examples=300)
@given(st.text(BQ_CHARS, min_size=1, max_size=30), st.text(BQ_CHARS, min_size=1, max_size=30))
def test_ops_and_the_templates_take_the_same_dataset_and_table_names(dataset, table):
    table_ref = f"lab-project-123:{dataset}.{table}"
    launch = grammar.BIGQUERY_TABLE.problem(table_ref) is None
    ops = ops_takes(lambda v: names.dataset("DATASET", v), dataset) and ops_takes(
        lambda v: names.table("IMAGES_TABLE", v), table
    )
    assert ops == launch, table_ref


# --- --param values: ops refuses what the template's launch refuses ----------------------------

CATALOG = Catalog.from_registry()


def launch_refuses(parameter, value: str) -> bool:
    """The template's own launch on this one value: argparse (type, choices), then the
    required and syntax checks, on Dataflow."""
    parser = OneLineErrorParser(prog="launch")
    add_to_parser(parser, [parameter])
    try:
        args, _ = parser.parse_known_args([f"--{parameter.name}={value}"])
    except SystemExit:
        return True
    try:
        check_required(args, [parameter])
        check_syntax(args, [parameter], on_dataflow=True)
    except ParameterError:
        return True
    return False


@pytest.mark.parametrize(("template", "parameter"), PARAMETERS, ids=IDS)
def test_a_param_value_is_refused_exactly_when_the_launch_refuses_it(template, parameter, capsys):
    @settings(max_examples=40, deadline=None)
    @given(strategy_for(parameter.kind, parameter) | mutated(st.text(TROUBLE, max_size=5)))
    @example("--")  # argparse once made it an empty list that the launch let through
    def agree(value):
        note(f"value={value!r}")
        try:
            param_value(CATALOG[template], parameter.name, value)
            ops = False
        except Refused as refused:
            one_line(str(refused))
            assert str(refused).startswith(f"--param {parameter.name}: ")
            ops = True
        assert ops == launch_refuses(parameter, value)
        capsys.readouterr()  # argparse's own message, which the launch prints

    agree()


def test_invisible_characters_are_refused_in_any_value():
    for char in ("\u202e", "\u200b", "\u2066", "\ufeff", "\u2028"):
        with pytest.raises(Refused, match=re.escape(repr(char)[1:-1])):
            names.check_text("--param", f"output=gs://b/x{char}y")
