"""CRM: PUT contacts, DELETE by golden id, page-numbered listing."""

from .base import PreparedCall, TargetAdapter, register


@register
class CrmAdapter(TargetAdapter):
    kind = "crm"

    def prepare(self, *, snapshot, operation):
        if operation == "delete":
            return PreparedCall("DELETE", f"{self.base}/v1/contacts/{snapshot['id']}", None, None)
        body = self.build_body(snapshot)
        return PreparedCall("PUT", f"{self.base}/v1/contacts", body, body)

    def iter_records(self, *, page_size=100):
        page_number = 1
        for _ in range(1_000_000):  # bounded: a broken next_page cannot loop forever
            page = self.get_json(f"{self.base}/v1/contacts", {"page": page_number, "per_page": page_size})
            yield from page.get("results") or []
            next_page = page.get("next_page")
            if not next_page:
                return
            page_number = int(next_page)
