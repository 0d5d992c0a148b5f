"""What a value must look like before ops hands it to gcloud: one rule per kind of name.

Every refusal is a `Refused`: one line naming the value, exit 2, before anything runs. A
value is shown cut to SHOWN characters and with control characters escaped, so that a
pasted 10,000-character or multi-line value gives one short line, never an echo of itself.

The rules ops shares with the templates (project ID, bucket, BigQuery dataset and table) are
the templates' own: the console form's regexes from `pipelines/core/grammar.py` and the rules
beyond the form from `pipelines/core/names.py`, which quotes Google's pages. Where ops and
the form disagreed (ops refused an 81-character dotted bucket name, which Google allows up to
222 characters, and took `a..b`, whose empty component Google refuses:
https://cloud.google.com/storage/docs/buckets#naming), the form was right.

ops' own rules, each from Google's page:
  region       e.g. us-central1 https://cloud.google.com/dataflow/docs/resources/locations
  job name     [a-z]([-a-z0-9]{0,1022}[a-z0-9])? (the Job resource's name field,
               https://cloud.google.com/dataflow/docs/reference/rest/v1b3/projects.jobs)
  job ID       what Dataflow gives: YYYY-MM-DD_HH_MM_SS-NUMBER
  account ID   6-30 of a-z 0-9 -, a letter first (gcloud iam service-accounts create)
  label value  up to 63 of a-z 0-9 - _ (a build tag is one: the specs carry tag=TAG)
               https://cloud.google.com/resource-manager/docs/labels-overview
A project ID is a plain one: ops derives the bucket and the service accounts' e-mail
addresses from it, which a domain-scoped project (example.com:my-project) would not give.

Any value at all is refused when it holds a control character, a bidirectional control or a
zero-width character: a value is printed into commands that a user reads and pastes, and
these make a command read differently from what it runs.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

from pipelines.core import grammar
from pipelines.core import names as google

SHOWN = 40
# Longer than any name or path Google Cloud takes (a Cloud Storage object name: 1,024 bytes).
MAX_VALUE = 2048


class Refused(ValueError):
    """A value that cannot be right: one line, exit 2."""


def shown(value: str) -> str:
    """The value as an error message may show it: quoted, control characters escaped,
    cut to SHOWN characters (escapes counted as written) with the full length said."""
    text = ""
    for c in value:
        written = c if c.isprintable() else repr(c)[1:-1]
        if len(text) + len(written) > SHOWN:
            return f"'{text}...' ({len(value)} characters)"
        text += written
    return f"'{text}'"


# Bidirectional controls (Unicode's Bidi_Control property: they reorder what a terminal
# shows, https://www.unicode.org/reports/tr9/) and zero-width characters (invisible).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


def _hidden(char: str) -> str | None:
    """What makes `char` unfit for a value shown in a command, or None."""
    category = unicodedata.category(char)
    if category == "Cc":
        return "a control character"
    if char in BIDI_CONTROLS:
        return "a bidirectional control"
    if char in ZERO_WIDTH:
        return "a zero-width character"
    if category in ("Zl", "Zp"):
        return "a line separator"
    return None


def check_text(what: str, value: str, limit: int = MAX_VALUE) -> str:
    """Any value at all: no control, bidirectional-control or zero-width characters, not
    over-long."""
    for i, char in enumerate(value):
        kind = _hidden(char)
        if kind:
            raise Refused(
                f"{what} holds {kind} ({repr(char)[1:-1]} at position {i + 1}): {shown(value)}"
            )
    if len(value) > limit:
        raise Refused(f"{what} is too long ({len(value)} characters; at most {limit})")
    return value


def _rule(pattern: str):
    compiled = re.compile(pattern)

    def check(what: str, value: str, explanation: str) -> str:
        check_text(what, value)
        if not compiled.fullmatch(value):
            raise Refused(f"{what} {shown(value)} is not valid: {explanation}")
        return value

    return check


_project = _rule(grammar.PROJECT_ID)
_bucket = _rule(grammar.BUCKET)
_region = _rule(r"[a-z]+-[a-z]+[0-9]+")
_account = _rule(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_job_name = _rule(r"[a-z]([-a-z0-9]{0,1022}[a-z0-9])?")
_label_value = _rule(r"[a-z0-9_-]{1,63}")
_resource_id = _rule(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_dataset = _rule(grammar.DATASET)
_table = _rule(grammar.TABLE_NAME)
_github = _rule(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")

JOB_ID = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}-[0-9]+")


def project_id(value: str) -> str:
    return _project("project ID", value, "6-30 characters: a-z, 0-9, -; a letter first, no - last")


def bucket(value: str) -> str:
    check_text("bucket name", value, google.BUCKET_DOTTED_MAX)
    if value.startswith(google.BUCKET_RESERVED_PREFIX) or google.bucket_problem(value):
        raise Refused(
            f"bucket name {shown(value)} is not valid: Google reserves goog... and names "
            "holding google or a close misspelling, and refuses IP addresses"
        )
    return _bucket(
        "bucket name",
        value,
        "3-63 of a-z 0-9 - _ . (up to 222 with dots, 63 between), a letter or digit at each end",
    )


def region(value: str, what: str = "region") -> str:
    return _region(what, value, "a region such as northamerica-northeast2")


def account_id(value: str, variable: str) -> str:
    return _account(
        f"service account ID ({variable})",
        value,
        "it must be 6-30 characters, start with a letter, and hold only a-z, 0-9 and - "
        "(the lab's $PROJECT-DFSA is not valid: it has capitals, and is too long for most "
        f"project IDs). Set {variable}.",
    )


def job_name(value: str) -> str:
    return _job_name(
        "job name",
        value,
        "Dataflow takes a-z, 0-9 and -, a letter first, a letter or digit last, "
        "at most 1,024 characters",
    )


def is_job_id(value: str) -> bool:
    return JOB_ID.fullmatch(value) is not None


def tag(value: str) -> str:
    return _label_value("tag", value, "a build tag is a label value: up to 63 of a-z, 0-9, -, _")


def resource_id(what: str, value: str) -> str:
    return _resource_id(what, value, "a-z, 0-9 and -, a letter first, at most 63 characters")


def dataset(what: str, value: str) -> str:
    return _dataset(what, value, "1-1024 letters, digits and _")


def table(what: str, value: str) -> str:
    return _table(what, value, "1-1024 letters, digits, _, - and spaces")


def github_repo(value: str) -> str:
    value = value.removeprefix("https://github.com/").removesuffix(".git")
    return _github("--github", value, "it must be OWNER/REPO")


def whole_number(flag: str, value: str, low: int, high: int, unit: str = "") -> int:
    check_text(flag, value, 64)
    if not re.fullmatch(r"0|[1-9][0-9]*", value) or not low <= int(value) <= high:
        what = f" of {unit}" if unit else ""
        raise Refused(
            f"{flag} must be a whole number{what} from {low} to {high}, not {shown(value)}"
        )
    return int(value)


def amount(value: str) -> str:
    check_text("--amount", value, 64)
    if not re.fullmatch(r"[0-9]{1,9}([.][0-9]{1,2})?", value) or float(value) == 0:
        raise Refused(f"--amount must be a positive amount such as 50 or 12.50, not {shown(value)}")
    return value


def one_of(what: str, value: str, choices: Iterable[str], listing: str = "") -> str:
    """A name from a fixed set, with a "did you mean" for a near miss."""
    check_text(what, value, 256)
    choices = list(choices)
    if value in choices:
        return value
    near = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}? " if near else ""
    raise Refused(f"unknown {what} {shown(value)} ({hint}{listing or ', '.join(choices)})")
