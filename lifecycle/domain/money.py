"""Amounts as people write them, in chat and in imported files: the one parser both use.

`parse_amount(text)` gives a `Decimal` with 2 places, or raises `InvalidAmount` (an `InvalidInput`
and a `ValueError`) whose bilingual message names the text and says what is wrong.

What it accepts, in order of reading (case does not matter; fullwidth digits and punctuation,
`，` `．` `（` `）` `￥` `－`, read as their ASCII forms):

- a currency mark before or after the number, ignored: `$ € £ ¥ ￥ US$` and the words USD, CNY, RMB,
  EUR, GBP, JPY, HKD and 元 (with or without a space). An account has one currency, whatever it is;
  the mark is not stored and amounts in different currencies are never converted;
- a unit after the number, with or without a space: k (thousand), m (million), 千 (thousand),
  万 or w (ten thousand), 百万 (million), 千万 (ten million), 亿 (hundred million): `50k`, `1.2 m`, `5万`;
- a minus sign (`-`, `−` U+2212) or parentheses around the amount make it negative, which is refused
  with its own message;
- the number: digits, with at most one decimal separator and thousands separators. Separators are
  `,` `.` space (also NBSP and narrow NBSP) and `'`. The rule, for a number with separators:
    1. space and `'` only ever separate thousands;
    2. when both `,` and `.` appear, the last one is the decimal separator and must appear once
       (`1,234,567.89`, `1.234.567,89`);
    3. a `,` or `.` that appears more than once separates thousands (`1,234,567`, `1.234.567`);
    4. a `,` or `.` that appears once, after a space or `'` group, is the decimal separator
       (`1 234 567,89`, `1'234'567.89`);
    5. a `,` or `.` that is the only separator is a decimal separator unless exactly 3 digits follow
       it (`50,00` is 50.00, `12.5` is 12.5). With exactly 3 digits after it and 1 to 3 digits other
       than a lone 0 before it, `,` separates thousands (`1,234` is 1234, the common convention)
       and `.` is ambiguous and refused naming both readings ("1.234": write 1234 or 1.23);
  thousands groups are 1-3 digits, then exactly 3 digits each, all with the same separator.
- the value after the unit may have at most 2 decimal places (`1.2345k` is 1234.50; `12.3456` is
  refused, never rounded) and must be below 1e14 (the column is Numeric(16, 2)).

Anything else (`1e5`, `nan`, `5 apples`, an empty text) is refused with examples of what works.

In chat, `--amount 5 万` takes the unit word after the value (`is_unit_word`); a number grouped with
plain spaces needs quotes there (`--amount "1 234 567,89"`), one grouped with NBSP does not.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, localcontext

from lifecycle.domain.errors import InvalidAmount
from lifecycle.domain.i18n import Text

MAX_AMOUNT = Decimal("1e14")  # the amount columns are Numeric(16, 2)
CENT = Decimal("0.01")
MAX_TEXT = 100  # longer than any amount; keeps the Decimal arithmetic below exact

UNITS: dict[str, int] = {
    "k": 1_000,
    "m": 1_000_000,
    "千": 1_000,
    "万": 10_000,
    "w": 10_000,
    "百万": 1_000_000,
    "千万": 10_000_000,
    "亿": 100_000_000,
}
CURRENCIES = ("us$", "$", "€", "£", "¥", "usd", "cny", "rmb", "eur", "gbp", "jpy", "hkd", "元")

_ASCII = str.maketrans(
    {
        **{chr(0xFF10 + d): str(d) for d in range(10)},  # fullwidth digits
        "，": ",",
        "．": ".",
        "（": "(",
        "）": ")",
        "￥": "¥",
        "＄": "$",
        "－": "-",
        "\u2212": "-",  # MINUS SIGN
        "\u00a0": " ",  # NO-BREAK SPACE
        "\u202f": " ",  # NARROW NO-BREAK SPACE
        "\u2009": " ",  # THIN SPACE
        "\u3000": " ",  # IDEOGRAPHIC SPACE
        "\u2019": "'",  # RIGHT SINGLE QUOTATION MARK, as in 1’234
    }
)
_CURRENCY = "|".join(re.escape(c) for c in CURRENCIES)
_CURRENCY_BEFORE = re.compile(rf"^(?:{_CURRENCY})\s*")
_CURRENCY_AFTER = re.compile(rf"\s*(?:{_CURRENCY})$")
_UNIT = "|".join(sorted(UNITS, key=len, reverse=True))
_UNIT_AFTER = re.compile(rf"^(.*?)\s*({_UNIT})$")
_UNIT_WORD = re.compile(rf"^(?:{_UNIT})?(?:{_CURRENCY})?$")
_NUMBER = re.compile(r"[0-9]+(?:[.,' ][0-9]+)*")  # ASCII digits only: Decimal("٣") is 3
_SEPARATOR = re.compile(r"[.,' ]")


def parse_amount(text: str) -> Decimal:
    """`text` as an amount with 2 decimal places; InvalidAmount saying why not (see the module doc)."""
    s = text.translate(_ASCII).strip().lower()
    if not s or len(s) > MAX_TEXT:
        raise _not_an_amount(text)
    negative = False
    while True:  # sign, parentheses and currency marks, in whatever order they were written
        s = s.strip()
        if len(s) > 1 and s[0] == "(" and s[-1] == ")":
            negative, s = True, s[1:-1]
        elif s[:1] == "-":
            negative, s = True, s[1:]
        elif (m := _CURRENCY_BEFORE.match(s) or _CURRENCY_AFTER.search(s)) is not None:
            s = s[: m.start()] + s[m.end() :]
        else:
            break
    if negative:
        if any(ch.isdigit() for ch in s):
            raise InvalidAmount(
                Text(f'Amounts cannot be negative: "{_shown(text)}".', f"金额不能为负数:“{_shown(text)}”。")
            )
        raise _not_an_amount(text)
    scale = 1
    if (m := _UNIT_AFTER.match(s)) is not None:
        s, scale = m.group(1), UNITS[m.group(2)]
    if not _NUMBER.fullmatch(s):
        raise _not_an_amount(text)
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_TEXT  # every product below is exact
        value = _read_number(text, s, scale) * scale
        if value >= MAX_AMOUNT:
            raise InvalidAmount(
                Text(
                    f'"{_shown(text)}" is too large: amounts must be below 100,000,000,000,000.',
                    f"金额“{_shown(text)}”过大:必须小于 100,000,000,000,000。",
                )
            )
        if value != value.quantize(CENT):
            raise InvalidAmount(
                Text(
                    f'"{_shown(text)}" has more than 2 decimal places; amounts go to the cent.',
                    f"“{_shown(text)}”超过两位小数;金额精确到分。",
                )
            )
        return value.quantize(CENT)


def is_unit_word(word: str) -> bool:
    """A unit and/or currency written apart from its number (`万`, `m`, `USD`, `万元`): the chat grammar
    reads `--amount 5 万` as one amount rather than leaving `万` to the account name."""
    w = word.translate(_ASCII).strip().lower()
    return bool(w) and _UNIT_WORD.match(w) is not None


def _read_number(text: str, s: str, scale: int) -> Decimal:
    """Digits and separators (already matched by _NUMBER) as a Decimal, by the rule in the module doc."""
    groups = _SEPARATOR.split(s)
    seps = _SEPARATOR.findall(s)
    if not seps:
        return Decimal(s)
    last = seps[-1]
    decimal_sep: str | None = None
    if last in ",." and seps.count(last) == 1:
        if len(seps) > 1 or len(groups[-1]) != 3 or groups[0] == "0" or len(groups[0]) > 3:
            decimal_sep = last  # rules 2, 4 and 5 (not thousands: no 3-digit group, or no room for one)
        elif last == ".":
            whole = Decimal("".join(groups)) * scale
            point = Decimal(".".join(groups)) * scale
            rounded = point.quantize(CENT, ROUND_HALF_UP)
            note_en = " (amounts have at most 2 decimal places)" if rounded != point else ""
            note_zh = "(金额最多两位小数)" if rounded != point else ""
            raise InvalidAmount(
                Text(
                    f'"{_shown(text)}" is ambiguous: write {_plain(whole)} or {_plain(rounded)}{note_en}.',
                    f"“{_shown(text)}”有歧义:请写作 {_plain(whole)} 或 {_plain(rounded)}{note_zh}。",
                )
            )
    if decimal_sep is not None:
        groups, fraction = groups[:-1], groups[-1]
        seps = seps[:-1]
    else:
        fraction = ""
    if seps and (len(set(seps)) > 1 or not 1 <= len(groups[0]) <= 3 or any(len(g) != 3 for g in groups[1:])):
        raise _not_an_amount(text)
    return Decimal("".join(groups) + ("." + fraction if fraction else ""))


def _plain(value: Decimal) -> str:
    """1234000 rather than 1.234E+6, 1.2 rather than 1.20."""
    return f"{value.normalize():f}"


def _shown(text: str) -> str:
    t = text.strip()
    return t if len(t) <= 40 else t[:40] + "…"


def _not_an_amount(text: str) -> InvalidAmount:
    if not text.strip():
        return InvalidAmount(
            Text(
                "The amount is empty (write 50000, 50,000, 50k, 1.2m or 5万).",
                "金额为空(可写作 50000、50,000、50k、1.2m 或 5万)。",
            )
        )
    return InvalidAmount(
        Text(
            f'"{_shown(text)}" is not an amount (write 50000, 50,000, 50k, 1.2m or 5万).',
            f"“{_shown(text)}”不是有效金额(可写作 50000、50,000、50k、1.2m 或 5万)。",
        )
    )
