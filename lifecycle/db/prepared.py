"""Hot-path writes compiled once per dialect and run through `Connection.exec_driver_sql`.

A stage move is five or six single-row INSERTs and UPDATEs. Measured in place on SQLite,
`Connection.execute` spent about 40 µs on each besides the driver's own 15 µs: finding the compiled
form, building and converting a parameter dict for every bind, setting up the result. `Prepared`
does the finding and planning once per (dialect, parameter names) and then only converts the
values, with each bind's own SQLAlchemy type (so UTCDateTime, Numeric and the rest store exactly
what Core would store). `exec_driver_sql` runs on the same Connection: the transaction, the
events and SQLAlchemy's error wrapping (IntegrityError, disconnect detection) are unchanged.

For INSERT and UPDATE without RETURNING and without Python-side column defaults that are not
given: nothing would apply those defaults here, so planning such a call raises instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, CursorResult, Insert, Update
from sqlalchemy.engine import Dialect


@dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # the binds in the driver's order (positional) or all of them (named)
    positional: bool
    fixed: dict[str, Any]  # values written into the statement itself, e.g. .values(status="open")
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]  # (index in names, the bind type's converter)

    @cached_property
    def _pick(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        if len(self.names) == 1:
            name = self.names[0]
            return lambda params: (params[name],)
        return itemgetter(*self.names) if self.names else lambda params: ()

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters for one execution: converted values, in order or by name."""
        picked = self._pick({**self.fixed, **params} if self.fixed else params)
        if self.conversions:
            values = list(picked)
            for i, convert in self.conversions:
                values[i] = convert(values[i])
            picked = tuple(values)
        return picked if self.positional else dict(zip(self.names, picked, strict=True))


class Prepared:
    """`Prepared(insert(table))(conn, {"col": value, ...})`: a Core INSERT or UPDATE, executed cheaply."""

    def __init__(self, statement: Insert | Update) -> None:
        if statement.returning_column_descriptions:  # rows would come back without type processing
            raise ValueError("Prepared does not run statements with RETURNING")
        self.statement = statement
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def __call__(self, conn: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        plan = self._plan_for(conn.dialect, params)
        return conn.exec_driver_sql(plan.sql, plan.arguments(params))

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once per row, in one executemany; every row has the first row's keys."""
        if rows:
            plan = self._plan_for(conn.dialect, rows[0])
            width = len(rows[0])
            if any(len(row) != width for row in rows):  # a key the first row lacks would be dropped
                raise ValueError("every row of an executemany must have the same keys")
            conn.exec_driver_sql(plan.sql, [plan.arguments(row) for row in rows])

    def _plan_for(self, dialect: Dialect, params: Mapping[str, Any]) -> _Plan:
        key = (dialect.name, tuple(params))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(dialect, key[1])
        return plan

    def _plan(self, dialect: Dialect, given: tuple[str, ...]) -> _Plan:
        compiled = self.statement.compile(dialect=dialect, column_keys=list(given))
        defaults = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        if defaults:
            raise ValueError(f"give a value for every column with a Python-side default: {defaults}")
        if compiled.escaped_bind_names:
            raise ValueError(f"bind names that need escaping are not supported: {compiled.escaped_bind_names}")
        binds = compiled.binds
        missing = [n for n, b in binds.items() if b.required and n not in given]
        if missing:
            raise ValueError(f"missing parameters: {missing}")
        fixed = {n: b.effective_value for n, b in binds.items() if n not in given}
        positional = bool(compiled.positional)
        names = tuple(compiled.positiontup or ()) if positional else tuple(binds)
        conversions = []
        for i, name in enumerate(names):
            f = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if f is not None:
                conversions.append((i, f))
        return _Plan(str(compiled), names, positional, fixed, tuple(conversions))
