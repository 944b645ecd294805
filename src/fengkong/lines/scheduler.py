"""Frozen lines are reviewed again by their review date, and decreases given with notice take effect on their
day, without anyone having to remember to run something.

``LineScheduler.tick()`` is one pass: the notices whose day has come take effect, then a review of only the
frozen lines whose review date has come is applied (``engine.lines.review(apply=True, due_only=True)``): each
is unfrozen, frozen again with a new review date, or closed, by the policy's line strategy, with its reasons and
notice. ``start()`` runs a tick at once and then every ``every`` seconds on a daemon thread; ``fengkong serve``
starts one, and ``fengkong lines scheduler`` runs one in the foreground (``--once`` for cron).

Several replicas may each run one: a review apply takes the audit chain's lock and refuses to start while another
run is unfinished, so one acts and the others find nothing due on their next tick. A due run left unfinished by
a crash is resumed by the next tick; a full portfolio review left unfinished is a person's to resume, and the
tick says so in the log and tries again later.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fengkong.errors import FengkongError

if TYPE_CHECKING:
    from fengkong.service import Engine

log = logging.getLogger("fengkong.lines.scheduler")


@dataclass
class Tick:
    """What one pass did."""

    settled: int  # decreases given with notice that took effect
    due: int  # frozen lines whose review date had come
    run_id: str | None = None  # the due review run that acted on them
    applied: int = 0
    resumed: bool = False
    waiting_for: str | None = None  # an unfinished full review that keeps this pass from acting


class LineScheduler:
    def __init__(self, engine: Engine, every: float = 3600.0, actor: str = "scheduler") -> None:
        if not every > 0:
            raise FengkongError("invalid_value", "every must be a number of seconds above 0", "every", 422)
        self.engine = engine
        self.every = every
        self.actor = actor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, today: dt.date | None = None) -> Tick:
        lines = self.engine.lines
        settled = lines.settle_pending(today)
        unfinished = lines.unfinished_run()
        if unfinished is not None:
            if unfinished["scope"] != "due":
                log.warning("line review run %s is unfinished: resume it; due lines wait", unfinished["run_id"])
                return Tick(settled, lines.due_for_review(today), waiting_for=unfinished["run_id"])
            run = lines.review(resume=unfinished["run_id"], actor=self.actor)
            return Tick(settled, run.report.lines, run.run_id, run.applied, resumed=True)
        due = lines.due_for_review(today)
        if due == 0:
            return Tick(settled, 0)
        try:
            run = lines.review(today, apply=True, due_only=True, actor=self.actor)
        except FengkongError as exc:
            if exc.code != "conflict":
                raise
            log.info("another line review started first: %s", exc.message)  # a replica's tick; next time
            return Tick(settled, due)
        log.info("reviewed %d frozen line(s) due, in run %s", run.applied, run.run_id)
        return Tick(settled, due, run.run_id, run.applied)

    def run_forever(self) -> None:
        """Tick now and every ``every`` seconds until ``stop()``; a failing tick is logged and retried next time."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive one bad pass (a database restart, say)
                log.exception("line scheduler tick failed; trying again in %.0f s", self.every)
            self._stop.wait(self.every)

    def start(self) -> LineScheduler:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run_forever, name="fengkong-line-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
