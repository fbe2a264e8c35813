"""Fast per-line building blocks of the validator: content pre-filters, casing counts, duplicate index.

Everything here is about doing the *same* checks with fewer passes over the bytes. The contract: a
pre-filter (``line_gates``) is a necessary condition of the precise check it guards, so skipping the
precise check when the pre-filter says no can never hide a finding (``tests/unit/test_data_scan.py``
compares with the unfiltered checks). Pre-filters run on the raw JSON line; JSON escapes that could hide
an ASCII character (``\\u00XX``, ``\\/``) switch them off for that line.

Duplicates (Q01, F11, ``phi3ft split``): two records are *whitespace-normalised duplicates* when their
JSON values are equal after every run of whitespace (space, tab, newline, CR, FF, VT) inside strings is
collapsed to one space and the ends are stripped; JSON formatting between values does not matter, key order
does. "a b" and "a  b" are duplicates, "a b" and "ab" are not. The index keeps one 64-bit key per distinct
record (a hash of the line with its whitespace and backslash escapes removed: equal for any two duplicates,
rarely equal otherwise) and the record's byte position; a key collision is confirmed by re-reading the
earlier record and comparing exactly, so there are no false positives and memory stays a few integers per
example. The key is the CRC-32 and the length of those bytes (not Python's ``hash``, which is seeded per
process): the same in every process, so worker processes can compute keys for the parent's index.

Only byte utilities live here (pre-filters, the duplicate key, letter-case counts, file sniffing); what a
finding *means* is decided by the rule checks (``phi3ft.data.engine`` and ``phi3ft.data.validate``), once.
"""

from __future__ import annotations

import os
import re
import shlex
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# ---------------------------------------------------------------------------------------------------------
# Whitespace-normalised duplicates
# ---------------------------------------------------------------------------------------------------------
_ASCII_WS = re.compile(r"[ \t\n\r\x0b\x0c]+")
#: Deleted before hashing: every backslash with the n, t, r or f right after it (the escapes of
#: whitespace; "\\n" loses its n too, which can only make two different records share a key), then raw
#: whitespace. Two duplicates spell every non-whitespace character the same way except "\/" for "/", so
#: what is left is equal for them. (Deleting the letters n, t, r, f everywhere did the same, ~25 % slower.)
_KEY_ESCAPES = re.compile(rb"\\[ntrf]?")
_KEY_DELETE = b" \t\n\r"


def _key_bytes(body: bytes) -> bytes:
    if b"\\" in body:
        body = _KEY_ESCAPES.sub(b"", body)
    return body.translate(None, _KEY_DELETE)


def _collapse(value: Any) -> Any:
    if type(value) is str:
        return _ASCII_WS.sub(" ", value).strip(" ")
    if type(value) is dict:
        return {k: _collapse(v) for k, v in value.items()}
    if type(value) is list:
        return [_collapse(v) for v in value]
    return value


