"""event_apply and conflict_resolve as the pipeline and the admin use them."""

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction

from canonical.models import Conflict, Customer, ErasedIdentifier, ExternalId, FieldOverride, MergeLog, SourcePriorityRule, SourceValue
from canonical.selectors import customer_snapshot
from canonical.services import CanonicalError, conflict_resolve, event_apply

from .factories import apply, at, make_event

pytestmark = pytest.mark.django_db

SEED = {"shop_id": 9981, "email": "Person@Example.com ", "phone": "0049 151 234567",
        "first_name": "Max", "last_name": "Mustermann", "marketing_opt_in": True}
VALID_PHONE = "+4915123456789"  # phonenumbers.example_number_for_type("DE", MOBILE)


def snapshot(customer_id):
    return customer_snapshot(customer=Customer.objects.get(pk=customer_id))


def test_seed_event_creates_golden_record_with_problems():
    result = apply(make_event(SEED, event_id="evt_123"))

    golden = snapshot(result.customer_id)
    assert golden["external_ids"] == {"shop": "9981"}
    assert golden["email"] == "person@example.com"
    assert golden["phone"] == "+49151234567"
    assert (golden["first_name"], golden["last_name"]) == ("Max", "Mustermann")
    assert golden["marketing_opt_in"] is None  # consent only from cmp by default
    assert golden["version"] == 1
    assert [(c.customer_id, c.version, c.operation, c.correlation_id) for c in result.changes] == [
        (result.customer_id, 1, "upsert", "evt_123")]
    by_field = {(p["field"], p["severity"]) for p in result.problems}
    assert ("phone", "warning") in by_field
    assert ("marketing_opt_in", "warning") in by_field
    rejected = SourceValue.objects.get(customer_id=result.customer_id, field="marketing_opt_in")
    assert rejected.rejected and not rejected.is_winner


def test_same_event_twice_changes_nothing():
    event = make_event(SEED)
    first = apply(event)
    second = apply(event)
    assert second.customer_id == first.customer_id
    assert second.changes == []
    assert Customer.objects.get().version == 1


def test_must_run_inside_atomic(transactional_db):
    with pytest.raises(RuntimeError, match="atomic"):
        event_apply(event=make_event(SEED))


@pytest.mark.parametrize("kwargs, message", [
    ({"version": 9}, "unknown schema_version 9"),
    ({"type": "customer.merge"}, "unknown event type"),
])
def test_event_as_a_whole_rejected(kwargs, message):
    with pytest.raises(CanonicalError, match=message):
        apply(make_event(SEED, **kwargs))
    assert not Customer.objects.exists()


def test_data_not_an_object_and_no_identifier():
    with pytest.raises(CanonicalError, match="data must be an object"):
        apply(make_event(["x"]))
    with pytest.raises(CanonicalError, match="no usable identifier"):
        apply(make_event({"first_name": "Max", "email": "not-an-email"}))


def test_bad_field_does_not_stop_the_others():
    result = apply(make_event({"shop_id": 1, "email": "a@example.com", "phone": "12", "locale": "xx_YY"}))
    golden = snapshot(result.customer_id)
    assert golden["email"] == "a@example.com" and golden["phone"] is None and golden["locale"] is None
    errors = {p["field"] for p in result.problems if p["severity"] == "error"}
    assert errors == {"phone", "locale"}


def test_patch_semantics_absent_untouched_null_clears():
    first = apply(make_event({"shop_id": 1, "first_name": "Max", "last_name": "M", "phone": VALID_PHONE}, minutes=0))
    apply(make_event({"shop_id": 1, "last_name": None}, minutes=1))
    golden = snapshot(first.customer_id)
    assert golden["first_name"] == "Max" and golden["last_name"] is None and golden["phone"] == VALID_PHONE
    assert golden["version"] == 2


def test_older_event_from_same_source_does_not_overwrite():
    apply(make_event({"shop_id": 1, "first_name": "New"}, minutes=10))
    late = apply(make_event({"shop_id": 1, "first_name": "Old"}, minutes=5))
    assert late.changes == []
    assert Customer.objects.get().first_name == "New"


def test_better_source_wins_and_worse_source_opens_conflict():
    apply(make_event({"crm_id": "C-1", "shop_id": 1, "email": "crm@example.com"}, source="crm", minutes=0))
    result = apply(make_event({"shop_id": 1, "email": "shop@example.com"}, source="shop", minutes=5))

    customer = Customer.objects.get()
    assert customer.email == "crm@example.com"
    assert result.changes == []  # nothing the targets see changed
    conflict = Conflict.objects.get(status="open")
    assert (conflict.field, conflict.current_value, conflict.current_source) == ("email", "crm@example.com", "crm")
    assert (conflict.incoming_value, conflict.incoming_source) == ("shop@example.com", "shop")


