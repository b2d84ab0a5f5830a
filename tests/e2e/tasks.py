"""Tasks the worker tests enqueue into real clusters."""

import time
from pathlib import Path


def marker_sleep(path: str, seconds: float) -> None:
    """Say "running" through a file, then hold the worker process (a long pump stands in)."""
    Path(path).write_text("running")
    time.sleep(seconds)
