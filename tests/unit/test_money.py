"""lifecycle.domain.money.parse_amount: the one amount parser of chat and CSV import (issues 17, 18).

A table of every accepted form and every refusal, then properties: an amount written in any supported
style reads back as itself, and any text at all gives an amount or a bilingual InvalidAmount.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.domain.errors import InvalidAmount, InvalidInput
from lifecycle.domain.money import UNITS, is_unit_word, parse_amount

NBSP, NNBSP = "\u00a0", "\u202f"

ACCEPTED = [
    # plain digits, decimals
    ("0", "0"),
    ("50000", "50000"),
    ("50000.00", "50000.00"),
    ("12.5", "12.5"),
    ("0.500", "0.50"),  # a lone 0 cannot start a thousands group: 0.5, trailing zero allowed
    ("  42  ", "42"),
    # thousands with ",", and a decimal comma
    ("50,000", "50000"),
    ("1,234", "1234"),  # the convention: a single "," and 3 digits separates thousands
    ("1,234,567.89", "1234567.89"),
    ("50,00", "50.00"),  # issue 17: was 5,000 in chat
    ("5,5", "5.5"),
    ("0,500", "0.50"),
    # European and Swiss forms
    ("1.234.567,89", "1234567.89"),
    ("1.234.567", "1234567"),  # "." more than once: thousands
    ("1.234,5", "1234.5"),
    ("1 234 567,89", "1234567.89"),
    (f"1{NBSP}234{NBSP}567,89", "1234567.89"),
    (f"1{NNBSP}234{NNBSP}567,89", "1234567.89"),
    ("1 234 567.89", "1234567.89"),
    ("1 234", "1234"),
    ("1'234'567.89", "1234567.89"),
    ("1’234", "1234"),
    # currency marks, before or after, any case
    ("$50,000.00", "50000"),
    ("¥5000", "5000"),
    ("￥5000", "5000"),
    ("€1.234,50", "1234.50"),
    ("1.234,50 €", "1234.50"),
    ("£20", "20"),
    ("USD 5,000", "5000"),
    ("5000usd", "5000"),
    ("Cny 300", "300"),
    ("RMB5万", "50000"),
    ("EUR 12,50", "12.50"),
    ("US$7", "7"),
    ("300元", "300"),
    ("5万元", "50000"),
    ("5 万 元", "50000"),
    # units, with or without a space
    ("50k", "50000"),
    ("50K", "50000"),
    ("1.2m", "1200000"),
    ("1.2 M", "1200000"),
    ("5千", "5000"),  # issue 17: was refused
    ("5万", "50000"),
    ("5 万", "50000"),  # issue 17: chat split it off into the name
    ("5w", "50000"),
    ("5 W", "50000"),
    ("1.5万", "15000"),
    ("3百万", "3000000"),
    ("1千万", "10000000"),
    ("2亿", "200000000"),
    ("1,5m", "1500000"),
    ("1,234k", "1234000"),
    ("1.2345k", "1234.50"),  # decimals are counted after the unit
    ("$1.2m", "1200000"),
    # fullwidth digits and punctuation
    ("５万", "50000"),
    ("１，０００", "1000"),
    ("１２．５", "12.5"),
    # the largest amount the column holds
    ("99999999999999.99", "99999999999999.99"),
    ("9999.99亿", "999999000000"),
]


@pytest.mark.parametrize(("text", "value"), ACCEPTED)
def test_accepted_forms(text: str, value: str) -> None:
    got = parse_amount(text)
    assert got == Decimal(value)
    assert got.as_tuple().exponent == -2  # always to the cent, as the column stores it


REFUSED = [
    # (text, a fragment of the English message, a fragment of the Chinese one)
    ("-5", 'Amounts cannot be negative: "-5"', "金额不能为负数"),  # issue 17: said "out of range"
    ("−5", "Amounts cannot be negative", "金额不能为负数"),  # U+2212
    ("(5)", "Amounts cannot be negative", "金额不能为负数"),
    ("$-5", "Amounts cannot be negative", "金额不能为负数"),
    ("-$5", "Amounts cannot be negative", "金额不能为负数"),
    ("-1.234", "Amounts cannot be negative", "金额不能为负数"),
    ("12.345", "at most 2 decimal places", "金额最多两位小数"),  # issue 17: was 12.34, silently
    ("1.234", '"1.234" is ambiguous: write 1234 or 1.23', "“1.234”有歧义:请写作 1234 或 1.23"),
    ("1.000", '"1.000" is ambiguous: write 1000 or 1.', "有歧义"),
    ("1.234k", '"1.234k" is ambiguous: write 1234000 or 1234.', "有歧义"),
    ("12.3456", '"12.3456" has more than 2 decimal places', "超过两位小数"),
    ("1234.567", "more than 2 decimal places", "超过两位小数"),
    ("1,2345", "more than 2 decimal places", "超过两位小数"),
    ("1 234,567", "more than 2 decimal places", "超过两位小数"),
    ("1.234567k", "more than 2 decimal places", "超过两位小数"),
    ("100000000000000", '"100000000000000" is too large', "过大"),
    ("1000000亿", "too large", "过大"),
    ("9" * 40, "too large", "过大"),
    ("", "The amount is empty", "金额为空"),
    ("   ", "The amount is empty", "金额为空"),
    ("lots", '"lots" is not an amount (write 50000, 50,000, 50k, 1.2m or 5万)', "“lots”不是有效金额"),
    ("1e5", "is not an amount", "不是有效金额"),
    ("1e9999999", "is not an amount", "不是有效金额"),
    ("nan", "is not an amount", "不是有效金额"),
    ("inf", "is not an amount", "不是有效金额"),
    ("-", "is not an amount", "不是有效金额"),
    ("$", "is not an amount", "不是有效金额"),
    ("k", "is not an amount", "不是有效金额"),
    (".5", "is not an amount", "不是有效金额"),
    ("5.", "is not an amount", "不是有效金额"),
    ("5 apples", "is not an amount", "不是有效金额"),
    ("5kk", "is not an amount", "不是有效金额"),
    ("12,34,567", "is not an amount", "不是有效金额"),  # groups after the first are 3 digits
    ("1234,567,890", "is not an amount", "不是有效金额"),  # the first group is 1-3 digits
    ("1,234.567,89", "is not an amount", "不是有效金额"),  # one kind of thousands separator
    ("1 234,567.89", "is not an amount", "不是有效金额"),
    ("1,234,56", "is not an amount", "不是有效金额"),
    ("1  234", "is not an amount", "不是有效金额"),
    ("٣", "is not an amount", "不是有效金额"),  # a digit to str.isdigit(), not to people here
    ("5²", "is not an amount", "不是有效金额"),
    ("x" * 300, "x" * 40 + "…", "…"),  # a long text is shortened in the message
]


@pytest.mark.parametrize(("text", "en", "zh"), REFUSED)
def test_refusals_say_why_in_both_languages(text: str, en: str, zh: str) -> None:
    with pytest.raises(InvalidAmount) as err:
        parse_amount(text)
    assert en in err.value.text("en")
    assert zh in err.value.text("zh")
    assert str(err.value) == err.value.text("en")  # what a CSV row problem shows


def test_invalid_amount_is_invalid_input_and_a_value_error() -> None:
    with pytest.raises(InvalidInput):
        parse_amount("lots")
    with pytest.raises(ValueError, match="is not an amount"):
        parse_amount("lots")


UNIT_WORDS = ["万", "M", "k", "USD", "万元", "元", "￥"]
NOT_UNIT_WORDS = ["", "Corp", "5", "mk", "--stage", "元万"]


@pytest.mark.parametrize(("word", "unit"), [(w, True) for w in UNIT_WORDS] + [(w, False) for w in NOT_UNIT_WORDS])
def test_unit_words(word: str, unit: bool) -> None:
    assert is_unit_word(word) is unit


# ------------------------------------------------------------------------------------ properties

cents = st.integers(min_value=0, max_value=10**16 - 1).map(lambda n: Decimal(n).scaleb(-2))
whole = st.integers(min_value=0, max_value=10**14 - 1)
currency_marks = st.sampled_from(["", "$", "¥", "￥", "€", "£", "USD ", "usd", "CNY ", "RMB", "EUR "])
currency_after = st.sampled_from(["", " USD", "元", "€", " eur", " CNY"])


def grouped(n: int, sep: str) -> str:
    return f"{n:,}".replace(",", sep)


def written(value: Decimal, style: str) -> str:
    """`value` (2 places) in one of the styles people use; the cents are always written."""
    n, frac = f"{value:.2f}".split(".")
    i = int(n)
    return {
        "plain": f"{i}.{frac}",
        "comma decimal": f"{i},{frac}",
        "1,234.56": f"{grouped(i, ',')}.{frac}",
        "1.234,56": f"{grouped(i, '.')},{frac}",
        "1 234,56": f"{grouped(i, ' ')},{frac}",
        "1 234.56": f"{grouped(i, ' ')}.{frac}",
        "nbsp": f"{grouped(i, NBSP)},{frac}",
        "narrow nbsp": f"{grouped(i, NNBSP)},{frac}",
        "1'234.56": grouped(i, "'") + "." + frac,
    }[style]


STYLES = ["plain", "comma decimal", "1,234.56", "1.234,56", "1 234,56", "1 234.56", "nbsp", "narrow nbsp", "1'234.56"]


@given(value=cents, style=st.sampled_from(STYLES), before=currency_marks, after=currency_after)
def test_an_amount_with_cents_in_any_style_reads_back(value: Decimal, style: str, before: str, after: str) -> None:
    text = before + written(value, style) + after
    assert parse_amount(text) == value, text


@given(n=whole, sep=st.sampled_from([",", " ", "'", NBSP, NNBSP, ""]))
def test_whole_amounts_with_thousands_separators_read_back(n: int, sep: str) -> None:
    assert parse_amount(grouped(n, sep)) == n


@given(n=whole)
def test_dot_thousands_are_read_unless_one_dot_leaves_them_ambiguous(n: int) -> None:
    """1.234.567 is a million and more; 1.234 alone is refused (1234, or 1.234 with a decimal point)."""
    text = grouped(n, ".")
    if text.count(".") == 1:
        with pytest.raises(InvalidAmount, match="is ambiguous"):
            parse_amount(text)
    else:
        assert parse_amount(text) == n


@given(
    value=cents,
    unit=st.sampled_from(sorted(UNITS)),
    space=st.sampled_from(["", " "]),
    comma=st.booleans(),
    upper=st.booleans(),
)
def test_an_amount_with_a_unit_reads_back(value: Decimal, unit: str, space: str, comma: bool, upper: bool) -> None:
    scale = UNITS[unit]
    places = 2 + len(str(scale)) - 1  # never exactly 3: a lone separator then 3 digits is the ambiguous case
    number = f"{value / scale:.{places}f}"
    text = (number.replace(".", ",") if comma else number) + space + (unit.upper() if upper else unit)
    assert parse_amount(text) == value, text


@given(value=cents.filter(lambda v: v > 0), style=st.sampled_from(STYLES), how=st.sampled_from(["-", "−", "()"]))
def test_a_negative_amount_is_refused_as_negative(value: Decimal, style: str, how: str) -> None:
    text = f"({written(value, style)})" if how == "()" else how + written(value, style)
    with pytest.raises(InvalidAmount, match="Amounts cannot be negative"):
        parse_amount(text)


amountish = st.text(alphabet="0123456789.,' -()$¥k万m亿千w元" + NBSP, max_size=16)


@given(text=st.text(max_size=40) | amountish)
def test_any_text_is_an_amount_or_a_bilingual_refusal(text: str) -> None:
    try:
        value = parse_amount(text)
    except InvalidAmount as exc:
        assert exc.text("en") and exc.text("zh") and exc.text("en") != exc.text("zh")
    else:
        assert Decimal(0) <= value < Decimal("1e14") and value == value.quantize(Decimal("0.01"))
