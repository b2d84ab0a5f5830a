"""Waking the inbox pump: at most one wake-up per interval per process, none lost.

An accepted event needs a pump that starts after its COMMIT. Enqueueing one
task per event costs every request a broker write (with the ORM broker, an
INSERT of a pickled, signed message). A process instead sends a wake-up at
once when none went out in the last `interval` seconds (leading edge), and
otherwise schedules exactly one for the end of the interval (trailing edge):
every commit is followed by a wake-up sent no earlier than the commit, and the
pump it starts claims whatever is in the inbox by then. A wake-up lost anyway
(broker down, process killed) is made up by the inbox sweeper.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)


class Debounced:
    """Call `func` at most once per `interval` seconds; a call skipped inside the interval runs at its end."""

    def __init__(self, func: Callable[[], None], interval: float):
        self._func = func
        self._interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._timer: threading.Timer | None = None

    def __call__(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # a trailing call is scheduled; it runs after this commit
            wait = self._last + self._interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._trailing)
                self._timer.daemon = True
                self._timer.start()
                return
            self._last = time.monotonic()
        self._func()

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        try:
            self._func()
        except Exception:  # noqa: BLE001 - the sweeper makes up for a lost wake-up
            logger.exception("inbox pump wake-up failed; the sweeper will pick the events up")
        finally:
            connections.close_all()  # this thread's own database connections (ORM broker)