def normalised_form(body: bytes) -> bytes:
    """The canonical whitespace-normalised form of one JSONL record (see the module docstring)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return b" ".join(body.split())
    return orjson.dumps(_collapse(value))


def dup_key(body: bytes, obj: Any, unicode_escapes: bool | None = None) -> int:
    """64-bit key that is equal for any two whitespace-normalised duplicates (collisions are re-checked).

    Lines with ``\\u`` escapes are re-serialised first, so an escaped and an unescaped spelling of the same
    text get the same key. ``unicode_escapes`` is whether ``body`` has one (``G_UESCAPE`` of
    :func:`line_gates`); ``None`` looks.
    """
    if unicode_escapes is None:
        unicode_escapes = b"\\u" in body
    if unicode_escapes:
        # orjson writes the whitespace characters as \t \n \r \f (deleted below) and \u000b (a space
        # here), so the key needs no _collapse first: it would only change bytes that are deleted anyway
        body = orjson.dumps(obj).replace(b"\\u000b", b" ")
    data = _key_bytes(body)
    return len(data) << 32 | _crc32(data)  # one pass: CRC-32 and the length of the hashed bytes


_crc32 = zlib.crc32


def line_scan_py(body: bytes) -> tuple[int, int]:
    """``(line_gates(body), key)``: the key of :func:`dup_key`, or -1 when the line has a backslash-u
    escape (then :func:`dup_key` must re-serialise the parsed record)."""
    gates = line_gates(body)
    if gates & G_UESCAPE:
        return gates, -1
    data = _key_bytes(body)
    return gates, len(data) << 32 | _crc32(data)


class DuplicateIndex:
    """Whitespace-normalised duplicate detection over one file, re-reading records to confirm collisions.

    ``add(key, body, line, offset)`` returns ``None`` for a new record, else ``(first_line, exact)``.
    ``find(key, body)`` looks a record of *another* file up without adding it (train/validation overlap).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        #: key -> packed (line << 72 | offset << 32 | length) of the first record, or a list of them when
        #: different records share a key
        self._first: dict[int, int | list[int]] = {}

    def _read(self, packed: int) -> bytes:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDONLY)
        return os.pread(self._fd, packed & 0xFFFFFFFF, (packed >> 32) & 0xFFFFFFFFFF)

    def _match(self, slot: int | list[int], body: bytes) -> tuple[int, bool] | None:
        norm: bytes | None = None
        for packed in slot if isinstance(slot, list) else (slot,):
            other = self._read(packed)
            if other == body:
                return packed >> 72, True
            if norm is None:
                norm = normalised_form(body)
            if normalised_form(other) == norm:
                return packed >> 72, False
        return None

    def add(self, key: int, body: bytes, line: int, offset: int) -> tuple[int, bool] | None:
        packed = (line << 72) | (offset << 32) | len(body)
        slot = self._first.get(key)
        if slot is None:
            self._first[key] = packed
            return None
        hit = self._match(slot, body)
        if hit is None:  # a different record with the same key: keep both
            self._first[key] = [*slot, packed] if isinstance(slot, list) else [slot, packed]
        return hit

    def find(self, key: int, body: bytes) -> int | None:
        slot = self._first.get(key)
        if slot is None:
            return None
        hit = self._match(slot, body)
        return None if hit is None else hit[0]

    def add_many(
        self, keys: Iterable[int], lines: Iterable[int], offsets: Iterable[int], lengths: Iterable[int]
    ) -> list[tuple[int, tuple[int, bool]]]:
        """:meth:`add` for records of this file known by position, in order (a record is read only on a
        key hit); the ``(line, hit)`` of those that are duplicates."""
        first = self._first
        hits = []
        for key, line, offset, length in zip(keys, lines, offsets, lengths, strict=True):
            if key in first:
                hit = self.add(key, self._read((offset << 32) | length), line, offset)
                if hit is not None:
                    hits.append((line, hit))
            else:
                first[key] = (line << 72) | (offset << 32) | length
        return hits

    def find_at(self, key: int, fd: int, offset: int, length: int) -> int | None:
        """:meth:`find` for a record of another open file (``fd``): read only on a key hit."""
        if key not in self._first:
            return None
        return self.find(key, os.pread(fd, length, offset))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------------------------------------------------
# Q03 casing: Unicode upper/lower-case letter counts without a Python loop per character
# ---------------------------------------------------------------------------------------------------------
_ASCII = bytes(range(128))
#: A-Z -> 'U', a-z -> 'l', other ASCII -> '.', non-ASCII bytes unchanged: one translate and two counts
#: instead of two deleting translates (which are about twice as slow per byte)
_CASE_MAP = bytes(
    ord("U") if 65 <= b <= 90 else ord("l") if 97 <= b <= 122 else ord(".") if b < 128 else b
    for b in range(256)
)


_LANE_CONSTANTS: dict[int, tuple[int, int]] = {}


