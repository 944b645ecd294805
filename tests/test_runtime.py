"""The garbage-collector policy: deferred inside an ingested batch, tuned only in a process fengkong owns."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from typing import Any

from fengkong import runtime


def _collections_during(fn: Any, busy: list[bool] | None = None) -> int:
    """Collections while fn runs (or, given ``busy``, while busy[0] is set)."""
    seen = 0

    def count(phase: str, _info: dict[str, Any]) -> None:
        nonlocal seen
        if phase == "start" and (busy is None or busy[0]):
            seen += 1

    gc.callbacks.append(count)
    try:
        fn()
    finally:
        gc.callbacks.remove(count)
    return seen


def test_no_collection_runs_while_a_batch_is_ingested_and_the_collector_comes_back(sqlite_engine: Any) -> None:
    events = [
        {
            "event_id": f"gc-{i}",
            "type": "login",
            "customer_id": f"c{i % 50}",
            "occurred_at": "2026-11-23T10:00:00+08:00",
            "device_id": f"d{i % 70}",
        }
        for i in range(3_000)
    ]
    busy = [False]
    work = sqlite_engine._ingest

    def watched(*args: Any) -> Any:
        busy[0] = True
        try:
            return work(*args)
        finally:
            busy[0] = False

    sqlite_engine._ingest = watched
    assert gc.isenabled()
    # tens of thousands of allocations, and no collection until the batch is done
    assert _collections_during(lambda: sqlite_engine.ingest(events), busy) == 0
    assert len(sqlite_engine.ingest(events).duplicates) == len(events)  # stored, the deferral changed nothing
    assert gc.isenabled()
    # the same work outside the deferral does set the collector off: the check above can fail
    assert _collections_during(lambda: [{"i": [i]} for i in range(50_000)]) > 0


def test_a_host_that_disabled_the_collector_keeps_it_disabled_and_threads_share_the_deferral() -> None:
    gc.disable()
    try:
        with runtime.deferred_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        with runtime.deferred_gc():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=other)
    worker.start()
    inside.wait(5)
    with runtime.deferred_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread is still inside its batch
    release.set()
    worker.join(5)
    assert gc.isenabled()


def test_the_collector_is_tuned_only_in_a_process_fengkong_owns() -> None:
    before = gc.get_threshold()
    assert runtime.tune_for_service() is False and gc.get_threshold() == before and gc.get_freeze_count() == 0
    code = (
        "import gc; from fengkong import runtime; runtime.own_process(); "
        "print(runtime.tune_for_service(), gc.get_threshold(), gc.get_freeze_count() > 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and "(50000," in out[1] and out[-1] == "True"
