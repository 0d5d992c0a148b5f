"""One grammar per parameter kind, rendered twice: the console's regex and the launch's check.

A `Kind` states its syntax once, as a regex built (pipelines/core/regex.py) from the rules in
`names.py`. From it come (a) `console_regex()`: what `metadata/*.json` gives the Dataflow
console, JavaScript syntax matched against the whole value, like Google's own
`^gs:\\/\\/[^\\n\\r]+$`; and (b) `problem(value)`: the launch's syntax check, which accepts
exactly what that regex accepts and says in one line what is wrong.

JavaScript without the `u` flag sees a string as UTF-16 code units: a character outside the
Basic Multilingual Plane is two units to it. The launch matches the same units
(`utf16_units`), so both sides count and classify alike. Rules the regex cannot state are
listed in `names.BEYOND_THE_FORM` and checked at launch after the syntax.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.core import names
from pipelines.core.regex import (
    Chars,
    alt,
    decimal_range,
    group,
    lit,
    plain,
    rep,
    shaped,
)

# --- kinds --------------------------------------------------------------------------------


NOT_LOCAL = "not a local path"  # a local check's answer when the remote diagnosis should speak


def utf16_units(text: str) -> str:
    """`text` as JavaScript sees it without the `u` flag: a character beyond U+FFFF becomes
    its two surrogate code units, so that Python's re counts and classifies like the console."""
    if all(ord(c) <= 0xFFFF for c in text):
        return text
    out = []
    for c in text:
        code = ord(c)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF)))
        else:
            out.append(c)
    return "".join(out)


@dataclass(frozen=True)
class Kind:
    """A parameter kind: its syntax (`body`, a regex in the common syntax), what it looks like
    (`expected`, for messages) and a diagnosis that says which rule a refused value breaks."""

    name: str
    expected: str
    body: str
    diagnose: Callable[[str], str | None] | None = None
    # A local run also takes local paths (see local_or); None: the console's syntax everywhere.
    local: Callable[[str], str | None] | None = None
    # A number's range (low, high), both inclusive; None for the other kinds.
    bounds: tuple | None = None
    _compiled: dict = field(default_factory=dict, compare=False, repr=False)

    def console_regex(self) -> str:
        return f"^{group(self.body)}$"

    def accepts(self, value: str) -> bool:
        """Whether the console's regex accepts `value` (matched the way JavaScript does)."""
        pattern = self._compiled.get("re")
        if pattern is None:
            pattern = self._compiled["re"] = re.compile(self.body)
        return pattern.fullmatch(utf16_units(value)) is not None

    def problem(self, value: str, *, on_dataflow: bool = True) -> str | None:
        """None if `value` is well-formed, else one line saying what is wrong. On Dataflow
        exactly the console's regex; a local run may also take a local path (`local`)."""
        if self.accepts(value):
            return None
        local_problem = self.local(value) if self.local is not None else NOT_LOCAL
        if local_problem is None:
            if not on_dataflow:
                return None
            return (
                f"expected {self.expected}: Dataflow workers cannot use a local path, got {value!r}"
            )
        if local_problem != NOT_LOCAL and not on_dataflow:
            return local_problem  # written as a local path: say what is wrong with it
        reason = self.diagnose(value) if self.diagnose else None
        return reason or f"expected {self.expected}, got {value!r}"

    def argparse_type(self, convert: Callable[[str], object]) -> Callable[[str], object]:
        """An argparse `type`: the syntax check, then `convert` (which then cannot fail)."""

        def parse(text: str):
            problem = self.problem(text)
            if problem:
                raise argparse.ArgumentTypeError(problem)
            return convert(text)

        parse.__name__ = self.name
        return parse


# --- diagnosis helpers: which rule a refused value breaks (messages only) -------------------


def _shape_problem(
    what: str,
    value: str,
    *,
    first: Chars,
    middle: Chars,
    last: Chars,
    low: int,
    high: int,
    allowed: str,
    forbidden_prefixes: tuple[str, ...] = (),
    forbidden_names: tuple[str, ...] = (),
) -> str | None:
    units = utf16_units(value)
    if not low <= len(units) <= high:
        return f"{what} {value!r} has {len(units)} characters ({low} to {high})"
    for i, c in enumerate(units):
        where = first if i == 0 else last if i == len(units) - 1 else middle
        if c not in where:
            if i > 0 and i == len(units) - 1 and c in middle:
                return f"{what} {value!r} must not end with {c!r}"
            if i == 0 and (len(units) == 1 or c in middle):
                return f"{what} {value!r} must not start with {c!r} ({allowed})"
            return f"{what} {value!r} has {c!r}: {allowed}"
    for prefix in forbidden_prefixes:
        if value.startswith(prefix):
            return f"{what} {value!r} starts with the reserved {prefix!r}"
    if value in forbidden_names:
        return f"{what} cannot be {value!r}"
    return None


