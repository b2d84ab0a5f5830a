"""Waking the inbox pump: at most one wake-up per interval, and none lost."""

import threading
import time

from webhooks.kick import Debounced


class Recorder:
    def __init__(self):
        self.calls = []
        self.event = threading.Event()

    def __call__(self):
        self.calls.append(time.monotonic())
        self.event.set()


def test_first_call_runs_at_once_and_a_burst_inside_the_interval_becomes_one_trailing_call():
    recorder = Recorder()
    kick = Debounced(recorder, interval=0.2)
    started = time.monotonic()
    kick()
    assert len(recorder.calls) == 1  # leading edge: in the caller's thread, at once
    recorder.event.clear()
    for _ in range(50):
        kick()
    assert len(recorder.calls) == 1
    assert recorder.event.wait(timeout=5), "the trailing wake-up never came"
    assert len(recorder.calls) == 2
    assert recorder.calls[1] - started >= 0.2  # not before the interval ended


def test_a_call_after_the_trailing_one_is_not_lost():
    recorder = Recorder()
    kick = Debounced(recorder, interval=0.05)
    kick()
    recorder.event.clear()
    kick()  # scheduled for the interval's end
    assert recorder.event.wait(timeout=5)
    recorder.event.clear()
    kick()  # within the interval after the trailing call: scheduled again
    assert recorder.event.wait(timeout=5)
    assert len(recorder.calls) == 3


def test_calls_spaced_wider_than_the_interval_each_run_at_once():
    recorder = Recorder()
    kick = Debounced(recorder, interval=0.0001)
    for _ in range(3):
        time.sleep(0.001)
        kick()
    assert len(recorder.calls) == 3
