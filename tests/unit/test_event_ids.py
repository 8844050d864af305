"""Outbox event ids: random version-4 UUIDs, made many at a time for scheduled work."""

from __future__ import annotations

import uuid

from lifecycle.usecases.base import event_ids


def test_event_ids_are_distinct_version_4_uuids_in_canonical_form() -> None:
    ids = event_ids(2000)
    assert len(ids) == len(set(ids)) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower-case, dashed: what uuid.uuid4() would print


def test_every_variant_digit_occurs() -> None:
    # The variant digit is 8, 9, a or b; a mask that lost a bit would show up as missing digits.
    assert {text[19] for text in event_ids(400)} == set("89ab")


def test_no_ids_asked_none_made() -> None:
    assert event_ids(0) == []