# --- Google Cloud names ---------------------------------------------------------------------

_PUBSUB_ID = {
    "first": Chars.of(names.PUBSUB_ID_FIRST),
    "middle": Chars.of(names.PUBSUB_ID_CHARS),
    "last": Chars.of(names.PUBSUB_ID_CHARS),
    "low": names.PUBSUB_ID_LENGTH[0],
    "high": names.PUBSUB_ID_LENGTH[1],
    "forbidden_prefixes": (names.PUBSUB_RESERVED_PREFIX,),
}
PUBSUB_ID = shaped(**_PUBSUB_ID)
_PUBSUB_ID_ALLOWED = "a letter first, then letters, digits and - _ . ~ + %"

_PROJECT = {
    "first": Chars.of(names.PROJECT_FIRST),
    "middle": Chars.of(names.PROJECT_CHARS),
    "last": Chars.of(names.PROJECT_LAST),
    "low": names.PROJECT_LENGTH[0],
    "high": names.PROJECT_LENGTH[1],
}
_DOMAIN_LABEL = shaped(
    Chars.of(names.DOMAIN_LABEL_ENDS),
    Chars.of(names.DOMAIN_LABEL_CHARS),
    Chars.of(names.DOMAIN_LABEL_ENDS),
    *names.DOMAIN_LABEL_LENGTH,
)
PROJECT_ID = shaped(**_PROJECT)
# A domain starts with a letter: Beam's parse_topic, which the pipeline runs, insists.
_DOMAIN = shaped(
    Chars.of(names.PROJECT_FIRST),
    Chars.of(names.DOMAIN_LABEL_CHARS),
    Chars.of(names.DOMAIN_LABEL_ENDS),
    *names.DOMAIN_LABEL_LENGTH,
) + rep(group(r"\." + _DOMAIN_LABEL), 1, None)
PROJECT = group(_DOMAIN + ":") + "?" + PROJECT_ID
_PROJECT_ALLOWED = "a project ID has 6-30 lower-case letters, digits and -, starts with a letter"


def project_problem(value: str) -> str | None:
    domain, colon, project = value.rpartition(":")
    if colon and not re.fullmatch(_DOMAIN, domain):
        return f"project {value!r}: {domain!r} is not a domain (example.com:my-project)"
    return _shape_problem("project ID", project, allowed=_PROJECT_ALLOWED, **_PROJECT)


def _pubsub_path(collections: tuple[str, ...]) -> Kind:
    body = (
        lit("projects/") + PROJECT + "\\/" + alt(*(lit(c) for c in collections)) + "\\/" + PUBSUB_ID
    )
    expected = " or ".join(f"projects/PROJECT/{c}/{c[:-1].upper()}" for c in collections)

    def diagnose(value: str) -> str | None:
        parts = value.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] not in collections:
            return f"expected {expected}, got {value!r}"
        what = {"topics": "topic", "subscriptions": "subscription"}[parts[2]] + " ID"
        return project_problem(parts[1]) or _shape_problem(
            what, parts[3], allowed=_PUBSUB_ID_ALLOWED, **_PUBSUB_ID
        )

    return Kind(f"Pub/Sub {'/'.join(collections)}", expected, body, diagnose)


PUBSUB_TOPIC = _pubsub_path(("topics",))
PUBSUB_SUBSCRIPTION = _pubsub_path(("subscriptions",))
PUBSUB_TOPIC_OR_SUBSCRIPTION = _pubsub_path(("topics", "subscriptions"))

