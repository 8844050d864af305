"""The text of a CSV file as spreadsheets and CRMs write it: its encoding, its delimiter, its dates.

Encodings, tried in order: a byte-order mark (UTF-8, UTF-16 LE/BE), UTF-16 without a mark when
the bytes are full of NULs (no text file has any), then UTF-8, then GB18030 (a superset of GBK, what Chinese
Excel saves as "CSV"). The delimiter is whichever of comma, semicolon and tab the header line has
most of outside quotes. Dates are ISO (2026-03-05, 2026/03/05, with or without a time), or D/M/Y
and M/D/Y when the file or `--date-format` says which.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

DateOrder = Literal["DMY", "MDY"]
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}

ISO_DATE = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
NUMERIC_DATE = re.compile(
    r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:,?\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp][Mm])?)?$"
)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip


class Undecodable(ValueError):
    """The bytes are not text in an encoding an import accepts."""


def decode(data: bytes) -> tuple[str, str]:
    """The text of a file and the name of its encoding, as the CLI reports it."""
    for bom, codec, name in (
        (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with BOM"),
        (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 LE"),
        (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 BE"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(codec), name
            except UnicodeDecodeError as exc:
                raise Undecodable(
                    f"it starts with a {name} byte-order mark but is not {name} (byte {exc.start})"
                ) from None
    head = data[:4096]
    if head.count(0) * 4 > len(head):  # UTF-16 without a mark: every other byte of ASCII is NUL
        codec = "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
        try:
            return data.decode(codec), codec.upper().replace("-LE", " LE").replace("-BE", " BE")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "GB18030"
    except UnicodeDecodeError as exc:
        raise Undecodable(
            f'it is not UTF-8, UTF-16 or GB18030 text (byte {exc.start}); save it as "CSV UTF-8"'
        ) from None


def sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab: the one the first line has most of outside quotes (comma on a tie)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in ("\n", "\r"):
            break
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


@dataclass(frozen=True)
class DateStyle:
    """How a file writes day-month-year dates: as `--date-format` says, or as its unambiguous values
    show (25/12/2026 can only be day first), or undecided (every value could be either way). A file
    that shows both orders refuses the values of the rarer one, naming a value of the other."""

    order: DateOrder | None
    given: bool = False
    rarer: DateOrder | None = None
    conflict: str = ""

    @staticmethod
    def of(values: list[tuple[int, str]], given: DateOrder | None) -> DateStyle:
        """`values` are (row, text) of the file's date column."""
        if given is not None:
            return DateStyle(given, given=True)
        seen: dict[DateOrder, list[tuple[int, str]]] = {"DMY": [], "MDY": []}
        for row, text in values:
            kind = _order_of(text)
            if kind is not None:
                seen[kind].append((row, text.strip()))
        if seen["DMY"] and seen["MDY"]:
            # The rarer order is the odd one out (on a tie, the one met second).
            rarer: DateOrder = (
                "DMY" if (len(seen["DMY"]), -seen["DMY"][0][0]) < (len(seen["MDY"]), -seen["MDY"][0][0]) else "MDY"
            )
            common: DateOrder = "MDY" if rarer == "DMY" else "DMY"
            row, text = seen[common][0]
            first = "day" if common == "DMY" else "month"
            return DateStyle(None, rarer=rarer, conflict=f"this file writes dates {first} first (row {row}: {text})")
        return DateStyle("DMY" if seen["DMY"] else "MDY" if seen["MDY"] else None)

    def parse(self, text: str) -> date:
        """ValueError with the reason and the fix."""
        t = text.strip()
        m = ISO_DATE.match(t)
        if m is not None:
            return _date(text, int(m[1]), int(m[2]), int(m[3]))
        m = NUMERIC_DATE.match(t)
        if m is None:
            raise ValueError(f'"{text}" is not a date (write 2026-09-01)')
        a, b, year = int(m[1]), int(m[2]), int(m[3])
        if self.order is not None:
            if self.given:
                how = "day/month/year" if self.order == "DMY" else "month/day/year"
                try:
                    return date(year, b, a) if self.order == "DMY" else date(year, a, b)
                except ValueError:
                    raise ValueError(f'"{text}" is not a date in {how} (--date-format {self.order})') from None
            return _date(text, year, b, a) if self.order == "DMY" else _date(text, year, a, b)
        kind = _order_of(t)
        if kind is not None and kind == self.rarer:
            first = "day" if kind == "DMY" else "month"
            raise ValueError(f"{t} is {first} first, but {self.conflict}; pass --date-format DMY or MDY")
        if kind == "DMY" or a == b:
            return _date(text, year, b, a)
        if kind == "MDY" or not (1 <= a <= 12 and 1 <= b <= 12):
            return _date(text, year, a, b)
        raise ValueError(
            f"ambiguous: {t} could be {a} {MONTHS[b - 1]} or {MONTHS[a - 1]} {b}; pass --date-format DMY or MDY"
        )


def _order_of(text: str) -> DateOrder | None:
    """The order a D/M/Y-style date can only be read in, if one (25/12/2026: DMY; 12/25/2026: MDY)."""
    m = NUMERIC_DATE.match(text.strip())
    if m is None:
        return None
    a, b = int(m[1]), int(m[2])
    if a > 12 and b <= 12:
        return "DMY"
    if b > 12 and a <= 12:
        return "MDY"
    return None


def _date(text: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f'"{text}" is not a date (write 2026-09-01)') from None
