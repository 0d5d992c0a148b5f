"""What ops reads from gcloud's JSON answers: one small reader per kind of answer.

gcloud's answers are not ops' to trust: a changed field, a proxy's error page, an empty
output. Each reader takes the parsed answer (NOTHING for an empty output), keeps only what
a command needs, in the type it needs it, and raises `Wrong` saying what the answer was
instead. `Gcloud.read` and `Gcloud.launch` turn that into one line naming the gcloud command,
exit 1; nothing downstream sees an answer no reader has passed.

A field a command needs must be there, of its type; a field it can do without may be absent
(or null), but not of another type. The cost report (ops/cost.py) reads metric entries
itself, tolerantly; `metrics` only makes sure it gets a list of named entries.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NOTHING = object()  # an empty output: gcloud --format=json prints [] or {} when there is none


class Wrong(ValueError):
    """An answer of another shape than the reader's; the message says what it was."""


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape(value) -> str:
    """What an answer is, in a few words (never its content: it may be long or hostile)."""
    if value is NOTHING:
        return "nothing"
    kind = _kind(value)
    if kind == "list":
        kinds = sorted({_kind(item) for item in value})
        if not kinds:
            return "an empty list"
        return "a list of " + " and ".join(k if k == "null" else k + "s" for k in kinds)
    return kind if kind == "null" else ("an " if kind == "object" else "a ") + kind


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise Wrong(f"{shape(value)}, not {what}")
    return value


def _list(value, what: str) -> list:
    if not isinstance(value, list):
        raise Wrong(f"{shape(value)}, not {what}")
    return value


def _objects(value, what: str) -> list[dict]:
    """A list of objects (said whole when it is not: "a list of numbers")."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Wrong(f"{shape(value)}, not {what}")
    return value


def _text(entry: dict, key: str, what: str, *, required: bool = False) -> str:
    """A text field: "" when absent or null and not required."""
    value = entry.get(key)
    if value is None and not required:
        return ""
    if key not in entry:
        raise Wrong(f"{what} without {key}")
    if not isinstance(value, str) or (required and not value):
        raise Wrong(f"{what} whose {key} is {shape(value)}, not a text")
    return value


def _section(entry: dict, key: str, what: str) -> dict:
    """An object field that may be absent: {} then."""
    value = entry.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Wrong(f"{what} whose {key} is {shape(value)}, not an object")
    return value


def _count(value, what: str, key: str) -> str:
    """A worker count for display: a whole number (gcloud gives int64 as number or text)."""
    if value is None:
        return "?"
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
        return value
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
        and float(value).is_integer()
    ):
        return str(int(value))
    raise Wrong(f"{what} whose {key} is {shape(value)}, not a whole number")


# --- Dataflow jobs ---------------------------------------------------------------------------

JOB = "a Dataflow job (an object with an id)"
JOB_LIST = "a list of Dataflow jobs (objects with id and name)"


@dataclass(frozen=True)
class JobSummary:
    """One job of `gcloud dataflow jobs list` (its list form)."""

    id: str
    name: str
    state: str = ""
    type: str = ""
    created: str = ""


def job_list(value) -> list[JobSummary]:
    found = []
    for entry in _objects(value, JOB_LIST):
        found.append(
            JobSummary(
                id=_text(entry, "id", "a job", required=True),
                name=_text(entry, "name", "a job", required=True),
                state=_text(entry, "state", "a job"),
                type=_text(entry, "type", "a job"),
                created=_text(entry, "creationTime", "a job"),
            )
        )
    return found


@dataclass(frozen=True)
class Job:
    """A job as `gcloud dataflow jobs describe` gives it (`raw`, for the cost report), with
    the fields ops uses read and typed."""

    id: str
    name: str
    state: str
    template: str  # the template label, "" when none
    workers: tuple[str, str]  # at start, at most ("?" when not said)
    steps: tuple[str, ...]  # top-level step names
    raw: dict = field(compare=False, repr=False)


def job(value) -> Job:
    entry = _object(value, JOB)
    what = "a job"
    labels = _section(entry, "labels", what)
    template = labels.get("template")
    if template is not None and not isinstance(template, str):
        raise Wrong(f"a job whose template label is {shape(template)}, not a text")
    pools = _section(entry, "environment", what).get("workerPools")
    pool = {}
    if pools is not None:
        pools = _list(pools, "a list of worker pools")
        pool = _object(pools[0], "a worker pool (an object)") if pools else {}
    scaling = _section(pool, "autoscalingSettings", "a worker pool")
    transforms = _section(entry, "pipelineDescription", what).get("originalPipelineTransform")
    steps = set()
    for transform in _objects(transforms or [], "a list of transforms"):
        name = _text(transform, "name", "a transform")
        if name.split("/")[0]:
            steps.add(name.split("/")[0])
    return Job(
        id=_text(entry, "id", what, required=True),
        name=_text(entry, "name", what),
        state=_text(entry, "currentState", what),
        template=template or "",
        workers=(
            _count(pool.get("numWorkers"), "a worker pool", "numWorkers"),
            _count(scaling.get("maxNumWorkers"), "a worker pool", "maxNumWorkers"),
        ),
        steps=tuple(sorted(steps)),
        raw=entry,
    )


def launched_job_id(value) -> str:
    """The job a `gcloud dataflow flex-template run` started: {"job": {"id": ...}}."""
    started = _object(value, "a launch answer (an object with a job)")
    inner = _object(started.get("job"), "a launch answer's job (an object with an id)")
    return _text(inner, "id", "a launched job", required=True)


METRICS = "a list of job metrics (objects with a name)"


def metrics(value) -> list[dict]:
    """`gcloud beta dataflow metrics list`'s entries: each an object whose name is an object
    with a name. Their values are ops/cost.py's to read (it skips what it cannot use)."""
    found = []
    for entry in _objects(value, METRICS):
        name = _section(entry, "name", "a metric")
        _text(name, "name", "a metric name", required=True)
        found.append(entry)
    return found