# Buckets: 3-63 characters without dots; with dots, components of 1-63 characters.
_BUCKET_ENDS = Chars.of(names.BUCKET_ENDS)
_BUCKET_MIDDLE = Chars.of(names.BUCKET_CHARS)
_BUCKET_PLAIN = {
    "first": _BUCKET_ENDS,
    "middle": _BUCKET_MIDDLE,
    "last": _BUCKET_ENDS,
    "low": names.BUCKET_LENGTH[0],
    "high": names.BUCKET_LENGTH[1],
    "forbidden_prefixes": (names.BUCKET_RESERVED_PREFIX,),
}
_C = names.BUCKET_COMPONENT_MAX
BUCKET = alt(
    shaped(**_BUCKET_PLAIN),
    shaped(_BUCKET_ENDS, _BUCKET_MIDDLE, _BUCKET_MIDDLE, 1, _C, (names.BUCKET_RESERVED_PREFIX,))
    + rep(group(r"\." + rep(_BUCKET_MIDDLE.regex(), 1, _C)), 0, None)
    + r"\."
    + rep(_BUCKET_MIDDLE.regex(), 0, _C - 1)
    + _BUCKET_ENDS.regex(),
)
_BUCKET_ALLOWED = "lower-case letters, digits, - _ and . only, a letter or digit at each end"


def bucket_syntax_problem(bucket: str) -> str | None:
    if "." not in bucket:
        return _shape_problem("bucket name", bucket, allowed=_BUCKET_ALLOWED, **_BUCKET_PLAIN)
    for component in bucket.split("."):
        if not 1 <= len(component) <= _C:
            return f"bucket name {bucket!r}: each dot-separated part has 1 to {_C} characters"
    dotted = dict(_BUCKET_PLAIN, middle=Chars.of(names.BUCKET_CHARS + "."), high=len(bucket))
    return _shape_problem("bucket name", bucket, allowed=_BUCKET_ALLOWED, **dotted)


_OBJECT_CHARS = Chars.but(names.OBJECT_FORBIDDEN_CHARS)
_OBJECT_UNITS = names.OBJECT_MAX_BYTES  # the form counts UTF-16 units; bytes are checked after


def _object(last: Chars) -> str:
    return shaped(
        _OBJECT_CHARS,
        _OBJECT_CHARS,
        last,
        1,
        _OBJECT_UNITS,
        forbidden_names=names.OBJECT_FORBIDDEN_NAMES,
    )


OBJECT = _object(_OBJECT_CHARS)
OBJECT_NOT_FOLDER = _object(_OBJECT_CHARS.minus("/"))


def object_syntax_problem(name: str, *, folder_ok: bool = True) -> str | None:
    problem = _shape_problem(
        "object name",
        name,
        first=_OBJECT_CHARS,
        middle=_OBJECT_CHARS,
        last=_OBJECT_CHARS if folder_ok else _OBJECT_CHARS.minus("/"),
        low=1,
        high=_OBJECT_UNITS,
        allowed="no control characters (tab, newline, ...)",
        forbidden_names=names.OBJECT_FORBIDDEN_NAMES,
    )
    if problem and not folder_ok and name.endswith("/"):
        return f"{name!r} ends with /, which names a folder; expected a file (name/out)"
    return problem


def _gcs_kind(name: str, expected: str, object_regex: str | None, folder_ok: bool) -> Kind:
    """gs://BUCKET/OBJECT; with object_regex None, a folder: gs://BUCKET[/[PATH[/]]]."""
    if object_regex is None:
        body = lit("gs://") + group(BUCKET) + group("\\/" + group(OBJECT) + "?") + "?"
    else:
        body = lit("gs://") + group(BUCKET) + "\\/" + group(object_regex)

    def diagnose(value: str) -> str | None:
        if not value.startswith("gs://"):
            return f"expected {expected} (a Cloud Storage path), got {value!r}"
        bucket, slash, path = value[5:].partition("/")
        problem = bucket_syntax_problem(bucket)
        if problem:
            return problem
        if object_regex is None and not path:
            return None
        if not slash or not path:
            return f"expected {expected}: no object name after the bucket in {value!r}"
        return object_syntax_problem(path, folder_ok=folder_ok)

    return Kind(name, expected, body, diagnose)


GCS_FILE = _gcs_kind("Cloud Storage file", "gs://BUCKET/PATH", OBJECT, True)
GCS_PREFIX = _gcs_kind(
    "Cloud Storage file prefix", "gs://BUCKET/PATH/NAME", OBJECT_NOT_FOLDER, False
)
GCS_PATTERN = _gcs_kind(
    "Cloud Storage file or pattern",
    "gs://BUCKET/PATH (wildcards * ? allowed)",
    OBJECT_NOT_FOLDER,
    False,
)
GCS_FOLDER = _gcs_kind("Cloud Storage folder", "gs://BUCKET/PATH", None, True)