def _lane_constants(n: int) -> tuple[int, int]:
    """(0x7FFFFFFF in every lane, 1 in every lane) for at least ``n`` lanes (power-of-two size classes)."""
    size = 1 << max(6, (n - 1).bit_length())
    consts = _LANE_CONSTANTS.get(size)
    if consts is None:
        consts = _LANE_CONSTANTS[size] = (
            int.from_bytes(b"\xff\xff\xff\x7f" * size, "little"),
            int.from_bytes(b"\x01\x00\x00\x00" * size, "little"),
        )
    return consts


def _changed_lanes(x: int, n: int) -> int:
    """How many of the ``n`` 32-bit lanes of ``x`` (an XOR of two UTF-32 strings) are non-zero.

    Each lane holds a value < 2**21, so adding 0x7FFFFFFF to every lane sets its bit 31 exactly when the
    lane is non-zero, without carrying into the next lane; lanes past ``n`` are zero and stay clear.
    """
    if not x:
        return 0
    ones, bit0 = _lane_constants(n)
    return (((x + ones) >> 31) & bit0).bit_count()


_ODD: list[str] = []
_LENGTH_CHANGING: list[re.Pattern[str]] = []


def _odd_chars() -> str:
    """Characters whose ``lower()`` or ``upper()`` is not one character (about 100, all in the BMP)."""
    if not _ODD:
        # no case mapping is empty, so a run of characters whose lower() and upper() keep its length has
        # none: only the few 256-character runs that change length are looked at one character at a time
        bmp = "".join(map(chr, range(0x80, 0xD800))) + "".join(map(chr, range(0xE000, 0x10000)))
        odd: list[str] = []
        for at in range(0, len(bmp), 256):
            run = bmp[at : at + 256]
            if len(run.lower()) != len(run) or len(run.upper()) != len(run):
                odd.extend(c for c in run if len(c.lower()) != 1 or len(c.upper()) != 1)
        _ODD.append("".join(odd))
    return _ODD[0]


def _length_changing() -> re.Pattern[str]:
    if not _LENGTH_CHANGING:
        _LENGTH_CHANGING.append(re.compile("[" + re.escape(_odd_chars()) + "]"))
    return _LENGTH_CHANGING[0]


class CaseCounter:
    """Sums :func:`case_counts` over many strings, a few hundred kB at a time (fewer, longer calls)."""

    __slots__ = ("_chars", "_pending", "lower", "upper")

    def __init__(self) -> None:
        self.upper = 0
        self.lower = 0
        self._pending: list[str] = []
        self._chars = 0

    def add(self, text: str) -> None:
        self._pending.append(text)
        self._chars += len(text)
        if self._chars > 262_144:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            up, low = case_counts("\n".join(self._pending))
            self.upper += up
            self.lower += low
            self._pending = []
            self._chars = 0


def case_counts(text: str) -> tuple[int, int]:
    """``(upper, lower)``: characters that ``str.lower()`` / ``str.upper()`` change (Unicode).

    For ASCII this is A-Z / a-z; for other scripts it matches ``str.isupper`` / ``str.islower`` on cased
    letters (Latin, Greek, Cyrillic, ...; uncased scripts such as CJK count for neither).
    """
    return case_counts_py(text)


def case_counts_py(text: str) -> tuple[int, int]:
    """:func:`case_counts` in Python: ASCII letters are counted on the UTF-8 bytes; only the non-ASCII
    characters go through Unicode case mapping."""
    raw = text.encode("utf-8", "surrogatepass")
    classes = raw.translate(_CASE_MAP)
    up = classes.count(b"U")
    low = classes.count(b"l")
    if text.isascii():
        return up, low
    rest = raw.translate(None, _ASCII).decode("utf-8", "surrogatepass")  # the non-ASCII characters only
    lower, upper = rest.lower(), rest.upper()
    n = len(rest)
    if len(lower) != n or len(upper) != n:
        # ß, İ, ligatures, Greek with ypogegrammeni change length: count those few characters one by
        # one, then the rest (now length-preserving) at once
        odd = _length_changing().findall(rest)
        up += sum(1 for c in odd if c.lower() != c)
        low += sum(1 for c in odd if c.upper() != c)
        rest = _length_changing().sub("", rest)
        lower, upper = rest.lower(), rest.upper()
        n = len(rest)
        if len(lower) != n or len(upper) != n:  # a character this Python's tables added: one by one
            return (
                up + sum(1 for c in rest if c.lower() != c),
                low + sum(1 for c in rest if c.upper() != c),
            )
    if lower != rest:
        x = int.from_bytes(rest.encode("utf-32-le", "surrogatepass"), "little")
        up += _changed_lanes(x ^ int.from_bytes(lower.encode("utf-32-le", "surrogatepass"), "little"), n)
    if upper != rest:
        x = int.from_bytes(rest.encode("utf-32-le", "surrogatepass"), "little")
        low += _changed_lanes(x ^ int.from_bytes(upper.encode("utf-32-le", "surrogatepass"), "little"), n)
    return up, low


