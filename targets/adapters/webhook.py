"""Webhook subscribers: golden-record change events, Standard Webhooks signed.

`customer.changed` carries the mapped record; `customer.deleted` the id and
version only. `timestamp` is the golden record's update time, so the body for
one version is the same on every retry; `webhook-id` is the idempotency key.
"""

from .base import PreparedCall, TargetAdapter, register


@register
class WebhookAdapter(TargetAdapter):
    kind = "webhook"
    supports_listing = False

    def prepare(self, *, snapshot, operation):
        if operation == "delete":
            data = {"id": snapshot["id"], "version": snapshot["version"], "deleted": True}
            event = {"type": "customer.deleted", "timestamp": snapshot.get("updated_at"), "data": data}
            return PreparedCall("POST", self.target.base_url, event, None)
        data = self.build_body(snapshot)
        event = {"type": "customer.changed", "timestamp": snapshot.get("updated_at"), "data": data}
        return PreparedCall("POST", self.target.base_url, event, data)

    def iter_records(self, *, page_size=100):
        raise NotImplementedError("webhook targets have no listing")
