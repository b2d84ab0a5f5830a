"""Selectors for the admin dashboard (the admin index): the pipeline at a glance.

A handful of aggregate queries, whatever the data size; no per-row queries.
Each section is computed only when the user may view the models it counts,
and every number comes with the admin list it was counted from, filtered.
Sections of apps that are not installed are left out.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.apps import apps
from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncHour
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

CHART_HOURS = 24


def _model(label: str):
    try:
        return apps.get_model(label)
    except LookupError:
        return None


def _url(name: str, **params) -> str:
    try:
        base = reverse(f"admin:{name}")
    except NoReverseMatch:
        return ""
    params = {k: v for k, v in params.items() if v is not None}
    return f"{base}?{urlencode(params)}" if params else base


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none waiting"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


@dataclass
class Chart:
    """Bars per hour (oldest first) for events received and failures (inbox failed + delivery retries/dead)."""

    hours: list[datetime]
    events: list[int]
    failures: list[int]
    width: int = 720
    height: int = 160
    bottom: int = 20
    left: int = 36

    @property
    def peak(self) -> int:
        return max([1, *self.events, *self.failures])

    def bars(self) -> list[dict]:
        slot = (self.width - self.left) / max(1, len(self.hours))
        usable = self.height - self.bottom - 8
        scale = usable / self.peak
        bars = []
        for index, hour in enumerate(self.hours):
            x = self.left + index * slot
            events_h, failures_h = self.events[index] * scale, self.failures[index] * scale
            bars.append({
                "hour": hour, "label": hour.strftime("%H:00"), "show_label": index % 3 == 0,
                "events": self.events[index], "failures": self.failures[index],
                "x_events": round(x + 1, 1), "x_failures": round(x + slot / 2, 1), "w": round(slot / 2 - 1.5, 1),
                "y_events": round(self.height - self.bottom - events_h, 1), "h_events": round(events_h, 1),
                "y_failures": round(self.height - self.bottom - failures_h, 1), "h_failures": round(failures_h, 1),
                "x_label": round(x + slot / 2, 1),
            })
        return bars

    def grid(self) -> list[dict]:
        usable = self.height - self.bottom - 8
        return [{"y": round(self.height - self.bottom - usable * f, 1), "value": round(self.peak * f)}
                for f in (0.5, 1.0)]


@dataclass
class Dashboard:
    now: datetime
    inbox: dict | None = None
    outbox: dict | None = None
    conflicts: dict | None = None
    reconciliation: list | None = None
    chart: Chart | None = None
    sections: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.sections


def _inbox(now: datetime) -> dict:
    InboxEvent, Source = _model("webhooks.InboxEvent"), _model("webhooks.Source")
    S = InboxEvent.Status
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    statuses = dict(InboxEvent.objects.filter(status__in=[S.RECEIVED, S.PROCESSING, S.FAILED])
                    .values_list("status").annotate(n=Count("id")).order_by())
    oldest = InboxEvent.objects.filter(status__in=[S.RECEIVED, S.PROCESSING]).aggregate(m=Min("received_at"))["m"]
    per_source = {
        row["source_id"]: row for row in
        InboxEvent.objects.filter(received_at__gte=day_ago).values("source_id")
        .annotate(day=Count("id"), hour=Count("id", filter=Q(received_at__gte=hour_ago)),
                  failed=Count("id", filter=Q(status=S.FAILED))).order_by()
    }
    sources = []
    for source_id, name in Source.objects.values_list("id", "name"):
        row = per_source.get(source_id, {})
        sources.append({
            "name": name, "hour": row.get("hour", 0), "day": row.get("day", 0), "failed": row.get("failed", 0),
            "hour_url": _url("webhooks_inboxevent_changelist", source__id__exact=source_id,
                             received_at__gte=_iso(hour_ago)),
            "day_url": _url("webhooks_inboxevent_changelist", source__id__exact=source_id,
                            received_at__gte=_iso(day_ago)),
            "failed_url": _url("webhooks_inboxevent_changelist", source__id__exact=source_id, status=S.FAILED.value,
                               received_at__gte=_iso(day_ago)),
        })
    lag = (now - oldest).total_seconds() if oldest else None
    return {
        "received": statuses.get(S.RECEIVED, 0), "processing": statuses.get(S.PROCESSING, 0),
        "failed": statuses.get(S.FAILED, 0),
        "backlog": statuses.get(S.RECEIVED, 0) + statuses.get(S.PROCESSING, 0),
        "lag_seconds": lag, "lag": _age(lag),
        "received_url": _url("webhooks_inboxevent_changelist", status=S.RECEIVED.value),
        "processing_url": _url("webhooks_inboxevent_changelist", status=S.PROCESSING.value),
        "failed_url": _url("webhooks_inboxevent_changelist", status=S.FAILED.value),
        "sources": sources,
    }


def _target_paused(row: dict) -> dict | None:
    """Paused by a person: {"since", "by", "reason"}, or None when running."""
    if not row.get("paused_at"):
        return None
    return {"since": row["paused_at"], "by": str(row.get("paused_by") or "someone"),
            "reason": row.get("pause_reason") or ""}


def _target_state(*, now: datetime, runtime: dict | None, paused: dict | None) -> dict:
    """What a person needs to know of a target's health at a glance: up, held, down since (last error), paused."""
    if paused:
        return {"state": "paused", "label": f"paused by {paused['by']}", "since": paused["since"],
                "error": paused["reason"], "warn": True}
    runtime = runtime or {}
    if runtime.get("health") == "down":
        return {"state": "down", "label": "down", "since": runtime.get("down_since"),
                "error": runtime.get("health_error") or "", "warn": True,
                "next_probe_at": runtime.get("next_probe_at")}
    held = runtime.get("retry_after_until")
    if held and held > now:
        return {"state": "held", "label": "held (Retry-After)", "until": held, "error": "", "warn": True}
    return {"state": "up", "label": "up", "error": "", "warn": False}


