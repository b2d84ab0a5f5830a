"""Serve the sandbox cdp, crm, webhook receiver and OAuth2 token endpoint (demo and tests)."""

import os
import time

from django.core.management.base import BaseCommand, CommandError

from targets.sandbox import Sandbox, SandboxCredentials


class Command(BaseCommand):
    help = (
        "Run sandbox targets speaking the target contract on HOST:PORT (/cdp, /crm, /webhook, /oauth/token). "
        "Credentials come from the environment variables the sync config references (CDP_TOKEN, CRM_API_KEY, "
        "N8N_SECRET, SANDBOX_OAUTH_CLIENT_ID/SECRET). Faults can be changed at runtime via POST /_sandbox/faults."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--webhook-secret-env", default="N8N_SECRET",
                            help="Variable holding the whsec_ secret webhook events are verified with.")
        parser.add_argument("--fail-rate", type=float, default=0.0, help="Fraction of requests answered with a failure.")
        parser.add_argument("--fail-statuses", default="503", help="Comma-separated statuses for --fail-rate.")
        parser.add_argument("--force-status", type=int, default=None, help="Answer every request with this status.")
        parser.add_argument("--retry-after", default=None, help="Retry-After sent with injected failures.")
        parser.add_argument("--latency-ms", type=int, default=0)
        parser.add_argument("--hang-seconds", type=float, default=0.0, help="Delay before answering (timeouts).")
        parser.add_argument("--down-seconds", type=float, default=0.0, help="Drop connections for this long after start.")
        parser.add_argument("--systems", default="*", help="Comma-separated systems the faults apply to (cdp,crm,webhook,oauth).")
        parser.add_argument("--seed", type=int, default=None, help="Seed for --fail-rate.")

    def handle(self, *args, **options):
        try:
            statuses = [int(s) for s in options["fail_statuses"].split(",") if s.strip()]
        except ValueError as exc:
            raise CommandError("--fail-statuses must be comma-separated integers") from exc
        if not 0 <= options["fail_rate"] <= 1:
            raise CommandError("--fail-rate must be between 0 and 1")
        credentials = SandboxCredentials(
            cdp_token=os.environ.get("CDP_TOKEN") or None,
            crm_api_key=os.environ.get("CRM_API_KEY") or None,
            webhook_secret=os.environ.get(options["webhook_secret_env"]) or None,
            oauth_client_id=os.environ.get("SANDBOX_OAUTH_CLIENT_ID") or None,
            oauth_client_secret=os.environ.get("SANDBOX_OAUTH_CLIENT_SECRET") or None,
        )
        for label, value in (("CDP_TOKEN", credentials.cdp_token), ("CRM_API_KEY", credentials.crm_api_key),
                             (options["webhook_secret_env"], credentials.webhook_secret)):
            if not value:
                self.stderr.write(f"warning: {label} is not set; requests needing it will get 401")
        sandbox = Sandbox(credentials=credentials, host=options["host"], port=options["port"], seed=options["seed"])
        knobs = {}
        if options["fail_rate"]:
            knobs.update(fail_rate=options["fail_rate"], fail_statuses=statuses)
        if options["force_status"]:
            knobs["force_status"] = options["force_status"]
        if options["retry_after"] is not None:
            knobs["retry_after"] = options["retry_after"]
        if options["latency_ms"]:
            knobs["latency_ms"] = options["latency_ms"]
        if options["hang_seconds"]:
            knobs["hang_seconds"] = options["hang_seconds"]
        if options["down_seconds"]:
            knobs["down_until"] = time.time() + options["down_seconds"]
        for system in options["systems"].split(","):
            if knobs:
                sandbox.state.set_faults(system.strip() or "*", **knobs)
        sandbox.start()
        self.stdout.write(f"sandbox targets on {sandbox.url} (/cdp, /crm, /webhook, /oauth/token, /_sandbox)")
        self.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            sandbox.stop()
