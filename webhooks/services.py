"""Writes of the webhooks app: receive a delivery into the inbox, wake the inbox pump, replay failed events.

The order of checks in `inbox_event_receive` is part of the contract (see
README, "Webhook gateway"): everything a sender without a secret can learn
depends on its own request only; whether a source exists, is enabled or uses
another scheme is never revealed (one 401 message for all of them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction

from core.logging import correlation
from core.secrets import SecretReferenceError, reference_variable, resolve

from .envelope import dedup_key_compute, envelope_validate, json_object_parse, source_name_get
from .errors import WebhookError
from .models import InboxEvent, Source
from .processing import inbox_pump_kick_on_commit
from .selectors import source_enabled_get
from .signatures import SecretFormatError, SignatureError, scheme_key, signed_request_parse

logger = logging.getLogger(__name__)

DEDUP_CONSTRAINT = "webhooks_inboxevent_unique_source_event_id"
ACCEPTED = "accepted"
DUPLICATE_IGNORED = "duplicate_ignored"
_NOT_VERIFIED = "signature verification failed: no valid signature for this source"


@dataclass(frozen=True)
class ReceiveResult:
    status: str  # ACCEPTED or DUPLICATE_IGNORED
    event_id: str
    source: str
    inbox_event_pk: int | None  # None for a duplicate (the stored row is not read)


def inbox_event_receive(*, body: bytes, headers: Mapping[str, str], now: float | None = None) -> ReceiveResult:
    """Authenticate, validate and store one delivery; raises `WebhookError` with the status to answer.

    `body` is the raw request body (size and content type already checked by
    the view); `headers` is case-insensitive (`request.headers`). Order:
    signature headers (401) -> JSON object and `source` (400) -> source and
    signature (401, or 503 when none of the source's secrets is configured)
    -> envelope fields (400) -> type / schema_version for the source (422) ->
    INSERT (202 accepted, or 202 duplicate_ignored on the dedup constraint).
    Processing is enqueued after commit.
    """
    now_s = int(time.time() if now is None else now)
    signed = signed_request_parse(headers, now=now_s, tolerance=settings.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS)
    obj = json_object_parse(body)
    source = _source_authenticate(source_name=source_name_get(obj), signed=signed, body=body)

    try:
        return _inbox_event_store(source=source, obj=obj)
    except WebhookError as exc:
        exc.source = source.name
        raise


def _inbox_event_store(*, source: Source, obj: dict) -> ReceiveResult:
    envelope = envelope_validate(obj)
    if envelope.type not in source.event_types:
        raise WebhookError(422, f"type {envelope.type!r} is not accepted from source {source.name!r} "
                                f"(accepted: {', '.join(source.event_types)})")
    if envelope.schema_version not in source.schema_versions:
        raise WebhookError(422, f"schema_version {envelope.schema_version} is not accepted from source "
                                f"{source.name!r} (accepted: {', '.join(map(str, source.schema_versions))})")

    provided = envelope.event_id is not None
    event = InboxEvent(
        source=source,
        event_id=envelope.event_id if provided else dedup_key_compute(envelope),
        event_id_provided=provided,
        type=envelope.type,
        schema_version=envelope.schema_version,
        occurred_at=envelope.occurred_at,
        payload=obj,
    )
    return _inbox_event_insert(event=event)


def _source_authenticate(*, source_name: str, signed: dict, body: bytes) -> Source:
    source = source_enabled_get(name=source_name)
    if source is None:
        logger.info("webhook refused: unknown or disabled source %r", source_name)
        raise SignatureError(_NOT_VERIFIED)
    signature = signed.get(source.signature_scheme)
    if signature is None:
        logger.info("webhook refused: source %r signs with %s, the request carries %s",
                    source.name, source.signature_scheme, ", ".join(signed))
        raise SignatureError(_NOT_VERIFIED)
    keys = _source_keys(source)
    if not keys:
        # Our misconfiguration, not the sender's fault: 503 so that it retries later.
        raise WebhookError(503, "the source's secret is not configured on the receiver; retry later")
    if not signature.verify(body, keys):
        logger.info("webhook refused: no secret of source %r matches the signature", source.name)
        raise SignatureError(_NOT_VERIFIED)
    return source


def _source_keys(source: Source) -> list[bytes]:
    keys = []
    for ref in source.secret_refs or []:
        try:
            keys.append(scheme_key(source.signature_scheme, resolve(ref)))
        except SecretReferenceError as exc:
            logger.error("source %r: %s", source.name, exc)
        except SecretFormatError as exc:
            logger.error("source %r: the secret in ${%s} is unusable for %s: %s",
                         source.name, reference_variable(ref), source.signature_scheme, exc)
    return keys


def _is_dedup_violation(exc: IntegrityError) -> bool:
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None:  # psycopg2: the violated constraint by name
        return getattr(diag, "constraint_name", None) == DEDUP_CONSTRAINT
    # SQLite names the columns instead of the constraint.
    return "UNIQUE constraint failed: webhooks_inboxevent.source_id, webhooks_inboxevent.event_id" in str(exc)


def _inbox_event_insert(*, event: InboxEvent) -> ReceiveResult:
    with correlation(event.event_id):  # every log line about this event carries its id
        return _inbox_event_insert_logged(event=event)


def _inbox_event_insert_logged(*, event: InboxEvent) -> ReceiveResult:
    try:
        # One INSERT in its own transaction; the 202 is sent only after COMMIT,
        # and processing is enqueued only then (never for a rolled-back row).
        # In autocommit mode (a request) the single INSERT is that transaction:
        # no BEGIN/COMMIT round trips, and on_commit runs right after it.
        # Inside a caller's atomic block (tests, scripts) a savepoint keeps a
        # duplicate from breaking the caller's transaction.
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():
                event.save(force_insert=True)
                inbox_pump_kick_on_commit()
        else:
            event.save(force_insert=True)
            inbox_pump_kick_on_commit()
    except IntegrityError as exc:
        # Only the dedup constraint means "already stored"; anything else must
        # not tell the sender its event arrived.
        if _is_dedup_violation(exc):
            logger.debug("webhook duplicate: source %s event %s", event.source.name, event.event_id)
            return ReceiveResult(status=DUPLICATE_IGNORED, event_id=event.event_id, source=event.source.name, inbox_event_pk=None)
        logger.exception("webhook not stored: integrity error")
        raise WebhookError(503, "the event could not be stored; retry later") from exc
    except DatabaseError as exc:
        logger.exception("webhook not stored: database error")
        raise WebhookError(503, "the event could not be stored; retry later") from exc
    logger.debug("webhook accepted: source %s event %s", event.source.name, event.event_id)
    return ReceiveResult(status=ACCEPTED, event_id=event.event_id, source=event.source.name, inbox_event_pk=event.pk)


def inbox_event_replay(*, event_ids: Iterable[int]) -> list[int]:
    """Set failed events back to `received`, clear their lease, wake the pump after commit.

    Only events that are `failed` at the moment of the update change; returns
    their primary keys. Attempts and the last error are kept as history.
    """
    with transaction.atomic():
        pks = list(
            InboxEvent.objects.select_for_update()
            .filter(pk__in=list(event_ids), status=InboxEvent.Status.FAILED)
            .values_list("pk", flat=True)
        )
        InboxEvent.objects.filter(pk__in=pks).update(
            status=InboxEvent.Status.RECEIVED, lease_owner="", lease_expires_at=None,
        )
        if pks:
            inbox_pump_kick_on_commit()
    logger.info("replayed %d failed inbox events", len(pks))
    return pks
