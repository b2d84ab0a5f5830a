"""manage.py export_customers: JSON lines with exactly DESIGN.md's keys."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from canonical.selectors import EXPORT_FIELDS

from .factories import apply, make_event

pytestmark = pytest.mark.django_db


def export(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("export_customers", *args, stdout=out, stderr=err)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_export_format_and_tombstones(tmp_path):
    kept = apply(make_event({"shop_id": 1, "email": "a@example.com", "addresses": [
        {"type": "billing", "line1": "Hauptstr. 1", "country": "Germany"}]})).customer_id
    gone = apply(make_event({"shop_id": 2, "email": "b@example.com"})).customer_id
    apply(make_event({"shop_id": 2}, type="customer.delete", minutes=1))

    rows, progress = export()
    assert [r["id"] for r in rows] == [kept]
    assert list(rows[0]) == list(EXPORT_FIELDS)
    assert set(EXPORT_FIELDS) == {"id", "version", "external_ids", "email", "phone", "first_name", "last_name",
                                  "locale", "addresses", "marketing_opt_in", "marketing_opt_in_at", "deleted",
                                  "updated_at"}
    assert rows[0]["external_ids"] == {"shop": "1"} and rows[0]["addresses"][0]["country"] == "DE"
    assert rows[0]["deleted"] is False and rows[0]["updated_at"].endswith("Z")
    assert "exported 1 customers" in progress

    target = tmp_path / "out.jsonl"
    rows, _ = export("--include-deleted", "--output", str(target), "--chunk-size", "1")
    assert rows == []
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(r["id"], r["deleted"]) for r in lines] == [(kept, False), (gone, True)]
    assert lines[1]["email"] is None and lines[1]["external_ids"] == {}


def test_export_bad_arguments():
    with pytest.raises(CommandError, match="chunk-size"):
        export("--chunk-size", "0")
    with pytest.raises(CommandError, match="cannot open --output"):
        export("--output", "/nonexistent-dir/x.jsonl")
