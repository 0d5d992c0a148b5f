"""The environment variables the jobs and tools read, over empty, absurd and hostile values
(hypothesis where the value is free text): each is taken, or refused in one line, or falls
back to its default; never a traceback, never a hang. docs/boundaries.md lists them."""

from __future__ import annotations

import os
from unittest import mock

import pytest
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, WorkerOptions
from hypothesis import given
from hypothesis import strategies as st

from ops import settings as ops_settings
from ops.names import Refused
from pipelines.core import launch
from pipelines.core.models import MODELS_DIR_ENV, models_dir
from pipelines.io import pubsub
from pipelines.mnist.location import model_problem, resolve_model
from pipelines.pedestrian.options import DetectorMissing, check_detector_installed
from tests.support.hostile import one_line
from tools import design_frames, pubsub_cli

# What an environment can hold (no NUL, no lone surrogate); no ":" so that no value names
# a bucket or a URL this unit test would then ask about. Long ones pass the file system's
# limits on a name (255 bytes) and a path (4096 bytes).
ENV_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00:"), max_size=40
) | st.builds(lambda c, n: c * n, st.sampled_from("a/."), st.integers(250, 5000))


@given(ENV_TEXT)
def test_the_models_folder_variable_is_a_folder_or_one_line_at_launch(value):
    with mock.patch.dict(os.environ, {MODELS_DIR_ENV: value}):
        if not value:
            assert models_dir().name == "models"  # empty: the checkout's own folder
        try:
            check_detector_installed()
        except DetectorMissing as error:
            one_line(str(error).replace(value, "V") if value else str(error))  # long: named
        problem = model_problem(resolve_model(None), default=True)
        assert problem is None or "\n" not in problem


def test_the_sdk_container_image_variable_is_used_only_when_set(monkeypatch):
    def dataflow_options():
        options = PipelineOptions(["--runner=DataflowRunner"])
        launch.apply_defaults(options, streaming=False)
        return options.view_as(WorkerOptions), options.view_as(SetupOptions)

    monkeypatch.setenv(launch.SDK_CONTAINER_IMAGE_ENV, "")
    worker, setup = dataflow_options()
    assert worker.sdk_container_image is None and setup.sdk_location == "default"
    monkeypatch.setenv(launch.SDK_CONTAINER_IMAGE_ENV, "region-docker.pkg.dev/p/r/wordcount:1")
    worker, setup = dataflow_options()
    assert worker.sdk_container_image == "region-docker.pkg.dev/p/r/wordcount:1"
    assert setup.sdk_location == "container"


@pytest.mark.parametrize(
    "host", ["", " ", "127.0.0.1:1", "127.0.0.1:99999", "::::", "a b", "x" * 300]
)
def test_an_absurd_pubsub_emulator_host_makes_a_lookup_cannot_tell(monkeypatch, host):
    import google.auth

    def no_credentials(**_):
        raise google.auth.exceptions.DefaultCredentialsError("none")

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
    monkeypatch.setattr(google.auth, "default", no_credentials)
    lookup = pubsub.PubsubLookup()
    assert lookup.topic_exists("projects/lab-project/topics/x") is None


@given(ENV_TEXT)
def test_the_design_frames_variable_is_a_folder_or_one_line_saying_where(value):
    with mock.patch.dict(os.environ, {design_frames.ENV: value}):
        absent = design_frames.missing()
    assert absent is None or "\n" not in absent


@given(st.sampled_from(["GOOGLE_CLOUD_PROJECT", "PROJECT"]), ENV_TEXT)
def test_the_tools_project_variable_names_a_topic_or_is_one_line_and_exit_2(variable, value):
    try:
        path = pubsub_cli.resource_path(value or None, "camera_frames", "topics")
    except SystemExit as exited:
        assert exited.code == 2 or (not value and "--project is needed" in str(exited.code))
        return
    assert path == f"projects/{value}/topics/camera_frames"


OPS_VARIABLES = (
    *ops_settings.ENVIRONMENT,
    "PROJECT",
    "GOOGLE_CLOUD_PROJECT",
    "REGION",
    "BUILD_REGION",
    "BUCKET",
    "CSV",
    "PYTHON",
    "GITHUB_REPO",
    "MAX_WORKERS",
    "MAX_HOURS",
    "CHECK_MINUTES",
    "DRY_RUN",
    "YES",
    "OPS_GCLOUD_TIMEOUT",
)
ops_values = ENV_TEXT | st.sampled_from(["lab-project", "0", "1", "99999", "-1", "gs://b/", "a..b"])


@given(st.dictionaries(st.sampled_from(OPS_VARIABLES), ops_values))
def test_ops_settings_from_any_environment_are_settings_or_one_line(env):
    try:
        ops_settings.gcloud_timeout(env)
        settings = ops_settings.resolve(ops_settings.Options(), env, lambda: "")
    except Refused as error:
        one_line(str(error))
        return
    assert settings.project and settings.bucket and 1 <= settings.max_workers <= 9999
