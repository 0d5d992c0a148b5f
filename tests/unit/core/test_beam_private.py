"""Pins every private Beam name pipelines/core/beam_private.py uses: each test fails if the
installed Beam no longer has it or no longer behaves as that module relies on. And no
module of `pipelines/` but that one reaches into Beam's private names."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.util import assert_that, equal_to

from pipelines.core import beam_private

PACKAGE = Path(__file__).resolve().parents[3] / "pipelines"


def test_no_module_but_beam_private_uses_private_beam_names():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "beam_private.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("apache_beam"):
                offenders += [
                    f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")
                ]
        text = path.read_text()
        offenders += [
            f"{path.name}: {m}"
            for m in re.findall(
                r"\b(?:transform_evaluator|bigquery_tools|pipeline_options)\._\w+", text
            )
        ]
        offenders += [
            f"{path.name}: {m}"
            for m in re.findall(r"\w+\._(?:add_argparse_args|delete_table)\b", text)
        ]
        # Beam's BigQuery helpers, "no backwards compatibility guarantees": the public
        # google-cloud-bigquery client does what the jobs need (pipelines/io/bigquery.py).
        if re.search(r"\bbigquery_tools\b", text):
            offenders.append(f"{path.name}: bigquery_tools")
    assert not offenders


def test_beams_argument_parser_knows_every_option_and_reports_the_rest():
    parser = beam_private.beam_argument_parser(allow_abbrev=False)
    for options_class in (StandardOptions, beam.options.pipeline_options.GoogleCloudOptions):
        beam_private.add_option_arguments(options_class, parser)
    known, unknown = parser.parse_known_args(
        ["--runner=DataflowRunner", "--project=p", "--outptu=x", "--proj=q"]
    )
    assert known.runner == "DataflowRunner" and known.project == "p"
    assert unknown == ["--outptu=x", "--proj=q"]  # no abbreviations either


def test_the_in_process_direct_runner_never_tries_prism(monkeypatch, caplog):
    from apache_beam.runners.portability import prism_runner

    tried = []

    def refuse(self, *args, **kwargs):
        tried.append(self)
        raise RuntimeError("PrismRunner would download its binary")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", refuse)
    caplog.set_level(logging.INFO)

    def run(runner):
        with beam.Pipeline(runner=runner, options=PipelineOptions()) as pipeline:
            assert_that(
                pipeline | beam.Create([1, 2]) | beam.Map(lambda x: x * 10), equal_to([10, 20])
            )

    run(beam_private.in_process_direct_runner())
    assert tried == [] and "PrismRunner" not in caplog.text
    # The control: Beam's own DirectRunner does try it (and so would download it).
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

    run(SwitchingDirectRunner())
    assert len(tried) == 1 and "Running pipeline with PrismRunner" in caplog.text


class AppliedTransform:
    pass


class FakeBeamClient:
    """What `google.cloud.pubsub.SubscriberClient()` is to the DirectRunner's read."""

    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class Wrapper:
    wraps_beams_client = True

    def __init__(self, client):
        from google.pubsub_v1 import types

        self.wrapped = client
        self.pulls, self.acks = [], []
        self.response = types.PullResponse(
            received_messages=[
                types.ReceivedMessage(
                    ack_id="ack-1",
                    message=types.PubsubMessage(
                        data=b"d",
                        attributes={"k": "v"},
                        message_id="1",
                        publish_time={"seconds": 5},
                    ),
                )
            ]
        )

    def pull(self, **kwargs):
        self.pulls.append(kwargs)
        return self.response

    def acknowledge(self, **kwargs):
        self.acks.append(kwargs)

    def close(self):
        self.wrapped.close()


def test_the_direct_runners_pubsub_read_goes_through_the_wrapped_client(monkeypatch):
    from google.cloud import pubsub

    evaluator = beam_private.pubsub_read_evaluator()
    # Beam's own method (kept by the wrapping, which may already have happened here).
    original = evaluator.__dict__.get(
        "_pipelines_original", evaluator.__dict__["_get_subscriber_client_state_unlocked"]
    )
    monkeypatch.setattr(evaluator, "_get_subscriber_client_state_unlocked", original)
    monkeypatch.setattr(evaluator, "_pipelines_wrapped", False, raising=False)
    monkeypatch.setattr(evaluator, "_pipelines_original", original, raising=False)
    monkeypatch.setattr(pubsub, "SubscriberClient", FakeBeamClient)
    wrapped = []
    assert beam_private.wrap_direct_pubsub_subscriber(
        lambda c: wrapped.append(Wrapper(c)) or wrapped[-1]
    )

    reader = object.__new__(evaluator)
    reader._applied_ptransform = AppliedTransform()  # the cache key (weakly held)
    reader._sub_name = "projects/p/subscriptions/s"
    [(timestamp, message)] = reader._read_from_pubsub(None)
    (client,) = wrapped
    assert isinstance(client.wrapped, FakeBeamClient)
    assert client.pulls == [
        {"subscription": "projects/p/subscriptions/s", "max_messages": 10, "timeout": 30}
    ]
    assert client.acks == [{"subscription": "projects/p/subscriptions/s", "ack_ids": ["ack-1"]}]
    assert (message.data, message.attributes, message.message_id) == (b"d", {"k": "v"}, "1")
    assert timestamp.micros == 5_000_000
    # The local subscriber answers with views of the raw protobuf instead: read the same.
    from google.pubsub_v1 import types

    from pipelines.local.subscriber import received_messages

    client.response = SimpleNamespace(received_messages=received_messages(client.response))
    assert not isinstance(client.response.received_messages[0], types.ReceivedMessage)
    [(timestamp_2, message_2)] = reader._read_from_pubsub(None)
    assert (timestamp_2, message_2) == (timestamp, message)
    assert message_2.publish_time == message.publish_time
    assert len(wrapped) == 1  # one client per read, cached

    beam_private.close_direct_pubsub_reads()
    assert client.wrapped.closed
    evaluator._subscriber_client_cache.pop(reader._applied_ptransform, None)
