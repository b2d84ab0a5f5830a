"""manage.py send_sample_webhook: sign DESIGN.md's sample event like a real sender and POST it."""

import json
import time
import uuid
from pathlib import Path

import requests
from django.core.management.base import BaseCommand, CommandError

from core.secrets import SecretReferenceError, resolve
from webhooks.models import Source
from webhooks.openapi import SAMPLE_EVENT
from webhooks.signatures import SecretFormatError, hmac_sha256_sign, standard_webhooks_sign


class Command(BaseCommand):
    help = (
        "Sign the sample customer event with the source's scheme and current secret (the last of its "
        "references that is set in the environment) and POST it to the gateway; prints the answer."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/webhooks/customer")
        parser.add_argument("--source", default="shop", help="Source name (default shop); picks scheme and secret.")
        parser.add_argument("--event-id", help="event_id to send (default: a fresh evt_sample_<hex>).")
        parser.add_argument("--no-event-id", action="store_true", help="Omit event_id: the gateway computes the key.")
        parser.add_argument("--file", help="Send this file's bytes as the body instead of the sample (signed as is).")
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args, url, source, event_id, no_event_id, file, timeout, **options):
        src = Source.objects.filter(name=source).first()
        if src is None:
            raise CommandError(f"unknown source {source!r}: run `manage.py import_sync_config PATH` first")
        if not src.enabled:
            self.stderr.write(self.style.WARNING(f"source {source!r} is disabled: expect 401"))
        secret = self._current_secret(src)

        if file:
            try:
                body = Path(file).read_bytes()
            except OSError as exc:
                raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        else:
            event = json.loads(json.dumps(SAMPLE_EVENT))
            event["source"] = source
            data = event["data"]
            data[f"{source}_id"] = data.pop("shop_id")
            if no_event_id:
                del event["event_id"]
            else:
                event["event_id"] = event_id or f"evt_sample_{uuid.uuid4().hex[:12]}"
            body = json.dumps(event).encode("utf-8")

        now = int(time.time())
        try:
            if src.signature_scheme == Source.SignatureScheme.STANDARD_WEBHOOKS:
                headers = standard_webhooks_sign(secret=secret, msg_id=f"msg_{uuid.uuid4().hex}", timestamp=now, body=body)
            else:
                headers = hmac_sha256_sign(secret=secret, timestamp=now, body=body)
        except SecretFormatError as exc:
            raise CommandError(f"the secret of source {source!r} cannot be used for {src.signature_scheme}: {exc}") from None
        headers["Content-Type"] = "application/json"

        if options["verbosity"] >= 2:
            self.stdout.write(f"POST {url} ({len(body)} bytes, {src.signature_scheme})")
        try:
            response = requests.post(url, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            raise CommandError(f"could not reach {url}: {exc.__class__.__name__} (is the server running?)") from None
        self.stdout.write(f"{response.status_code} {response.text}")
        if not 200 <= response.status_code < 300:
            raise CommandError(f"the gateway answered {response.status_code}")

    def _current_secret(self, src: Source) -> str:
        # The newest reference is listed last during a rotation.
        errors = []
        for ref in reversed(src.secret_refs):
            try:
                return resolve(ref)
            except SecretReferenceError as exc:
                errors.append(str(exc))
        raise CommandError(f"no secret of source {src.name!r} is available: {'; '.join(errors) or 'none listed'}")
