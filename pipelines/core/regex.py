"""Regexes that read alike in JavaScript (no flags), Java, RE2 and Python, built from parts.

The console matches a template parameter's regex against the whole value in JavaScript; the
launch matches the same regex in Python (pipelines/core/grammar.py renders both from one
kind). So the pieces here keep to the common syntax: character classes written out (no `\\d`,
`\\w`, `.`, which differ), no lookarounds, no backreferences, repeat counts at most 1000
(RE2's limit, should the service use it).

Numbers: a range "From A to B" is itself a regex (`decimal_range`, `int_range`): an optional
sign, digits with an optional fraction (`5`, `5.`, `.5`, `+0.5`, `007`), no exponent, no
spaces, no `_`: what Python's float() reads minus exponents, underscores, spaces and
non-ASCII digits, refused on both sides alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

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
