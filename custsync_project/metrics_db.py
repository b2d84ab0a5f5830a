"""Gauges read from the database at scrape time: correct however many processes run."""


from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from canonical.models import Conflict
from reconciliation.selectors import reconciliation_latest_counts
from targets.models import OutboxMessage, Target, TargetRuntime
from webhooks.models import InboxEvent


class DatabaseCollector:
    """Inbox backlog and lag, outbox pending and DLQ size per target, target health, open conflicts, drift."""

    def collect(self):
        for collect in (self._inbox, self._outbox, self._targets, self._conflicts, self._reconciliation):
            yield from collect()

    def _inbox(self):
        Status = InboxEvent.Status
        waiting = (Status.RECEIVED, Status.PROCESSING)
        unfinished = InboxEvent.objects.filter(status__in=waiting)
        backlog = GaugeMetricFamily("custsync_inbox_backlog", "Inbox events not yet processed, by status.", labels=["status"])
        counts = dict(unfinished.values_list("status").annotate(n=Count("id")).order_by())
        for status in waiting:
            backlog.add_metric([status.value], counts.get(status, 0))
        failed = GaugeMetricFamily("custsync_inbox_failed", "Inbox events parked as failed (need a replay).")
        failed.add_metric([], InboxEvent.objects.filter(status=Status.FAILED).count())
        oldest = unfinished.aggregate(oldest=Min("received_at"))["oldest"]
        lag = GaugeMetricFamily("custsync_inbox_lag_seconds", "Age of the oldest unprocessed inbox event (0 when empty).")
        lag.add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0.0)
        yield from (backlog, failed, lag)

    def _outbox(self):
        Status = OutboxMessage.Status
        names = dict(Target.objects.values_list("id", "name"))
        pending = GaugeMetricFamily("custsync_outbox_pending", "Outbox messages waiting or in flight, by target.", labels=["target"])
        dead = GaugeMetricFamily("custsync_dlq_size", "Messages in the dead-letter queue, by target.", labels=["target"])
        rows = OutboxMessage.objects.values_list("target_id", "status").annotate(n=Count("id")).order_by()
        per_target = {name: {"pending": 0, "dead": 0} for name in names.values()}
        for target_id, status, n in rows:
            bucket = per_target.setdefault(names.get(target_id, str(target_id)), {"pending": 0, "dead": 0})
            if status in (Status.PENDING, Status.IN_FLIGHT):
                bucket["pending"] += n
            elif status == Status.DEAD:
                bucket["dead"] += n
        for name, bucket in sorted(per_target.items()):
            pending.add_metric([name], bucket["pending"])
            dead.add_metric([name], bucket["dead"])
        yield from (pending, dead)

    def _targets(self):
        """Per target: up or down, the oldest pending change's age, and how long due work has sat unsent."""
        Status = OutboxMessage.Status
        now = timezone.now()
        names = dict(Target.objects.values_list("id", "name"))
        runtimes = {r["target_id"]: r for r in TargetRuntime.objects.values("target_id", "health", "last_attempt_at")}
        active = OutboxMessage.objects.filter(status__in=[Status.PENDING, Status.IN_FLIGHT])
        ages = {row["target_id"]: row for row in active.values("target_id").annotate(
            oldest=Min("created_at"), due=Min("next_attempt_at", filter=Q(next_attempt_at__lte=now))).order_by()}
        up = GaugeMetricFamily("custsync_target_up", "1 when the target is up, 0 while it is marked down (probed).",
                               labels=["target"])
        oldest = GaugeMetricFamily("custsync_outbox_oldest_pending_seconds",
                                   "Age of the oldest change waiting for the target (0 when none).", labels=["target"])
        stalled = GaugeMetricFamily(
            "custsync_outbox_stalled_seconds",
            "How long due messages have waited with no delivery attempt to the target (0 when nothing is due).",
            labels=["target"],
        )
        for target_id, name in sorted(names.items(), key=lambda item: item[1]):
            runtime = runtimes.get(target_id, {})
            row = ages.get(target_id, {})
            up.add_metric([name], 0 if runtime.get("health") == TargetRuntime.Health.DOWN else 1)
            oldest.add_metric([name], (now - row["oldest"]).total_seconds() if row.get("oldest") else 0.0)
            due, last = row.get("due"), runtime.get("last_attempt_at")
            since = max(due, last) if due and last else due
            stalled.add_metric([name], (now - since).total_seconds() if since else 0.0)
        yield from (up, oldest, stalled)

    def _conflicts(self):
        gauge = GaugeMetricFamily("custsync_conflicts_open", "Open conflicts waiting for a data steward.")
        gauge.add_metric([], Conflict.objects.filter(status=Conflict.Status.OPEN).count())
        yield gauge

    def _reconciliation(self):
        gauge = GaugeMetricFamily(
            "custsync_reconciliation_discrepancies",
            "Discrepancies found by the latest reconciliation run, by target and class.",
            labels=["target", "class"],
        )
        for target, counts in reconciliation_latest_counts().items():
            for klass, n in counts.items():
                gauge.add_metric([target, klass], n)
        yield gauge