# --- template specs and their kept versions -----------------------------------------------

# A container image reference (https://github.com/distribution/reference, the grammar
# docker and Artifact Registry use): HOST[:PORT]/PATH[:TAG][@sha256:DIGEST].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(
    r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    rf"(?::[0-9]+)?(?:/{_COMPONENT})+(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@sha256:[0-9a-f]{64})?"
)
SPEC = "a Flex Template spec (an object with image, sdkInfo and metadata)"


@dataclass(frozen=True)
class Spec:
    image: str
    language: str


def template_spec(value) -> Spec:
    """A Flex Template spec as `gcloud dataflow flex-template build` writes it: {"image",
    "sdkInfo": {"language"}, "metadata", "defaultEnvironment"}. Only such a spec may become
    the one the console and `run` launch."""
    spec = _object(value, SPEC)
    image = _text(spec, "image", "a spec", required=True)
    if len(image) > 1024 or not IMAGE.fullmatch(image):
        raise Wrong("a spec whose image is not an image reference (HOST/PATH:TAG)")
    language = _text(_section(spec, "sdkInfo", "a spec"), "language", "a spec's sdkInfo")
    if not language:
        raise Wrong("a spec without sdkInfo.language, not " + SPEC)
    if not isinstance(spec.get("metadata"), dict):
        raise Wrong(f"a spec whose metadata is {shape(spec.get('metadata'))}, not an object")
    return Spec(image=image, language=language)


VERSIONS = "a list of Cloud Storage objects (each with a name)"


@dataclass(frozen=True)
class Version:
    tag: str
    created: str  # "" when not said
    image: str  # "" when not said


def version_list(value) -> list[Version]:
    """`gcloud storage objects list --raw` of the kept specs, newest first."""
    found = []
    for entry in _objects(value, VERSIONS):
        name = _text(entry, "name", "an object", required=True)
        if not name.endswith(".json"):
            raise Wrong(f"an object that is not a kept spec (NAME/TAG.json): {name[-40:]!r}")
        found.append(
            Version(
                tag=name.rsplit("/", 1)[-1].removesuffix(".json"),
                created=_text(entry, "timeCreated", "an object"),
                image=_text(_section(entry, "metadata", "an object"), "image", "an object"),
            )
        )
    return sorted(found, key=lambda v: v.created, reverse=True)


# --- images and Cloud Monitoring ---------------------------------------------------------------

IMAGE_TAGS = "a list of images (objects with a digest and a list of tags)"


