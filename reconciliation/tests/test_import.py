"""import_customers: CSV and JSONL exports with bad rows, imported twice (the second time changes nothing)."""

import io
import json
import os

import pytest
from django_q.models import OrmQ
from django.core.management import call_command
from django.core.management.base import CommandError

from canonical.models import Customer, MergeLog
from webhooks.models import InboxEvent, Source

pytestmark = pytest.mark.django_db

CSV = """shop_id,email,phone,first_name,last_name,locale,marketing_opt_in
1,Anna@Example.com ,0151 23456789,Anna,Alt,de_DE,true
2,bert@example.com,,Bert,Brandt,,no
3,carl@example.com,+4915123456780,Carl,Clausen,en,maybe
,,,Nobody,Without-Id,,
4,not-an-email,,Dora,Dietz,,
5,eva@example.com,too,many,fields,here,true,extra
,dora@example.com,+4915123456781,,,,
1,dora@example.com,,,,,
"""


@pytest.fixture
def shop(db):
    return Source.objects.create(name="shop", secret_refs=["${WEBHOOK_SECRET}"], schema_versions=[1, 2])


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_customers", *args, "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


def state():
    return sorted(Customer.objects.values_list("id", "version", "email", "deleted_at", "merged_into_id"))


def test_csv_with_bad_rows_then_the_same_file_again(shop, tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text(CSV, encoding="utf-8")

    summary, err = run("--source", "shop", str(path))

    assert (summary["rows"], summary["accepted"], summary["processed"], summary["duplicates"]) == (8, 4, 4, 0)
    assert summary["rejected"] == 4 and summary["failed"] == 0 and summary["merged"] == 1
    reasons = {r["line"]: r["reason"] for r in summary["rejections"]}
    assert "marketing_opt_in must be true/false" in reasons[4]
    assert "no identifier" in reasons[5]
    assert reasons[6].startswith("email:") and "not a valid email" in reasons[6]
    assert reasons[7] == "bad CSV row: 8 fields, the header has 7"
    assert "line 7: rejected: bad CSV row" in err and "not-an-email" not in err  # reasons, never values
    anna = Customer.objects.get(external_ids__system="shop", external_ids__value="1")
    assert anna.locale == "de-DE"
    bert = Customer.objects.get(external_ids__system="shop", external_ids__value="2")
    # same rules as webhooks: consent only from cmp (default field rule), so the shop's "no" is kept as rejected
    assert (bert.email, bert.first_name, bert.phone, bert.marketing_opt_in) == ("bert@example.com", "Bert", "", None)
    # line 9 names Anna's shop id and Dora's email (line 8): Dora's record is merged into Anna's
    dora = MergeLog.objects.get().merged
    assert dora.merged_into_id == anna.pk
    assert InboxEvent.objects.filter(event_id__startswith="import:", status="processed").count() == 4
    before, events, merges = state(), InboxEvent.objects.count(), MergeLog.objects.count()

    again, _ = run("--source", "shop", str(path))

    assert (again["accepted"], again["duplicates"], again["rejected"], again["merged"]) == (0, 4, 4, 0)
    assert state() == before and InboxEvent.objects.count() == events and MergeLog.objects.count() == merges


def test_jsonl_data_lines_and_envelopes_with_bad_lines_twice(shop, tmp_path):
    lines = [
        json.dumps({"shop_id": 10, "email": "x@example.com", "first_name": "Xaver"}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"type": "customer.upsert", "schema_version": 2, "occurred_at": "2026-01-14T10:12:00Z",
                    "event_id": "shop-export-7", "data": {"ids": {"shop": "11"}, "contact": {"email": "y@example.com"},
                                                           "name": {"given": "Yara"}}}),
        json.dumps({"source": "crm", "type": "customer.upsert", "schema_version": 1,
                    "occurred_at": "2026-01-14T10:12:00Z", "data": {"crm_id": "C-1"}}),
        json.dumps({"type": "customer.upsert", "schema_version": 1, "occurred_at": "yesterday", "data": {}}),
        "",
        json.dumps({"first_name": "No identifier"}),
        json.dumps({"type": "customer.delete", "schema_version": 1, "occurred_at": "2026-01-15T10:00:00Z",
                    "data": {"shop_id": 10}}),
    ]
    path = tmp_path / "shop.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    summary, _ = run("--source", "shop", str(path), "--occurred-at", "2026-01-14T09:00:00Z")

    assert (summary["accepted"], summary["processed"], summary["rejected"]) == (3, 3, 5)
    reasons = {r["line"]: r["reason"] for r in summary["rejections"]}
    assert reasons[2].startswith("invalid JSON") and reasons[3].startswith("invalid JSON")
    assert "is not the imported source" in reasons[5] and "occurred_at" in reasons[6] and "no identifier" in reasons[8]
    assert InboxEvent.objects.filter(event_id="shop-export-7").exists()  # the envelope's own id is the dedup key
    xaver = Customer.objects.get(pk=InboxEvent.objects.get(payload__data__shop_id=10, type="customer.upsert").customer_id)
    assert xaver.is_deleted  # the delete line erased the customer of line 1
    assert Customer.objects.get(email="y@example.com").first_name == "Yara"
    before = state()

    again, _ = run("--source", "shop", str(path), "--occurred-at", "2026-01-14T09:00:00Z")
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 3, 5)
    assert state() == before


def test_occurred_at_defaults_to_the_file_mtime_and_async_only_stores(shop, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("shop_id,email\n42,q@example.com\n", encoding="utf-8")
    os.utime(path, (1_768_384_800, 1_768_384_800))  # 2026-01-14T10:00:00Z

    summary, _ = run("--source", "shop", str(path), "--async")

    event = InboxEvent.objects.get()
    assert event.occurred_at.isoformat() == "2026-01-14T10:00:00+00:00" and event.status == "received"
    assert summary["queued"] == 1 and summary["merged"] is None and not Customer.objects.exists()
    # the workers were woken once for the whole file
    assert [q.func() for q in OrmQ.objects.all()] == ["webhooks.processing.inbox_pump"]


def test_bad_arguments_are_command_errors(shop, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("shop_id,favourite_colour\n1,red\n", encoding="utf-8")
    with pytest.raises(CommandError, match="unknown or repeated columns favourite_colour"):
        run("--source", "shop", str(path))
    with pytest.raises(CommandError, match="no source named"):
        run("--source", "nope", str(path))
    with pytest.raises(CommandError, match="schema_version 3 is not accepted"):
        run("--source", "shop", str(path), "--schema-version", "3")
    with pytest.raises(CommandError, match="cannot tell the format"):
        other = tmp_path / "x.txt"
        other.write_text("", encoding="utf-8")
        run("--source", "shop", str(other))
