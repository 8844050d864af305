"""How an import reads a file's text: encodings (never a raw codec error), the delimiter, and dates
in D/M/Y or M/D/Y only when the file or --date-format says which."""

from __future__ import annotations

import codecs
from datetime import date

import pytest

from lifecycle.usecases.csv_text import DateStyle, Undecodable, decode, sniff_delimiter

TEXT = "公司名称,阶段\n北京星云科技,线索\n"


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (TEXT.encode("utf-8"), "UTF-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "UTF-8 with BOM"),
        (TEXT.encode("utf-16"), "UTF-16 LE"),  # Excel "Unicode Text"
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "UTF-16 BE"),
        (TEXT.encode("gbk"), "GB18030"),  # Chinese Excel's "CSV"
        (TEXT.encode("gb18030"), "GB18030"),
    ],
)
def test_encodings(data: bytes, name: str) -> None:
    assert decode(data) == (TEXT, name)


def test_utf16_without_a_mark_is_told_by_its_nuls() -> None:
    text = "name\tstage\nAcme Corp\tMQL\n"
    assert decode(text.encode("utf-16-le")) == (text, "UTF-16 LE")
    assert decode(text.encode("utf-16-be")) == (text, "UTF-16 BE")


def test_undecodable_bytes_say_what_to_do() -> None:
    with pytest.raises(Undecodable) as err:
        decode(b"name\n\xff\xfe\xfd\x80\n")  # not UTF-16 (no text after the mark) and not GB18030
    assert "UTF-8, UTF-16 or GB18030" in str(err.value) or "byte-order mark" in str(err.value)
    with pytest.raises(Undecodable, match='save it as "CSV UTF-8"'):
        decode(b"name\nAcme\x80\n")


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("name,stage\nAcme,MQL\n", ","),
        ("name;stage;amount\nAcme;MQL;1.234,50\n", ";"),
        ("name\tstage\nAcme\tMQL\n", "\t"),
        ('"Name; with, both";stage;amount\n', ";"),  # quoted delimiters do not count
        ("name\nAcme\n", ","),  # one column
        ("a,b;c\n", ","),  # a tie is a comma
    ],
)
def test_delimiter(text: str, delimiter: str) -> None:
    assert sniff_delimiter(text) == delimiter


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-03-05", date(2026, 3, 5)),
        ("2026/03/05", date(2026, 3, 5)),
        ("2026-03-05 10:00", date(2026, 3, 5)),
        ("2026-03-05T10:00:00Z", date(2026, 3, 5)),
        ("2026-03-05T10:00:00+08:00", date(2026, 3, 5)),
        ("5/5/2026", date(2026, 5, 5)),  # the same either way
        ("25/12/2026", date(2026, 12, 25)),
        ("12/25/2026", date(2026, 12, 25)),
    ],
)
def test_dates_that_need_no_hint(text: str, day: date) -> None:
    assert DateStyle.of([(2, text)], None).parse(text) == day


def test_an_ambiguous_date_says_both_readings() -> None:
    with pytest.raises(ValueError) as err:
        DateStyle.of([(2, "3/5/2026")], None).parse("3/5/2026")
    assert str(err.value) == "ambiguous: 3/5/2026 could be 3 May or March 5; pass --date-format DMY or MDY"


def test_the_file_decides_the_order() -> None:
    us = DateStyle.of([(2, "3/5/2026"), (3, "12/31/2026")], None)
    assert us.parse("3/5/2026") == date(2026, 3, 5)
    eu = DateStyle.of([(2, "3.5.2026"), (3, "31.12.2026")], None)
    assert eu.parse("3.5.2026") == date(2026, 5, 3)


def test_both_orders_in_one_file_refuse_the_odd_one_out() -> None:
    style = DateStyle.of([(2, "3/31/2027"), (3, "4/1/2027"), (4, "15/12/2026"), (5, "2/20/2027")], None)
    assert style.parse("3/31/2027") == date(2027, 3, 31)
    with pytest.raises(ValueError) as err:
        style.parse("15/12/2026")
    assert str(err.value) == (
        "15/12/2026 is day first, but this file writes dates month first (row 2: 3/31/2027); "
        "pass --date-format DMY or MDY"
    )
    with pytest.raises(ValueError, match="ambiguous"):
        style.parse("4/1/2027")


def test_date_format_given() -> None:
    assert DateStyle.of([], "DMY").parse("3/5/2026") == date(2026, 5, 3)
    assert DateStyle.of([], "MDY").parse("3/5/2026") == date(2026, 3, 5)
    with pytest.raises(ValueError) as err:
        DateStyle.of([], "DMY").parse("3/31/2026")
    assert str(err.value) == '"3/31/2026" is not a date in day/month/year (--date-format DMY)'


@pytest.mark.parametrize("text", ["next spring", "2026-02-30", "13/14/2026", "0/5/2026", "3/5/26"])
def test_not_dates(text: str) -> None:
    with pytest.raises(ValueError, match="is not a date"):
        DateStyle.of([(2, text)], None).parse(text)