# ---------------------------------------------------------------------------------------------------------
# Q08 / Q09 / M13 / M15 pre-filters and precise scans
# ---------------------------------------------------------------------------------------------------------
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SECRET_PATTERNS: tuple[tuple[str, str], ...] = (
    ("private key block", r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    ("storage account key", r"AccountKey=[A-Za-z0-9+/]{20,}"),
    ("shared access signature", r"SharedAccessSignature=[^\s\"';]{10,}|[?&]sig=[A-Za-z0-9%]{30,}"),
    ("GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"),
    ("Slack token", r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
    ("API key (sk-...)", r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),
    ("AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("bearer token", r"\b[Bb]earer\s+[A-Za-z0-9._~+/-]{20,}=*"),
    ("password in URL", r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^/\s:@\"']{1,64}:[^/\s@\"']{1,128}@"),
)
SECRETS = re.compile("|".join(f"(?P<s{i}>{p})" for i, (_, p) in enumerate(SECRET_PATTERNS)))
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}\b")
# CARD and IBAN start with a character class so the regex engine can skip ahead; the look-behind that
# stands for "(?<!\d)" / "\b" at the start is checked right after the first character instead.
# CARD is ASCII digits only (the Luhn check is defined on them): 13-19 digits, single spaces or dashes between.
CARD = re.compile(r"[0-9](?<![0-9][0-9])(?:[ -]?[0-9]){12,18}(?![0-9])")
IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")
_NON_DIGIT = re.compile(r"\D")

_GH_S = re.compile(r"g(?:h[pousr]_|ithub_pat_)")
#: AKIA / ASIA (one regex search beats two substring searches here: the capital A is rare)
_AWS_B = re.compile(rb"A[KS]IA")


def _secret_possible(c: str) -> bool:
    """A necessary condition of :data:`SECRETS` matching somewhere in ``c`` (literal substrings only)."""
    return (
        ("=" in c and ("Key=" in c or "Signature=" in c or "sig=" in c))
        or ("-" in c and ("-----BEGIN" in c or "xox" in c or "sk-" in c))
        or ("_" in c and _GH_S.search(c) is not None)
        or "AKIA" in c
        or "ASIA" in c
        or "earer" in c
        or ("@" in c and "://" in c)
    )


#: byte -> class letter for the cheap line map: digit D, A-Z U, a-z l, space or dash s, anything else '.'.
_CLASS_MAP = bytes(
    ord("D")
    if 48 <= b <= 57
    else ord("U")
    if 65 <= b <= 90
    else ord("l")
    if 97 <= b <= 122
    else ord("s")
    if b in (32, 45)
    else ord(".")
    for b in range(256)
)
#: on the class map: 13 digits with at most one space or dash between them (a necessary condition of CARD)
_CARD_RUN = re.compile(rb"D(?:s?D){12}")
#: '+' then a digit: ASCII, the lead byte of a non-ASCII one (PHONE's \d is any Unicode digit) or a
#: backslash (a \uXXXX-escaped one)
_PLUS_DIGIT = re.compile(rb"\+[0-9\\\x80-\xff]")

# Bits of the line gate.
G_SPECIAL = 1  # '<' (special-token text)
G_CONTROL = 2  # control characters
G_SECRET = 4
G_EMAIL = 8
G_PHONE = 16  # '+' and a digit
G_CARD = 32  # 13+ digits in a row (single spaces or dashes between) on the line
G_IBAN = 64  # two capitals followed by two digits
G_ALL = 127
#: not a content check: the line has a backslash-u escape (``dup_key`` re-serialises such lines); never
#: part of G_ALL
G_UESCAPE = 128


#: JSON escapes that matter to the pre-filters: \b \f (control characters), \/ and \u0000-\u007f (an
#: escaped ASCII character the literal tests below would not see). One scan from backslash to backslash.
_ESCAPES = re.compile(rb"\\(?:[bf/]|u00[0-7])")
#: any escape :data:`_ESCAPES` or :data:`G_UESCAPE` is about: one search settles both on most lines
_ANY_ESCAPE = re.compile(rb"\\[bf/u]")


def _secret_equals(body: bytes) -> bool:
    """Is some '=' the end of ``Key=``, ``Signature=`` or ``sig=``? (Visits each '=' once.)"""
    i = body.find(b"=")
    while i >= 0:
        if i >= 3 and body[i - 3 : i] in (b"Key", b"ure", b"sig"):
            return True
        i = body.find(b"=", i + 1)
    return False


def _secret_dashes(body: bytes) -> bool:
    """Is some '-' part of ``-----BEGIN``, ``xox?-`` or ``sk-``? (Visits each '-' once.)"""
    i = body.find(b"-")
    while i >= 0:
        if (
            (i >= 2 and body[i - 2 : i] == b"sk")
            or (i >= 4 and body[i - 4 : i - 1] == b"xox")
            or body.startswith(b"-----BEGIN", i)
        ):
            return True
        i = body.find(b"-", i + 1)
    return False


def _github_prefix(body: bytes) -> bool:
    """Does ``gh[pousr]_`` or ``github_pat_`` (:data:`_GH_S` on bytes) occur? (Visits each '_' once.)"""
    i = body.find(b"_")
    while i >= 0:
        if (i >= 3 and body[i - 3 : i - 1] == b"gh" and body[i - 1 : i] in _GH_LETTERS) or (
            i >= 6 and body.startswith(b"github_pat_", i - 6)
        ):
            return True
        i = body.find(b"_", i + 1)
    return False


_GH_LETTERS = (b"p", b"o", b"u", b"s", b"r")


def line_gates(body: bytes) -> int:
    """Which content checks can possibly find something on this raw JSON line (a bit set of G_*).

    Every test is a necessary condition of the precise check on the decoded content, provided no JSON
    escape hides an ASCII character: lines with an escaped ASCII character (backslash-u00XX, backslash-slash)
    get every bit. ``G_UESCAPE`` is set on lines with a backslash-u escape.

    Cost: one class-map ``translate``, one digit count and a few substring / literal-prefix searches, the
    rare ones behind cheaper tests on the class map (``AKIA``/``ASIA`` needs four capitals in a row).
    """
    gates = 0
    if _ANY_ESCAPE.search(body) is not None:
        if b"\\u" in body:
            gates = G_UESCAPE
        esc = _ESCAPES.search(body)
        if esc is not None:
            for m in _ESCAPES.finditer(body, esc.start()):
                if m.group(0)[1:2] in (b"u", b"/"):
                    return G_ALL | gates
            gates |= G_CONTROL  # only backslash-b / backslash-f
    if b"<" in body:
        gates |= G_SPECIAL
    if b"\x7f" in body:
        gates |= G_CONTROL
    at = b"@" in body
    if at:
        gates |= G_EMAIL
    if b"+" in body and _PLUS_DIGIT.search(body) is not None:
        gates |= G_PHONE
    classes = body.translate(_CLASS_MAP)
    digits = classes.count(b"D")
    if digits >= 13 and _CARD_RUN.search(classes) is not None:
        gates |= G_CARD
    caps4 = b"UUUU" in classes  # AKIA / ASIA are four capitals
    if digits >= 2 and b"UUDD" in classes:
        gates |= G_IBAN
    if (
        _secret_equals(body)
        or _secret_dashes(body)
        or (caps4 and _AWS_B.search(body) is not None)
        or (at and b"://" in body)
        or _github_prefix(body)
        or b"earer" in body
    ):
        gates |= G_SECRET
    return gates


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def sensitive_spans(content: str, gates: int = G_ALL) -> list[tuple[int, int, str, str]]:
    """Q08/Q09 hits in one content string, ``(start, end, rule, kind)`` sorted by position.

    ``kind`` is the secret's name from :data:`SECRET_PATTERNS`, or ``e-mail address``, ``phone number``,
    ``card number`` or ``IBAN``. ``gates`` (from :func:`line_gates`) skips pattern families that cannot
    match; ``G_ALL`` runs everything. The one detector behind :func:`sensitive` (the validator) and the
    redaction of ``phi3ft validate --fix --redact-secrets``.
    """
    found: list[tuple[int, int, str, str]] = []
    if gates & G_SECRET and _secret_possible(content):
        for hit in SECRETS.finditer(content):
            kind = SECRET_PATTERNS[int(str(hit.lastgroup)[1:])][0]
            found.append((hit.start(), hit.end(), "Q08", kind))
    if gates & G_EMAIL and "@" in content:
        found += [(h.start(), h.end(), "Q09", "e-mail address") for h in EMAIL.finditer(content)]
    if gates & G_PHONE and "+" in content:
        for h in PHONE.finditer(content):
            before = content[h.start() - 1] if h.start() else " "
            if not (before.isalnum() or before in "_+"):
                found.append((h.start(), h.end(), "Q09", "phone number"))
    if gates & G_CARD:
        for h in CARD.finditer(content):
            if _luhn(_NON_DIGIT.sub("", h.group(0))):
                found.append((h.start(), h.end(), "Q09", "card number"))
    if gates & G_IBAN:
        for h in IBAN.finditer(content):
            if _iban_ok(h.group(0)):
                found.append((h.start(), h.end(), "Q09", "IBAN"))
    found.sort()
    return found


_SENSITIVE_MESSAGE = {
    "e-mail address": "e-mail address at character {}.",
    "phone number": "phone number at character {}.",
    "card number": "card number (Luhn-valid) at character {}.",
    "IBAN": "IBAN at character {}.",
}


def sensitive(content: str, gates: int = G_ALL) -> list[tuple[int, str, str]]:
    """Q08/Q09 findings in one content string, ``(position, rule, message)`` sorted by position.

    ``gates`` (from :func:`line_gates`) skips pattern families that cannot match; ``G_ALL`` runs everything.
    """
    return [
        (
            start,
            rule,
            f"{kind} at character {start} (value not shown)."
            if rule == "Q08"
            else _SENSITIVE_MESSAGE[kind].format(start),
        )
        for start, _end, rule, kind in sensitive_spans(content, gates)
    ]


#: ``(gates, key)`` of one raw JSONL line: :func:`line_gates` and the :func:`dup_key` key (-1 when the line
#: has a backslash-u escape).
line_scan = line_scan_py


# ---------------------------------------------------------------------------------------------------------
# The same (gates, key) without re-reading a long first message the line shares with earlier lines
# ---------------------------------------------------------------------------------------------------------
#: A line that opens with its first message's role and then its content (how orjson, ``json.dumps`` and most
#: writers order them): the match ends right after the content string's opening quote, outside any string.
_FIRST_CONTENT = re.compile(
    rb'\{\s*"messages"\s*:\s*\[\s*\{\s*"role"\s*:\s*"(?:system|user|assistant)"\s*,\s*"content"\s*:\s*"'
)
_ZEROS = memoryview(bytes(1 << 16))


class LineScanner:
    """:func:`line_scan` that remembers the scan of long first-message contents (system prompts repeat).

    ``scan(body, first)`` returns the key :func:`line_scan` returns, bit for bit, and gates whose bits are
    the same necessary conditions (:func:`line_gates` of the line without the remembered content, or'd with
    that content's own bits: only matches that would straddle the content's quotes, which no check can
    find, are left out). The content is found by bytes, never trusted from the parsed record: the line must
    open with a first message whose content string starts right after a role (:data:`_FIRST_CONTENT`) and
    holds exactly the bytes of an earlier line's (a complete JSON string: its interior ends at an
    unescaped quote). ``first`` (the parsed content of the first message) only picks which remembered
    content to compare. The key is a CRC-32 over the key bytes (:func:`_key_bytes`), which split at a string
    boundary, so the content's CRC is combined in (CRC-32 is affine in its start value: ``crc(B, v) ==
    crc(B, 0) ^ crc(0^n, v) ^ crc(0^n, 0)``) instead of hashed again. Memory: two generations of
    ``max_chars`` characters of contents.
    """

    #: contents shorter than this are scanned with the line (remembering costs more than it saves)
    MIN_CHARS = 256

    def __init__(self, max_chars: int = 2_000_000) -> None:
        self._young: dict[str, tuple[bytes, int, int, int, int] | None] = {}
        self._old: dict[str, tuple[bytes, int, int, int, int] | None] = {}
        self._chars = 0
        self._max_chars = max_chars

    def scan(self, body: bytes, first: object) -> tuple[int, int]:
        if type(first) is not str or len(first) < self.MIN_CHARS:
            return line_scan(body)
        m = _FIRST_CONTENT.match(body)
        if m is None:
            return line_scan(body)
        start = m.end()
        young = self._young
        if first in young:
            entry = young[first]
        else:
            entry = self._old[first] if first in self._old else self._entry(body, start)
            young[first] = entry
            self._chars += len(first)
            if self._chars > self._max_chars:
                self._old, self._young, self._chars = young, {}, 0
        if entry is None:
            return line_scan(body)
        raw, span_gates, n, crc0, zcrc = entry
        end = start + len(raw)
        if body[end : end + 1] != b'"' or not body.startswith(raw, start):
            return line_scan(body)
        head, tail = body[:start], body[end:]
        gates = line_gates(head + tail) | span_gates
        if gates & G_UESCAPE:
            return gates, -1
        kh, kt = _key_bytes(head), _key_bytes(tail)
        crc = crc0 ^ _crc32(_ZEROS[:n], _crc32(kh)) ^ zcrc
        return gates, (len(kh) + n + len(kt)) << 32 | _crc32(kt, crc)

    @staticmethod
    def _entry(body: bytes, start: int) -> tuple[bytes, int, int, int, int] | None:
        """(interior bytes, their gates, key-byte count, CRC-32 of the key bytes, CRC-32 of as many zero
        bytes) of the JSON string whose interior starts at ``start``; None when it has a backslash-u escape
        (the key is then not made from the bytes) or is too long to combine."""
        end = body.find(b'"', start)
        while end > 0:
            k = end
            while body[k - 1] == 92:  # backslashes right before the quote: an odd count escapes it
                k -= 1
            if (end - k) % 2 == 0:
                break
            end = body.find(b'"', end + 1)
        if end < 0:
            return None
        raw = body[start:end]
        gates = line_gates(raw)
        if gates & G_UESCAPE:
            return None
        kb = _key_bytes(raw)
        n = len(kb)
        if n > len(_ZEROS):
            return None
        return raw, gates, n, _crc32(kb), _crc32(_ZEROS[:n])


# ---------------------------------------------------------------------------------------------------------
# What a file is, from its first bytes (before any line rule: a UTF-16 or gzip file is not JSON Lines)
# ---------------------------------------------------------------------------------------------------------
#: Bytes read from the start of a file to recognise it.
SNIFF_BYTES = 4096


@dataclass(frozen=True)
class FileKind:
    """A file that is not UTF-8 text: ``kind`` is ``"text"`` (another Unicode encoding) or ``"compressed"``."""

    kind: str
    name: str  # "UTF-16LE", "gzip", ...
    evidence: str  # "byte-order mark FF FE", "magic bytes 1F 8B", ...
    bom: bool = False


#: Longest first: the UTF-32LE mark begins with the UTF-16LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # an empty archive
    (b"PK\x07\x08", "zip"),  # a spanned archive
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
)


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def _nul_pattern(head: bytes) -> str | None:
    """BOM-less UTF-16/32: JSON Lines is mostly ASCII, so the high bytes of its code units are NUL."""
    for width, name_le, name_be in ((4, "UTF-32LE", "UTF-32BE"), (2, "UTF-16LE", "UTF-16BE")):
        units = len(head) // width
        if units < 4:
            continue
        sample = head[: units * width]
        # share of NUL bytes at each byte position of a code unit
        zero = [sample[k::width].count(0) / units for k in range(width)]
        if zero[0] <= 0.05 and min(zero[1:]) >= 0.6:
            return name_le
        if zero[-1] <= 0.05 and min(zero[:-1]) >= 0.6:
            return name_be
    return None


def sniff_file_kind(head: bytes) -> FileKind | None:
    """What the first bytes of a file say it is, when that is not (possibly BOM-marked) UTF-8 text.

    Recognises the UTF-16/32 byte-order marks, BOM-less UTF-16/32 by its NUL pattern, and the magic
    bytes of gzip, zip, zstd, bzip2 and xz. ``None``: UTF-8 (with or without BOM) or unknown; the line
    rules then run as usual.
    """
    if head.startswith(b"\xef\xbb\xbf"):
        return None  # UTF-8 with a BOM: F06, then the lines
    for mark, name in _BOMS:
        if head.startswith(mark):
            return FileKind("text", name, f"byte-order mark {_hex(mark)}", bom=True)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return FileKind("compressed", name, f"magic bytes {_hex(magic)}")
    # bzip2: "BZh" + block size 1-9 + the block (or end-of-stream) magic
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return FileKind("compressed", "bzip2", f"magic bytes {_hex(head[:4])}")
    unmarked = _nul_pattern(head[:SNIFF_BYTES])
    if unmarked is not None:
        return FileKind("text", unmarked, f"no byte-order mark; its NUL bytes follow the {unmarked} pattern")
    return None


#: Per compression: (file suffix, command that decompresses ``FILE.suffix`` next to it and keeps it,
#: command that writes the decompressed bytes to stdout).
_DECOMPRESS: dict[str, tuple[str, str, str]] = {
    "gzip": (".gz", "gunzip -k", "gzip -dc"),
    "zstd": (".zst", "zstd -d", "zstd -dc"),
    "bzip2": (".bz2", "bunzip2 -k", "bzip2 -dc"),
    "xz": (".xz", "unxz -k", "xz -dc"),
}


def conversion_command(kind: FileKind, path: Path) -> tuple[str, Path | None]:
    """The shell command that turns ``path`` into UTF-8 JSON Lines, and the file it writes (if known)."""
    src = shlex.quote(str(path))
    if kind.kind == "text":
        out = path.with_name(path.stem + ".utf8.jsonl")
        # with a BOM, iconv's plain UTF-16/UTF-32 reads the byte order from it and drops it
        encoding = kind.name[:-2] if kind.bom else kind.name
        return f"iconv -f {encoding} -t UTF-8 {src} > {shlex.quote(str(out))}", out
    if kind.name == "zip":
        return f"unzip {src}", None
    suffix, keep, to_stdout = _DECOMPRESS[kind.name]
    if path.suffix.lower() == suffix:
        return f"{keep} {src}", path.with_suffix("")
    out = path.with_name(path.stem + (".decompressed.jsonl" if path.suffix.lower() == ".jsonl" else ".jsonl"))
    return f"{to_stdout} {src} > {shlex.quote(str(out))}", out
