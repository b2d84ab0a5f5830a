"""Prometheus metrics.

Counters and histograms are written by the process that observes the event
(gateway, worker). With several processes, set `PROMETHEUS_MULTIPROC_DIR` (one
directory per process type, emptied at start: see deploy/gunicorn.conf.py and
custsync_project/worker.py); `/metrics` merges every directory listed in `METRICS_DIRS`.
Queue-depth gauges (inbox backlog and lag, outbox pending, DLQ size, drift) are
read from the database at scrape time, so they are right however many
processes run (see `custsync_project/metrics_db.py`).
"""

from prometheus_client import Counter, Histogram

webhook_events_received = Counter(
    "custsync_webhook_events_received_total",
    "Webhook requests answered by the gateway, by source and outcome (accepted, duplicate, or the error status).",
    ["source", "outcome"],
)
inbox_events_processed = Counter(
    "custsync_inbox_events_processed_total",
    "Inbox events handled by a worker, by source and outcome (processed, failed, crashed, lease_lost).",
    ["source", "outcome"],
)
inbox_processing_seconds = Histogram(
    "custsync_inbox_processing_seconds",
    "Time to apply one inbox event (claim to commit).",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
deliveries = Counter(
    "custsync_deliveries_total",
    "Delivery attempts to targets, by target and outcome (delivered, retry, dead, superseded).",
    ["target", "outcome"],
)
delivery_seconds = Histogram(
    "custsync_delivery_seconds",
    "Latency of one request to a target.",
    ["target"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
dead_letters = Counter(
    "custsync_dead_letters_total",
    "Messages moved to the dead-letter queue, by target (the DLQ rate).",
    ["target"],
)
target_probes = Counter(
    "custsync_target_probes_total",
    "Probe requests to a target marked down, by target and outcome (succeeded: up again; failed).",
    ["target", "outcome"],
)
rate_limit_waits = Counter(
    "custsync_rate_limit_waits_total",
    "Times a delivery had to wait for the target's rate limit.",
    ["target"],
)


def webhook_received(*, source: str, outcome: str) -> None:
    webhook_events_received.labels(source=source or "unknown", outcome=outcome).inc()


def inbox_processed(*, source: str, outcome: str, seconds: float) -> None:
    inbox_events_processed.labels(source=source, outcome=outcome).inc()
    inbox_processing_seconds.labels(source=source).observe(seconds)


def delivery_recorded(*, target: str, outcome: str, seconds: float | None) -> None:
    deliveries.labels(target=target, outcome=outcome).inc()
    if seconds is not None:
        delivery_seconds.labels(target=target).observe(seconds)
    if outcome == "dead":
        dead_letters.labels(target=target).inc()


def rate_limit_waited(*, target: str) -> None:
    rate_limit_waits.labels(target=target).inc()


def dead_lettered(*, target: str, count: int) -> None:
    """Messages given up without an attempt of their own (their retry window passed)."""
    if count:
        dead_letters.labels(target=target).inc(count)


def target_probed(*, target: str, outcome: str) -> None:
    target_probes.labels(target=target, outcome=outcome).inc()
