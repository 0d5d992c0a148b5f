"""Google Cloud's documented rules for the names our parameters carry, written down once.

Each rule quotes the page it comes from. `pipelines/core/grammar.py` builds the console
regexes and the launch's syntax checks from these numbers and character sets; the few rules a
lookahead-free regex cannot state (listed in `BEYOND_THE_FORM`) are checked here, at launch,
by `gcs_problem`.

Pub/Sub: https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names and the API's
  Topic.name / Subscription.name: "`{topic}` must start with a letter, and contain only
  letters ([A-Za-z]), numbers ([0-9]), dashes (-), underscores (_), periods (.), tildes (~),
  plus (+) or percent signs (%). It must be between 3 and 255 characters in length, and it
  must not start with "goog"."
Project IDs: https://cloud.google.com/resource-manager/docs/creating-managing-projects
  "Must be 6 to 30 characters in length. Can only contain lowercase letters, numbers, and
  hyphens. Must start with a letter. Cannot end with a hyphen." Domain-scoped projects are
  written `example.com:my-project`
  (https://cloud.google.com/resource-manager/docs/creating-managing-projects#identifying_projects).
  "Cannot contain restricted strings, such as google and ssl" is an open list about creating
  a project; it is not checked (a project with such an ID does not exist, and the lookup or
  the run says so).
Cloud Storage buckets: https://cloud.google.com/storage/docs/buckets#naming
  "only lowercase letters, numeric characters, dashes (-), underscores (_), and dots (.)...
  must start and end with a number or letter... 3-63 characters. Names containing dots can
  contain up to 222 characters, but each dot-separated component can be no longer than 63
  characters... cannot be represented as an IP address in dotted-decimal notation... cannot
  begin with the "goog" prefix... cannot contain "google" or close misspellings, such as
  "g00gle"."
Cloud Storage objects: https://cloud.google.com/storage/docs/objects#naming
  "Object names can contain any sequence of valid Unicode characters, of length 1-1024 bytes
  when UTF-8 encoded... cannot contain Carriage Return or Line Feed characters... cannot be
  named . or ..; cannot start with .well-known/acme-challenge/"; control characters are to be
  avoided, and we refuse them all (a name with a tab or NUL is a typing accident here).
BigQuery datasets: https://cloud.google.com/bigquery/docs/datasets#dataset-naming
  "Contain up to 1,024 characters. Contain letters (uppercase or lowercase), numbers, and
  underscores."
BigQuery tables: https://cloud.google.com/bigquery/docs/tables#table_naming
  "Contain up to 1,024 UTF-8 bytes. Contain Unicode characters in category L (letter), M
  (mark), N (number), Pc (connector, including underscore), Pd (dash), Zs (space)." The
  console's regexes are JavaScript without the `u` flag, where Unicode categories cannot be
  written; we accept the ASCII part of these categories (letters, digits, `_`, `-`, space)
  on both sides and refuse table names with other characters (README, "When input is bad").
"""

from __future__ import annotations

import re
import string

ASCII_LETTERS = string.ascii_letters
DIGITS = string.digits
LOWER = string.ascii_lowercase

# Pub/Sub topic and subscription IDs.
PUBSUB_ID_FIRST = ASCII_LETTERS
PUBSUB_ID_CHARS = ASCII_LETTERS + DIGITS + "-_.~+%"
PUBSUB_ID_LENGTH = (3, 255)
PUBSUB_RESERVED_PREFIX = "goog"

# Project IDs (and the domain of a domain-scoped one: DNS labels of lower-case letters,
# digits and hyphens, 1-63 characters, not starting or ending with a hyphen).
PROJECT_FIRST = LOWER
PROJECT_CHARS = LOWER + DIGITS + "-"
PROJECT_LAST = LOWER + DIGITS
PROJECT_LENGTH = (6, 30)
DOMAIN_LABEL_CHARS = LOWER + DIGITS + "-"
DOMAIN_LABEL_ENDS = LOWER + DIGITS
DOMAIN_LABEL_LENGTH = (1, 63)

