"""Customer data platform: POST upsert, DELETE by golden id, cursor listing."""

from .base import PreparedCall, TargetAdapter, register


@register
class CdpAdapter(TargetAdapter):
    kind = "cdp"

    def prepare(self, *, snapshot, operation):
        if operation == "delete":
            return PreparedCall("DELETE", f"{self.base}/customers/{snapshot['id']}", None, None)
        body = self.build_body(snapshot)
        return PreparedCall("POST", f"{self.base}/customers/upsert", body, body)

    def iter_records(self, *, page_size=100):
        cursor = ""
        for _ in range(1_000_000):  # bounded: a broken cursor cannot loop forever
            page = self.get_json(f"{self.base}/customers", {"cursor": cursor, "limit": page_size})
            yield from page.get("items") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return