def _outbox(now: datetime) -> dict:
    OutboxMessage, Target = _model("targets.OutboxMessage"), _model("targets.Target")
    DeliveryAttempt, TargetRuntime = _model("targets.DeliveryAttempt"), _model("targets.TargetRuntime")
    S, Outcome = OutboxMessage.Status, DeliveryAttempt.Outcome
    hour_ago = now - timedelta(hours=1)
    counts: dict[int, dict[str, int]] = {}
    for target_id, status, n in (OutboxMessage.objects.filter(status__in=[S.PENDING, S.IN_FLIGHT, S.DEAD])
                                 .values_list("target_id", "status").annotate(n=Count("id")).order_by()):
        counts.setdefault(target_id, {})[status] = n
    newly_dead = dict(OutboxMessage.objects.filter(status=S.DEAD, updated_at__gte=hour_ago)
                      .values_list("target_id").annotate(n=Count("id")).order_by())
    attempts = dict(DeliveryAttempt.objects.filter(started_at__gte=hour_ago)
                    .values_list("outcome").annotate(n=Count("id")).order_by())
    oldest = dict(OutboxMessage.objects.filter(status__in=[S.PENDING, S.IN_FLIGHT]).values_list("target_id")
                  .annotate(m=Min("created_at")).order_by())
    runtimes = {row["target_id"]: row for row in TargetRuntime.objects.values(
        "target_id", "health", "down_since", "health_error", "next_probe_at", "retry_after_until")}
    targets = []
    for target in Target.objects.values("id", "name", "enabled", "paused_at", "paused_by", "pause_reason"):
        target_id, name, enabled = target["id"], target["name"], target["enabled"]
        row = counts.get(target_id, {})
        age = (now - oldest[target_id]).total_seconds() if target_id in oldest else None
        targets.append({
            "name": name, "enabled": enabled,
            "health": _target_state(now=now, runtime=runtimes.get(target_id), paused=_target_paused(target)),
            "oldest_pending": _age(age), "oldest_pending_seconds": age,
            "pending": row.get(S.PENDING, 0) + row.get(S.IN_FLIGHT, 0), "dead": row.get(S.DEAD, 0),
            "dead_last_hour": newly_dead.get(target_id, 0),
            "pending_url": _url("targets_outboxmessage_changelist", target__id__exact=target_id,
                                status__exact=S.PENDING.value),
            "dead_url": _url("targets_deadletter_changelist", target__id__exact=target_id),
        })
    finished = attempts.get(Outcome.DELIVERED, 0) + attempts.get(Outcome.DEAD, 0)
    return {
        "targets": targets,
        "attempts_hour": sum(attempts.values()),
        "retries_hour": attempts.get(Outcome.RETRY, 0),
        "delivered_hour": attempts.get(Outcome.DELIVERED, 0),
        "dead_hour": attempts.get(Outcome.DEAD, 0),
        "dlq_rate": f"{100 * attempts.get(Outcome.DEAD, 0) / finished:.1f} %" if finished else "-",
        "retries_url": _url("targets_deliveryattempt_changelist", outcome__exact=Outcome.RETRY.value,
                            started_at__gte=_iso(hour_ago)),
        "dead_hour_url": _url("targets_deliveryattempt_changelist", outcome__exact=Outcome.DEAD.value,
                              started_at__gte=_iso(hour_ago)),
        "attempts_url": _url("targets_deliveryattempt_changelist", started_at__gte=_iso(hour_ago)),
        "dead_total": sum(t["dead"] for t in targets),
        "pending_total": sum(t["pending"] for t in targets),
        "dead_all_url": _url("targets_deadletter_changelist"),
    }


