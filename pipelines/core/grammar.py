"""One grammar per parameter kind, rendered twice: the console's regex and the launch's check.

A `Kind` states its syntax once, as a regex built here from the rules in `names.py`. From it
come (a) `console_regex()`: what `metadata/*.json` gives the Dataflow console, JavaScript
syntax matched against the whole value, like Google's own `^gs:\\/\\/[^\\n\\r]+$`; and (b)
`problem(value)`: the launch's syntax check, which accepts exactly what that regex accepts
and says in one line what is wrong.

The regexes keep to what JavaScript (no flags), Java and Python read alike: character
classes written out (no `\\d`, `\\w`, `.`, which differ), no lookarounds, no backreferences,
repeat counts at most 1000 (RE2's limit, should the service use it). JavaScript without the
`u` flag sees a string as UTF-16 code units: a character outside the Basic Multilingual Plane
is two units to it. The launch matches the same units (`utf16_units`), so both sides count
and classify alike. Rules the regex cannot state are listed in `names.BEYOND_THE_FORM` and
checked at launch after the syntax.

Numbers: a range "From A to B" is part of the regex (`decimal_range`): an optional sign,
digits with an optional fraction (`5`, `5.`, `.5`, `+0.5`, `007`), no exponent, no spaces,
no `_`: what Python's float() reads minus exponents, underscores, spaces and non-ASCII
digits, refused on both sides alike.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from pipelines.core import names

MAX_REPEAT = 1000

# --- regex pieces: strings in the common syntax -------------------------------------------


def _escape(c: str, special: str) -> str:
    code = ord(c)
    if c in special:
        return "\\" + c
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code > 0x7E:
        return f"\\u{code:04x}"
    return c


def _escape_class_char(c: str) -> str:
    return _escape(c, "\\]^-[/")


def _escape_char(c: str) -> str:
    return _escape(c, "\\^$.|?*+()[]{}/")


@dataclass(frozen=True)
class Chars:
    """A set of characters: `chars`, or (negated) every character but `chars`."""

    chars: frozenset
    negated: bool = False

    @classmethod
    def of(cls, chars: Iterable[str]) -> Chars:
        return cls(frozenset(chars))

    @classmethod
    def but(cls, chars: Iterable[str]) -> Chars:
        return cls(frozenset(chars), negated=True)

    def __contains__(self, c: str) -> bool:
        return (c in self.chars) != self.negated

    def __and__(self, other: Chars) -> Chars:
        if not self.negated and not other.negated:
            return Chars(self.chars & other.chars)
        if self.negated and other.negated:
            return Chars(self.chars | other.chars, negated=True)
        plain, neg = (self, other) if not self.negated else (other, self)
        return Chars(plain.chars - neg.chars)

    def minus(self, chars: Iterable[str]) -> Chars:
        return self & Chars.but(chars)

    def empty(self) -> bool:
        return not self.negated and not self.chars

    def regex(self) -> str:
        codes = sorted(ord(c) for c in self.chars)
        if not self.negated and len(codes) == 1:
            return _escape_char(chr(codes[0]))
        parts, i = [], 0
        while i < len(codes):
            j = i
            while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
                j += 1
            first, last = chr(codes[i]), chr(codes[j])
            if j - i >= 2:
                parts.append(f"{_escape_class_char(first)}-{_escape_class_char(last)}")
            else:
                parts.extend(_escape_class_char(chr(c)) for c in codes[i : j + 1])
            i = j + 1
        return f"[{'^' if self.negated else ''}{''.join(parts)}]"


def lit(text: str) -> str:
    return "".join(Chars.of(c).regex() for c in text)


def alt(*options: str) -> str:
    options = tuple(dict.fromkeys(o for o in options if o is not None))
    if not options:
        raise ValueError("no alternative")
    if len(options) == 1:
        return options[0]
    return "(?:" + "|".join(options) + ")"


def group(regex: str) -> str:
    return f"(?:{regex})"


def rep(atom: str, low: int, high: int | None) -> str:
    """`atom` repeated low to high times (high None: no limit), counts at most MAX_REPEAT."""
    if high is not None and high < low:
        raise ValueError("empty repeat")
    if high is not None and high > MAX_REPEAT:
        head = min(low, MAX_REPEAT)
        return rep(atom, head, MAX_REPEAT) + rep(atom, low - head, high - MAX_REPEAT)
    if low > MAX_REPEAT:
        return rep(atom, MAX_REPEAT, MAX_REPEAT) + rep(atom, low - MAX_REPEAT, high)
    if high is None:
        return atom + ("*" if low == 0 else "+" if low == 1 else f"{{{low},}}")
    if low == high:
        return "" if low == 0 else atom if low == 1 else f"{atom}{{{low}}}"
    if (low, high) == (0, 1):
        return atom + "?"
    return f"{atom}{{{low},{high}}}"


def shaped(
    first: Chars,
    middle: Chars,
    last: Chars,
    low: int,
    high: int,
    forbidden_prefixes: tuple[str, ...] = (),
    forbidden_names: tuple[str, ...] = (),
) -> str:
    """Strings of `low` to `high` characters (low >= 1): the first in `first`, the last in
    `last` (a single character in both), the others in `middle`; none starting with a
    forbidden prefix nor equal to a forbidden name. Built without lookarounds: the forbidden
    strings are walked as a trie, and every way of leaving it continues freely."""
    forbidden = set(forbidden_prefixes) | set(forbidden_names)

    def after(path: str) -> str:
        d = len(path)
        here = first if d == 0 else middle
        here_last = (first & last) if d == 0 else last
        kids = sorted({f[d] for f in forbidden if len(f) > d and f.startswith(path)})
        options = []
        for c in kids:
            step = path + c
            if step in forbidden_prefixes:
                continue
            if low <= d + 1 <= high and c in here_last and step not in forbidden_names:
                options.append(lit(c))
            if d + 1 < high and c in here:
                options.append(lit(c) + after(step))
        other_last, other = here_last.minus(kids), here.minus(kids)
        if low <= d + 1 <= high and not other_last.empty():
            options.append(other_last.regex())
        if d + 1 < high and not other.empty():
            tail = rep(middle.regex(), max(0, low - d - 2), high - d - 2) + last.regex()
            options.append(other.regex() + tail)
        return alt(*options)

    return after("")


# --- numbers ------------------------------------------------------------------------------


def _int_same_length(a: str, b: str) -> str:
    """Digit strings of len(a) == len(b) from a to b (as numbers)."""
    if not a:
        return ""
    if a == b:
        return a
    if len(a) == 1:
        return f"[{a}-{b}]" if int(b) - int(a) > 1 else f"[{a}{b}]"
    if a[0] == b[0]:
        return a[0] + group(_int_same_length(a[1:], b[1:]))
    n = len(a) - 1
    options = []
    if a[1:] == "0" * n:
        low_first = int(a[0])
    else:
        options.append(a[0] + group(_int_same_length(a[1:], "9" * n)))
        low_first = int(a[0]) + 1
    high_first = int(b[0]) if b[1:] == "9" * n else int(b[0]) - 1
    if low_first <= high_first:
        first = (
            str(low_first)
            if low_first == high_first
            else f"[{low_first}-{high_first}]"
            if high_first - low_first > 1
            else f"[{low_first}{high_first}]"
        )
        options.append(first + rep("[0-9]", n, n))
    if high_first < int(b[0]):
        options.append(b[0] + group(_int_same_length("0" * n, b[1:])))
    return alt(*options)


def int_range(low: int, high: int) -> str:
    """Integers low..high (0 <= low <= high) written without leading zeros."""
    options = []
    for length in range(len(str(low)), len(str(high)) + 1):
        a = max(low, 10 ** (length - 1) if length > 1 else 0)
        b = min(high, 10**length - 1)
        if a <= b:
            options.append(_int_same_length(str(a), str(b)))
    return alt(*options)


_ANY_DIGITS = "[0-9]*"


def _fraction_le(c: str, nonempty: bool) -> str:
    """Fraction digit strings f (possibly empty unless nonempty) with 0.f <= 0.c."""
    if not c:
        return "0+" if nonempty else "0*"
    d = int(c[0])
    options = [] if nonempty else [""]
    if d > 0:
        options.append((f"[0-{d - 1}]" if d > 1 else "0") + _ANY_DIGITS)
    options.append(c[0] + group(_fraction_le(c[1:], nonempty=False)))
    return alt(*options)


def _fraction_ge(c: str, nonempty: bool) -> str:
    """Fraction digit strings f with 0.f >= 0.c (c without trailing zeros)."""
    if not c:
        return "[0-9]+" if nonempty else _ANY_DIGITS
    d = int(c[0])
    options = []
    if d < 9:
        options.append((f"[{d + 1}-9]" if d < 8 else "9") + _ANY_DIGITS)
    options.append(c[0] + group(_fraction_ge(c[1:], nonempty=False)))
    return alt(*options)


def _fraction_between(a: str, b: str, nonempty: bool) -> str:
    """0.a <= 0.f <= 0.b (both without trailing zeros, a <= b)."""
    if not a:
        return _fraction_le(b, nonempty)
    if a[0] == b[0]:
        return a[0] + group(_fraction_between(a[1:], b[1:], nonempty=not a[1:]))
    options = [a[0] + group(_fraction_ge(a[1:], nonempty=False))]
    low, high = int(a[0]) + 1, int(b[0]) - 1
    if low <= high:
        options.append((f"[{low}-{high}]" if low < high else str(low)) + _ANY_DIGITS)
    options.append(b[0] + group(_fraction_le(b[1:], nonempty=False)))
    return alt(*options)


def _split(value: Decimal) -> tuple[int, str]:
    integer = int(value)
    fraction = format(value - integer, "f").partition(".")[2].rstrip("0")
    return integer, fraction


def _magnitude(low: Decimal, high: Decimal, fraction: bool) -> str:
    """Unsigned decimals (leading zeros allowed; with `fraction`, `5.`, `.5`, `5.25`) whose
    value is in [low, high], 0 <= low <= high."""
    (low_int, low_frac), (high_int, high_frac) = _split(low), _split(high)
    if not fraction:
        start = low_int + (1 if low_frac else 0)
        return "0*" + group(int_range(start, high_int)) if start <= high_int else None

    def whole(n: int) -> str:
        return "0+" if n == 0 else "0*" + n.__str__()

    def with_fraction(n: int, frac_any_empty: str | None, frac_nonempty: str) -> list[str]:
        options = []
        # "5", "5." and "5.25"; an empty fraction is worth 0
        if frac_any_empty is not None:
            options.append(whole(n) + group(r"\." + group(frac_any_empty)) + "?")
        else:
            options.append(whole(n) + r"\." + group(frac_nonempty))
        if n == 0:  # ".25"
            options.append(r"\." + group(frac_nonempty))
        return options

    options = []
    if low_int == high_int:
        empty_ok = not low_frac
        options += with_fraction(
            low_int,
            _fraction_between(low_frac, high_frac, nonempty=False) if empty_ok else None,
            _fraction_between(low_frac, high_frac, nonempty=True),
        )
    else:
        options += with_fraction(
            low_int,
            _ANY_DIGITS if not low_frac else None,
            _fraction_ge(low_frac, nonempty=True),
        )
        if low_int + 1 <= high_int - 1:
            options.append("0*" + group(int_range(low_int + 1, high_int - 1)) + r"(?:\.[0-9]*)?")
        options.append(
            whole(high_int) + group(r"\." + group(_fraction_le(high_frac, nonempty=False))) + "?"
        )
    return alt(*options)


def decimal_range(low, high, *, fraction: bool = True) -> str:
    """Signed numbers from low to high inclusive, as text (see the module docstring)."""
    low, high = Decimal(repr(low)), Decimal(repr(high))
    options = []
    if high >= max(low, 0):
        positive = _magnitude(max(low, Decimal(0)), high, fraction)
        if positive:
            options.append(r"\+?" + group(positive))
    if -low >= max(-high, 0):
        negative = _magnitude(max(-high, Decimal(0)), -low, fraction)
        if negative:
            options.append("-" + group(negative))
    return alt(*options)


def plain(number) -> str:
    """How a range bound is written in help texts: 100000, 0.5, -10."""
    return str(number) if isinstance(number, int) else f"{number:g}"


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
