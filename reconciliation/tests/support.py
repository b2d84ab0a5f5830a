"""Helpers for reconciliation tests: real sandbox targets, real deliveries, the command's JSON."""

import io
import json
import random
import time

from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from canonical.changes import CustomerChange
from canonical.models import Customer
from targets.services import outbox_deliver_due, outbox_enqueue, worker_id

SEED = 20260115


def deliver(target, *, seconds: float = 10.0) -> dict:
    """Run the real delivery service in-process until the target has nothing due."""
    return dict(outbox_deliver_due(target_id=target.pk, owner=worker_id(), deadline=time.monotonic() + seconds,
                                   wait_for_due=False, rng=random.Random(SEED)))


def enqueue(customer, *, operation: str = "upsert", correlation_id: str = "evt_test") -> None:
    with transaction.atomic():
        outbox_enqueue(changes=[CustomerChange(customer.pk, customer.version, operation, correlation_id)])


def change(customer, **fields) -> Customer:
    """A golden-record change as canonical makes it: new values, version + 1."""
    for key, value in fields.items():
        setattr(customer, key, value)
    customer.version += 1
    customer.save()
    return customer


def erase(customer) -> Customer:
    customer.external_ids.all().delete()
    return change(customer, email="", phone="", first_name="", last_name="", deleted_at=timezone.now())


def reconcile(*args: str) -> tuple[dict, str, str]:
    """Run `manage.py reconcile --json ...`; returns (the last stdout line parsed, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("reconcile", "--json", *args, stdout=out, stderr=err)
    except SystemExit:  # pragma: no cover - call_command raises CommandError instead
        raise
    lines = out.getvalue().strip().splitlines()
    return json.loads(lines[-1]), out.getvalue(), err.getvalue()


def run_of(report: dict, target: str) -> dict:
    return next(r for r in report["runs"] if r["target"] == target)
