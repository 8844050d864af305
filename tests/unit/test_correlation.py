"""The correlation id travels with the work: into pools that run a request's follow-ups, and onto
work that arrives without one (Socket Mode, Feishu's long connection)."""

from __future__ import annotations

import threading

from lifecycle.domain import correlation
from lifecycle.domain.correlation import CarryingPool


def test_pool_tasks_run_under_the_id_of_the_work_that_submitted_them() -> None:
    with CarryingPool(max_workers=1) as pool:
        with correlation.bound("req-a"):
            a = pool.submit(correlation.current.get)
        with correlation.bound("req-b"):
            b = pool.submit(correlation.current.get)
        none = pool.submit(correlation.current.get)
        assert (a.result(), b.result(), none.result()) == ("req-a", "req-b", None)
        # The pool's thread is left as it was found: no id leaks into the next task.
        assert pool.submit(correlation.current.get).result() is None


def test_tasks_submitted_together_each_keep_their_own_context() -> None:
    gate = threading.Event()

    def wait_then_read() -> str | None:
        gate.wait(5)
        return correlation.current.get()

    with CarryingPool(max_workers=4) as pool:
        futures = []
        for i in range(4):
            with correlation.bound(f"req-{i}"):
                futures.append(pool.submit(wait_then_read))
        gate.set()
        assert [f.result() for f in futures] == [f"req-{i}" for i in range(4)]


def test_ensured_keeps_a_bound_id_and_makes_one_otherwise() -> None:
    with correlation.bound("lb-1"), correlation.ensured() as cid:
        assert cid == "lb-1" == correlation.current.get()
    with correlation.ensured() as fresh:
        assert len(fresh) == 16 and correlation.current.get() == fresh
    with correlation.ensured() as other:
        assert other != fresh
    assert correlation.current.get() is None