def test_worse_source_fills_field_until_better_source_sends():
    apply(make_event({"shop_id": 1, "first_name": "Shop"}, source="shop", minutes=10))
    apply(make_event({"shop_id": 1, "crm_id": "C-1", "first_name": "Crm"}, source="crm", minutes=0))
    assert Customer.objects.get().first_name == "Crm"  # rank beats recency under source_priority
    winner = SourceValue.objects.get(field="first_name", is_winner=True)
    assert (winner.source, winner.occurred_at) == ("crm", at(0))


def test_merge_two_customers_into_the_oldest():
    a = apply(make_event({"shop_id": 1, "email": "a@example.com"}, source="shop", minutes=0)).customer_id
    b = apply(make_event({"crm_id": "C-1", "phone": VALID_PHONE}, source="crm", minutes=1)).customer_id
    assert a != b

    result = apply(make_event({"support_id": 7, "email": "a@example.com", "phone": VALID_PHONE},
                              source="support", minutes=2, event_id="evt_link"))

    assert result.customer_id == a
    ops = {(c.customer_id, c.operation) for c in result.changes}
    assert ops == {(a, "upsert"), (b, "delete")}
    assert all(c.correlation_id == "evt_link" for c in result.changes)
    golden = snapshot(a)
    assert golden["external_ids"] == {"shop": "1", "crm": "C-1", "support": "7"}
    assert golden["phone"] == VALID_PHONE and golden["email"] == "a@example.com"
    merged = Customer.objects.get(pk=b)
    assert merged.merged_into_id == a and merged.phone == "" and snapshot(b)["deleted"] is True
    assert MergeLog.objects.get().merged_id == b


def test_merge_protection_records_identity_conflict():
    a = apply(make_event({"shop_id": 1, "email": "same@example.com"}, minutes=0)).customer_id
    result = apply(make_event({"shop_id": 2, "email": "same@example.com"}, minutes=1))

    assert result.customer_id != a
    assert Customer.objects.filter(merged_into__isnull=True).count() == 2
    conflict = Conflict.objects.get(field="identity")
    assert {conflict.customer_id, conflict.other_customer_id} == {a, result.customer_id}
    assert any(p["field"] == "identity" for p in result.problems)
    # the same situation again does not pile up conflicts
    apply(make_event({"shop_id": 2, "email": "same@example.com", "first_name": "X"}, minutes=2))
    assert Conflict.objects.filter(field="identity").count() == 1


def test_delete_erases_and_late_upsert_does_not_resurrect():
    created = apply(make_event(SEED, minutes=0))
    erased = apply(make_event({"shop_id": 9981}, type="customer.delete", minutes=10, event_id="evt_del"))

    customer = Customer.objects.get(pk=created.customer_id)
    assert [(c.customer_id, c.operation, c.version) for c in erased.changes] == [(customer.pk, "delete", 2)]
    assert customer.deleted_at is not None and customer.email == "" and customer.first_name == ""
    assert not ExternalId.objects.exists() and not SourceValue.objects.exists()
    assert snapshot(customer.pk)["deleted"] is True

    late = apply(make_event({"shop_id": 9981, "first_name": "Ghost"}, minutes=5))
    assert late.changes == [] and late.customer_id is None
    by_email = apply(make_event({"email": "person@example.com"}, source="crm", minutes=9))
    assert by_email.changes == []
    assert Customer.objects.count() == 1

    later = apply(make_event({"shop_id": 9981, "first_name": "Again"}, minutes=20))
    assert later.customer_id != customer.pk and later.changes[0].operation == "upsert"
    assert Customer.objects.get(pk=later.customer_id).first_name == "Again"


def test_delete_before_upsert_arrives_first():
    apply(make_event({"shop_id": 5}, type="customer.delete", minutes=10))
    assert ErasedIdentifier.objects.count() == 1
    result = apply(make_event({"shop_id": 5, "first_name": "Late"}, minutes=0))
    assert result.changes == [] and not Customer.objects.exists()


def test_delete_twice_changes_nothing():
    apply(make_event(SEED))
    event = make_event({"shop_id": 9981}, type="customer.delete", minutes=1)
    apply(event)
    assert apply(event).changes == []
    assert Customer.objects.get().version == 2