# BigQuery: PROJECT:DATASET.TABLE or PROJECT.DATASET.TABLE.
DATASET = rep(Chars.of(names.DATASET_CHARS).regex(), *names.DATASET_LENGTH)
TABLE_NAME = rep(Chars.of(names.TABLE_CHARS).regex(), *names.TABLE_LENGTH)
TABLE = PROJECT + "[.:]" + DATASET + r"\." + TABLE_NAME
_TABLE_PARTS = re.compile(rf"(?P<project>{PROJECT})[.:](?P<dataset>[^.]*)\.(?P<table>.*)", re.S)


def table_parts(value: str) -> dict[str, str]:
    """project, dataset and table of a value BIGQUERY_TABLE accepts."""
    return _TABLE_PARTS.fullmatch(value).groupdict()


def table_problem(value: str) -> str | None:
    parts = _TABLE_PARTS.fullmatch(value)
    if not parts:
        head = re.split(r"[.:]", value, maxsplit=1)[0]
        if ("." in value or ":" in value) and head and not re.fullmatch(PROJECT_ID, head):
            problem = project_problem(head)
            if problem:
                return f"{problem} (in {value!r}, PROJECT:DATASET.TABLE)"
        return None
    dataset, table = parts["dataset"], parts["table"]
    if not re.fullmatch(DATASET, dataset):
        return f"dataset {dataset!r} in {value!r}: 1 to 1024 letters, digits and _ (no - or spaces)"
    if not re.fullmatch(TABLE_NAME, table):
        return (
            f"table name {table!r} in {value!r}: 1 to 1024 letters, digits, _, - and "
            f"spaces (non-ASCII letters: see README)"
        )
    return None


BIGQUERY_TABLE = Kind(
    "BigQuery table", "PROJECT:DATASET.TABLE or PROJECT.DATASET.TABLE", TABLE, table_problem
)


def either(name: str, expected: str, *kinds: Kind) -> Kind:
    """A value of any of `kinds`; the diagnosis is that of the kind the value looks like."""

    def diagnose(value: str) -> str | None:
        gcs = value.startswith("gs://")
        for kind in kinds:
            if kind.name.startswith("Cloud Storage") == gcs and kind.diagnose:
                return kind.diagnose(value)
        return None

    return Kind(name, expected, alt(*(k.body for k in kinds)), diagnose)


TABLE_OR_FILE = either(
    "BigQuery table or Cloud Storage file",
    "PROJECT:DATASET.TABLE or gs://BUCKET/PATH",
    BIGQUERY_TABLE,
    GCS_PATTERN,
)


# --- local paths (local runs only) ----------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def local_path_problem(value: str) -> str | None:
    """A local path: any text without control characters that is not written like a remote
    location (gs://..., or PROJECT:DATASET.TABLE; checks.LOCATION_RULE)."""
    if not value:
        return "expected a path, got an empty value"
    if _CONTROL.search(value):
        return (
            f"{value!r} has a control character (NUL, newline, ...); no path, object or table "
            f"name can"
        )
    if value.startswith("gs://"):
        return NOT_LOCAL
    return None


def local_or(kind: Kind, local: Callable[[str], str | None] = local_path_problem) -> Kind:
    """`kind` in the console and on Dataflow; on a local run also a local path."""
    return Kind(kind.name, kind.expected, kind.body, kind.diagnose, local, kind.bounds)


# --- numbers and choices --------------------------------------------------------------------


def number_kind(low, high, *, integer: bool = False) -> Kind:
    what = "a whole number" if integer else "a number"
    expected = f"{what} from {plain(low)} to {plain(high)}"
    body = decimal_range(low, high, fraction=not integer)
    syntax = re.compile(r"[+-]?[0-9]+" if integer else r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")

    def diagnose(value: str) -> str | None:
        if not syntax.fullmatch(value):
            if integer and re.fullmatch(
                r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", value
            ):
                return f"expected {expected} (digits only), got {value!r}"
            if re.fullmatch(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+\s*", value):
                return f"expected {expected} written without an exponent, got {value!r}"
            return f"expected {expected}, got {value!r}"
        return f"expected {expected}, got {value}: out of range"

    return Kind(f"number {plain(low)}..{plain(high)}", expected, body, diagnose, bounds=(low, high))


def enum_kind(values: tuple[str, ...]) -> Kind:
    expected = "one of " + ", ".join(values)
    return Kind("choice", expected, alt(*(lit(v) for v in values)))
