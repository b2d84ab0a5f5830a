"""A process-wide "this process is stopping" flag.

The worker's signal handling (`custsync_project/worker.py`) sets it when a
worker process is asked to stop; long tasks read it between units of work
(the inbox pump after a batch) and hand over to a successor instead of
starting more. It knows no app, so any floor may read it.
"""

_requested = False


def shutdown_request() -> None:
    """Mark this process as stopping (idempotent; safe inside a signal handler: one assignment)."""
    global _requested
    _requested = True


def shutdown_requested() -> bool:
    return _requested