def test_crash_after_apply_leaves_nothing(transactional_db):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with transaction.atomic():
            event_apply(event=make_event(SEED))
            raise Boom
    assert not Customer.objects.exists() and not SourceValue.objects.exists() and not ExternalId.objects.exists()


def test_unlisted_source_rejected_and_no_list_allows_all():
    SourcePriorityRule.objects.filter(field="locale").update(sources=[])
    result = apply(make_event({"shop_id": 1, "locale": "de_DE"}, source="webshop2", minutes=0))
    assert Customer.objects.get().locale == "de-DE"
    apply(make_event({"shop_id": 1, "email": "x@example.com"}, source="webshop2", minutes=1))
    assert Customer.objects.get().email == ""
    assert SourceValue.objects.get(field="email").rejected
    assert result.customer_id


def test_explicit_null_from_winning_source_clears():
    apply(make_event({"crm_id": "C-1", "first_name": "Max"}, source="crm", minutes=0))
    apply(make_event({"crm_id": "C-1", "shop_id": 1}, source="shop", minutes=1))
    apply(make_event({"shop_id": 1, "first_name": "Maxi"}, source="shop", minutes=2))
    assert Customer.objects.get().first_name == "Max"
    apply(make_event({"crm_id": "C-1", "first_name": None}, source="crm", minutes=3))
    assert Customer.objects.get().first_name == ""  # crm's latest value is "none", and crm ranks first


def _steward(perm=True):
    user = User.objects.create_user("steward", password="x")
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="resolve_conflict"))
    return User.objects.get(pk=user.pk)


def _conflicted():
    apply(make_event({"crm_id": "C-1", "shop_id": 1, "email": "crm@example.com"}, source="crm", minutes=0))
    apply(make_event({"shop_id": 1, "email": "shop@example.com"}, source="shop", minutes=5))
    return Conflict.objects.get(status="open")


def resolve(**kwargs):
    with transaction.atomic():
        return conflict_resolve(**kwargs)


def test_accept_incoming_wins_until_better_source_changes_field():
    conflict, user = _conflicted(), _steward()
    changes = resolve(conflict_id=conflict.pk, decision="accept_incoming", user=user)

    customer = Customer.objects.get()
    assert customer.email == "shop@example.com"
    assert [(c.operation, c.version) for c in changes] == [("upsert", customer.version)]
    assert changes[0].correlation_id.startswith("steward:")
    conflict.refresh_from_db()
    assert conflict.status == "accepted_incoming" and conflict.resolved_by == user
    # the shop repeating its value keeps the steward's choice
    apply(make_event({"shop_id": 1, "email": "shop@example.com"}, source="shop", minutes=6))
    assert Customer.objects.get().email == "shop@example.com"
    # the better-ranked crm changing the field again ends it
    apply(make_event({"crm_id": "C-1", "email": "new@example.com"}, source="crm", minutes=7))
    assert Customer.objects.get().email == "new@example.com"
    assert not FieldOverride.objects.exists()


def test_keep_current_closes_without_change():
    conflict, user = _conflicted(), _steward()
    assert resolve(conflict_id=conflict.pk, decision="keep_current", user=user) == []
    conflict.refresh_from_db()
    assert conflict.status == "kept_current"
    assert Customer.objects.get().email == "crm@example.com"
    with pytest.raises(CanonicalError, match="already kept current"):
        resolve(conflict_id=conflict.pk, decision="accept_incoming", user=user)


def test_conflict_resolve_refuses_bad_input():
    conflict = _conflicted()
    with pytest.raises(CanonicalError, match="permission"):
        resolve(conflict_id=conflict.pk, decision="keep_current", user=_steward(perm=False))
    user = User.objects.create_superuser("admin", password="x")
    with pytest.raises(CanonicalError, match="unknown decision"):
        resolve(conflict_id=conflict.pk, decision="maybe", user=user)
    with pytest.raises(CanonicalError, match="does not exist"):
        resolve(conflict_id=999999, decision="keep_current", user=user)


def test_identity_conflict_can_only_be_kept():
    apply(make_event({"shop_id": 1, "email": "same@example.com"}, minutes=0))
    apply(make_event({"shop_id": 2, "email": "same@example.com"}, minutes=1))
    conflict = Conflict.objects.get(field="identity")
    user = User.objects.create_superuser("admin", password="x")
    with pytest.raises(CanonicalError, match="identity conflicts cannot be accepted"):
        resolve(conflict_id=conflict.pk, decision="accept_incoming", user=user)
    assert resolve(conflict_id=conflict.pk, decision="keep_current", user=user) == []
