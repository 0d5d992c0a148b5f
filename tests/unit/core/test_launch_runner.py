"""A local run is the runner the tests prove: Beam's in-process runners, never the
PrismRunner that Beam's DirectRunner would first download at run time."""

from __future__ import annotations

import logging

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.core.launch import apply_defaults, local_runner, run_template
from tests.support.processes import read_shards


@pytest.mark.parametrize("streaming", [False, True])
def test_local_defaults_pin_the_in_process_runner(streaming):
    options = PipelineOptions([])
    apply_defaults(options, streaming=streaming)
    runner = local_runner(options)
    assert type(runner).__name__ == "SwitchingDirectRunner" and runner._is_interactive
    assert local_runner(PipelineOptions(["--runner=DataflowRunner"])) is None
    assert local_runner(PipelineOptions(["--runner=BundleBasedDirectRunner"])) is None


def test_a_local_batch_run_never_tries_prism(tmp_path, monkeypatch, caplog):
    from apache_beam.runners.portability import prism_runner

    tried = []

    def refuse(self, *args, **kwargs):
        tried.append(args)
        raise RuntimeError("would download the Prism binary")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", refuse)
    caplog.set_level(logging.INFO)
    source = tmp_path / "in.txt"
    source.write_text("to be or not to be\n")
    run_template("wordcount", [f"--input={source}", f"--output={tmp_path / 'out'}"])
    assert tried == []
    assert "PrismRunner" not in caplog.text
    assert sorted(read_shards(tmp_path / "out")) == ["be: 2", "not: 1", "or: 1", "to: 2"]