def image_tags(value) -> list[dict]:
    """`gcloud container images list-tags`: each image's digest and tags (ops/commands/launcher
    picks the dated ones)."""
    found = _objects(value, IMAGE_TAGS)
    for entry in found:
        _text(entry, "digest", "an image", required=True)
        tags = entry.get("tags")
        if tags is not None and not (
            isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)
        ):
            raise Wrong(f"an image whose tags are {shape(tags)}, not a list of texts")
    return found


def resources(value, what: str) -> list[dict]:
    """A monitoring list (dashboards, policies, channels): objects with a name, and a
    displayName when they say one (ops/commands/monitoring tells ours by it)."""
    found = _objects(value, f"a list of {what} (objects with a name)")
    for entry in found:
        _text(entry, "name", "an entry", required=True)
        _text(entry, "displayName", "an entry")
    return found


def created_name(value) -> str:
    """The resource name a `create` answers with."""
    created = _object(value, "a created resource (an object with a name)")
    return _text(created, "name", "a created resource", required=True)


# --- projects, billing, Cloud Build ---------------------------------------------------------


def project_number(value) -> str:
    described = _object(value, "a project (an object with projectNumber)")
    number = described.get("projectNumber")
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return str(number)
    if isinstance(number, str) and re.fullmatch(r"[1-9][0-9]{0,19}", number):
        return number
    raise Wrong(f"a project whose projectNumber is {shape(number)}, not a number")


@dataclass(frozen=True)
class Connection:
    stage: str
    action_uri: str


def connection(value) -> Connection:
    described = _object(value, "a connection (an object with installationState)")
    state = _object(described.get("installationState"), "a connection's installationState")
    return Connection(
        stage=_text(state, "stage", "an installation state", required=True),
        action_uri=_text(state, "actionUri", "an installation state"),
    )


def billing_account(value) -> str:
    """The project's billing account ID, "" when it has none (gcloud then says "")."""
    info = _object(value, "a project's billing info (an object with billingAccountName)")
    if not isinstance(info.get("billingAccountName"), str):
        raise Wrong(
            f"billing info whose billingAccountName is {shape(info.get('billingAccountName'))}"
        )
    return info["billingAccountName"].removeprefix("billingAccounts/")


def named_list(value, what: str) -> list[str]:
    """The `name` of each entry of a list of resources (budgets, repositories)."""
    listing = f"a list of {what} (objects with a name)"
    return [_text(entry, "name", what[:-1], required=True) for entry in _objects(value, listing)]


def policy_roles(value) -> dict[str, set[str]]:
    """An IAM policy's bindings: member -> roles. Every policy has an etag; one without
    bindings grants nothing."""
    policy = _object(value, "an IAM policy (an object with an etag)")
    _text(policy, "etag", "a policy", required=True)
    roles: dict[str, set[str]] = {}
    listing = "a policy whose bindings are a list of objects"
    for binding in _objects(policy.get("bindings") or [], listing):
        role = _text(binding, "role", "a binding", required=True)
        for member in _list(binding.get("members") or [], "a list of members"):
            if not isinstance(member, str):
                raise Wrong(f"a binding whose member is {shape(member)}, not a text")
            roles.setdefault(member, set()).add(role)
    return roles


# How a stream job runs at least once: the experiment (or service option) `run` passes, and
# the Job resource's environment.streamingMode values (Dataflow v1b3; gcloud's generated
# dataflow_v1b3_messages.Environment.StreamingModeValueValuesEnum).
AT_LEAST_ONCE = "streaming_mode_at_least_once"
STREAMING_MODES = {
    "STREAMING_MODE_AT_LEAST_ONCE": True,
    "STREAMING_MODE_EXACTLY_ONCE": False,
}


def streaming_mode(job: object) -> bool | None:
    """Whether a job (`jobs describe --full`) runs at least once: True, False, or None when
    its answer does not say."""
    environment = job.get("environment") if isinstance(job, dict) else None
    if not isinstance(environment, dict):
        return None
    mode = environment.get("streamingMode")
    if isinstance(mode, str) and mode in STREAMING_MODES:
        return STREAMING_MODES[mode]
    # A job launched with the experiment, as run passes it, before the field was filled.
    options = [
        *(environment.get("experiments") or []),
        *(environment.get("serviceOptions") or []),
    ]
    if any(option == AT_LEAST_ONCE for option in options if isinstance(option, str)):
        return True
    return None
