"""How fengkong treats Python's cyclic garbage collector.

A batch of events allocates tens of thousands of short-lived containers that all stay alive until the batch's
transaction commits. Left alone, the collector runs dozens of times per batch, finds nothing to free (reference
counting frees the batch once it is done), and promotes the survivors to the old generation, whose growth then
sets off full collections over every object the process holds, modules included: a fifth of ingestion time
(measured in ``benchmarks/ingest.py``). So:

- :func:`deferred_gc` holds automatic collection off for the span of one batch and then restores whatever the
  host had; thread-safe, and a host that disabled the collector keeps it disabled.
- :func:`tune_for_service` is for processes fengkong owns (``fengkong serve``, ``fengkong ingest``): it freezes
  what start-up built (never garbage) and lets young garbage pile up longer before a collection. A library must
  not do this to its host, so ``Engine`` never calls it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_restore = False


@contextmanager
def deferred_gc() -> Iterator[None]:
    """No automatic cyclic collection inside the block (any thread); on leaving the last such block the
    collector is enabled again if it was enabled on entering the first."""
    global _holders, _restore
    with _lock:
        if _holders == 0:
            _restore = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _restore:
                gc.enable()


_owned = False


def own_process() -> None:
    """Called by the ``fengkong`` command's entry point: this process runs nothing but fengkong."""
    global _owned
    _owned = True


def tune_for_service() -> bool:
    """Tune the collector for a long-running fengkong process, once start-up is done; does nothing (False) in
    a process fengkong does not own, such as a host application or a test runner invoking the CLI."""
    if not _owned:
        return False
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    return True
