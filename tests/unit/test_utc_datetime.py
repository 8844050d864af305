"""UTCDateTime on SQLite stores exactly the text SQLAlchemy's own SQLite DATETIME stored before it
took the conversion over (existing databases compare and sort by that text), and reads it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.base import DATETIME

from lifecycle.db.models import UTCDateTime

SQLITE = sqlite.dialect()
BIND = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
RESULT = UTCDateTime().dialect_impl(SQLITE).result_processor(SQLITE, None)
SQLALCHEMY_TEXT = DATETIME().bind_processor(SQLITE)  # what stored our datetimes before

zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC) | zones)


@given(aware)
@example(datetime(2026, 11, 27, 10, 30, tzinfo=UTC))  # no microseconds: isoformat would drop them
@example(datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC))  # a three-digit year
@example(datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=8))))  # the day before, in UTC
def test_sqlite_text_is_sqlalchemys_and_reads_back_as_the_same_instant(at: datetime) -> None:
    assert BIND is not None and RESULT is not None and SQLALCHEMY_TEXT is not None
    text = BIND(at)
    assert text == SQLALCHEMY_TEXT(at.astimezone(UTC).replace(tzinfo=None))
    back = RESULT(text)
    assert back == at and back.tzinfo is UTC


def test_the_same_instant_twice_and_a_different_one_in_between() -> None:
    # The conversion remembers the last datetime it converted: it must never answer for another.
    assert BIND is not None
    a = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    b = datetime(2026, 11, 27, 10, 0, 0, 1, tzinfo=UTC)
    assert [BIND(a), BIND(a), BIND(b), BIND(a)] == [
        "2026-11-27 10:00:00.000000",
        "2026-11-27 10:00:00.000000",
        "2026-11-27 10:00:00.000001",
        "2026-11-27 10:00:00.000000",
    ]


def test_a_naive_datetime_is_refused_on_both_engines() -> None:
    naive = datetime(2026, 11, 27, 10, 0)
    for dialect in (SQLITE, postgresql.dialect()):
        bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        assert bind is not None
        with pytest.raises(ValueError, match="naive datetime"):
            bind(naive)
