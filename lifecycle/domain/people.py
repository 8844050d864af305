"""The people a view or an event names, looked up once in the roster so renderers can mention them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel

from lifecycle.domain.access import Roster
from lifecycle.domain.views import People, Who

M = TypeVar("M", bound=BaseModel)


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            if name != "people":
                yield from _strings(getattr(obj, name))
    elif isinstance(obj, tuple | list):
        for x in obj:
            yield from _strings(x)


def people_in(roster: Roster, model: BaseModel) -> People:
    """Every ref in `model` that is a person of the directory, with their name and platform refs."""
    if not roster.people:
        return {}
    found: People = {}
    for s in _strings(model):
        if s in found or s not in roster.aliases:
            continue
        person = roster.person_of(s)
        if person is not None:
            found[s] = Who(name=person.display, refs=person.refs)
    return found


def with_people(roster: Roster, model: M) -> M:
    """`model` with its `people` filled in (unchanged when it names nobody of the directory)."""
    if "people" not in type(model).model_fields:
        return model
    found = people_in(roster, model)
    return model.model_copy(update={"people": found}) if found else model