# Cloud Storage bucket names.
BUCKET_CHARS = LOWER + DIGITS + "-_"  # and "." between components
BUCKET_ENDS = LOWER + DIGITS
BUCKET_LENGTH = (3, 63)
BUCKET_DOTTED_MAX = 222
BUCKET_COMPONENT_MAX = 63
BUCKET_RESERVED_PREFIX = "goog"
# "google or close misspellings, such as g00gle": the spellings we know of.
_GOOGLE_LIKE = re.compile(r"g[o0][o0]g[l1]e")

# Cloud Storage object names: 1-1024 bytes of UTF-8, no control characters (CR and LF are
# Google's rule, the rest ours), not "." or "..", not under .well-known/acme-challenge/.
OBJECT_MAX_BYTES = 1024
OBJECT_FORBIDDEN_CHARS = "".join(chr(c) for c in range(0x20)) + "\x7f"
OBJECT_FORBIDDEN_NAMES = (".", "..")
OBJECT_RESERVED_PREFIX = ".well-known/acme-challenge/"

# BigQuery dataset IDs and table names (the ASCII part of L, M, N, Pc, Pd, Zs).
DATASET_CHARS = ASCII_LETTERS + DIGITS + "_"
DATASET_LENGTH = (1, 1024)
TABLE_CHARS = ASCII_LETTERS + DIGITS + "_- "
TABLE_LENGTH = (1, 1024)

# The rules the console's regex does not state; the launch checks them (gcs_problem).
BEYOND_THE_FORM = (
    "a dotted bucket name of more than 222 characters",
    "a bucket name that is an IP address in dotted-decimal notation (e.g. 192.168.5.4)",
    "a bucket name containing google or a close misspelling (g00gle, goog1e, ...)",
    "an object name of more than 1024 bytes of UTF-8 (the form counts UTF-16 units), or one "
    "that is not valid Unicode",
    "an object name starting with .well-known/acme-challenge/",
)


def bucket_problem(bucket: str) -> str | None:
    """Why Cloud Storage refuses this bucket name for a reason the form's regex cannot state,
    or None (the regex has already checked characters, ends, component lengths and goog)."""
    if "." in bucket and len(bucket) > BUCKET_DOTTED_MAX:
        return (
            f"bucket name of {len(bucket)} characters; a name with dots has at most "
            f"{BUCKET_DOTTED_MAX}"
        )
    if re.fullmatch(r"[0-9]+(\.[0-9]+){3}", bucket) and all(
        int(part) <= 255 for part in bucket.split(".")
    ):
        return f"bucket name {bucket!r} is an IP address"
    found = _GOOGLE_LIKE.search(bucket)
    if found:
        return f"bucket name {bucket!r} contains {found.group()!r} (Google's reserved names)"
    return None


def object_problem(name: str) -> str | None:
    """Why Cloud Storage refuses this object name for a reason the regex cannot state."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "object name is not valid Unicode (an undecodable byte or a lone surrogate)"
    if size > OBJECT_MAX_BYTES:
        return f"object name of {size} bytes of UTF-8 (at most {OBJECT_MAX_BYTES})"
    if name.startswith(OBJECT_RESERVED_PREFIX):
        return f"object name {name[:40]!r} starts with the reserved {OBJECT_RESERVED_PREFIX!r}"
    return None


def split_gcs(value: str) -> tuple[str, str | None]:
    """(bucket, object name or None) of a gs:// value that passed its syntax check."""
    rest = value[len("gs://") :]
    bucket, slash, name = rest.partition("/")
    return bucket, (name if slash else None)


def gcs_problem(value: str) -> str | None:
    """The rules beyond the form for a gs:// value (bucket and, if any, object name)."""
    bucket, name = split_gcs(value)
    return bucket_problem(bucket) or (object_problem(name) if name else None)