def _conflicts() -> dict:
    Conflict = _model("canonical.Conflict")
    per_field = dict(Conflict.objects.filter(status=Conflict.Status.OPEN).values_list("field").annotate(n=Count("id")).order_by())
    return {
        "open": sum(per_field.values()),
        "url": _url("canonical_conflict_changelist"),
        "fields": [{"field": name, "n": n, "url": _url("canonical_conflict_changelist", field=name)}
                   for name, n in sorted(per_field.items())],
    }


def _reconciliation() -> list[dict]:
    Run = _model("reconciliation.ReconciliationRun")
    latest = (Run.objects.values("target_id").annotate(last=Max("id")).values_list("last", flat=True))
    rows = []
    for run in Run.objects.filter(pk__in=list(latest)).select_related("target").order_by("target__name"):
        counts = run.counts or {}
        succeeded = run.status == Run.Status.SUCCEEDED
        rows.append({
            "target": run.target.name, "status": run.status, "started_at": run.started_at,
            "in_sync": counts.get("in_sync", 0) if succeeded else None,
            "missing": counts.get("missing_in_target", 0) if succeeded else None,
            "orphans": counts.get("orphan_in_target", 0) if succeeded else None,
            "drift": counts.get("field_drift", 0) if succeeded else None,
            "fixed": run.fixed,
            "url": reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]),
            "discrepancies_url": _url("reconciliation_discrepancy_changelist", run__id__exact=run.pk),
        })
    return rows


def _chart(now: datetime, *, inbox: bool, outbox: bool) -> Chart:
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=CHART_HOURS)
    hours = [start + timedelta(hours=i) for i in range(CHART_HOURS)]
    events = {h: 0 for h in hours}
    failures = {h: 0 for h in hours}

    def add(into, rows):
        for hour, n in rows:
            if hour is not None:
                hour = hour.astimezone(start.tzinfo).replace(minute=0, second=0, microsecond=0)
                if hour in into:
                    into[hour] += n

    if inbox:
        InboxEvent = _model("webhooks.InboxEvent")
        rows = (InboxEvent.objects.filter(received_at__gte=start).annotate(h=TruncHour("received_at"))
                .values("h").annotate(n=Count("id"), failed=Count("id", filter=Q(status=InboxEvent.Status.FAILED)))
                .order_by())
        rows = list(rows)
        add(events, ((r["h"], r["n"]) for r in rows))
        add(failures, ((r["h"], r["failed"]) for r in rows))
    if outbox:
        DeliveryAttempt = _model("targets.DeliveryAttempt")
        Outcome = DeliveryAttempt.Outcome
        add(failures, DeliveryAttempt.objects.filter(started_at__gte=start, outcome__in=[Outcome.RETRY, Outcome.DEAD])
            .annotate(h=TruncHour("started_at")).values_list("h").annotate(n=Count("id")).order_by())
    return Chart(hours=hours, events=[events[h] for h in hours], failures=[failures[h] for h in hours])


def dashboard_build(*, user, now: datetime | None = None) -> Dashboard:
    """What `user` may see of the pipeline, now."""
    now = now or timezone.now()
    board = Dashboard(now=now)
    can_inbox = _model("webhooks.InboxEvent") is not None and user.has_perm("webhooks.view_inboxevent")
    can_outbox = _model("targets.OutboxMessage") is not None and user.has_perm("targets.view_outboxmessage")
    if can_inbox:
        board.inbox = _inbox(now)
        board.sections.append("inbox")
    if can_outbox:
        board.outbox = _outbox(now)
        board.sections.append("outbox")
    if _model("canonical.Conflict") is not None and user.has_perm("canonical.view_conflict"):
        board.conflicts = _conflicts()
        board.sections.append("conflicts")
    if _model("reconciliation.ReconciliationRun") is not None and user.has_perm(
            "reconciliation.view_reconciliationrun"):
        board.reconciliation = _reconciliation()
        board.sections.append("reconciliation")
    if can_inbox or can_outbox:
        board.chart = _chart(now, inbox=can_inbox, outbox=can_outbox)
        board.sections.append("chart")
    return board
