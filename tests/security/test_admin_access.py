"""The admin, generically: every registered model, every admin URL, every action, refused without its permission.

`tests/admin/test_permissions.py` checks custsync's pages and actions role by
role. This module does not know the pages: it walks `admin.site` (every
ModelAdmin, every URL pattern under /admin/, every action a superuser is
offered), so a page or an action added later is covered without editing it.
"""

import json

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone

from canonical.models import Customer
from canonical.tests.factories import apply, make_event
from reconciliation.models import Discrepancy, ReconciliationRun
from targets.models import OutboxMessage
from tests.factories import dead_letter_create, inbox_event_create, source_create, target_create

pytestmark = pytest.mark.django_db

PII = "admin-world@example.com"

# Pages any staff user may open whatever their permissions (their own account, the empty index, assets).
OPEN_TO_ANY_STAFF = {"index", "logout", "password_change", "password_change_done", "jsi18n", "view_on_site",
                     "login", "autocomplete"}


@pytest.fixture
def world(db, monkeypatch):
    """At least one row in every admin-registered custsync table, so change pages and actions have targets."""
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: None)
    shop = source_create("shop")
    source_create("crm")  # the first event comes from the crm
    apply(make_event({"crm_id": "C-9", "shop_id": 9, "email": PII, "first_name": "Ada"}, source="crm",
                     event_id="evt_w1"))
    apply(make_event({"shop_id": 9, "email": "other-" + PII}, source="shop", minutes=5, event_id="evt_w2"))
    customer = Customer.objects.get()
    failed = inbox_event_create(source=shop, data={"shop_id": 9, "email": PII}, event_id="evt_failed")
    failed.status, failed.last_error = "failed", "boom"
    failed.save()
    target = target_create("cdp")
    dead_letter_create(target=target, customer=customer)
    run = ReconciliationRun.objects.create(target=target, status="succeeded", started_at=timezone.now(),
                                           finished_at=timezone.now(), counts={})
    Discrepancy.objects.create(run=run, customer_id=customer.pk, klass="missing_in_target",
                               sub_class="never_delivered", golden_version=customer.version)
    from rest_framework.authtoken.models import Token
    Token.objects.create(user=User.objects.create_user("api-user"))
    return customer


def client_for(user, *, csrf=False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def staff(*perms) -> User:
    user = User.objects.create_user(f"staff{User.objects.count()}", is_staff=True)
    for perm in perms:
        user.user_permissions.add(perm)
    return user


def view_only() -> User:
    return staff(*Permission.objects.filter(codename__startswith="view_"))


def snapshot() -> str:
    """Every row of every model except sessions/tokens bookkeeping: equal before and after means 'nothing happened'."""
    skip = {"sessions.Session", "contenttypes.ContentType", "auth.Permission"}
    rows = {}
    for model in apps.get_models():
        if model._meta.label in skip or model._meta.proxy:
            continue
        rows[model._meta.label] = list(model.objects.order_by("pk").values())
    # last_login changes with force_login; everything else about users must not.
    for row in rows["auth.User"]:
        row.pop("last_login", None)
    return json.dumps(rows, default=str, sort_keys=True)


def admin_urls(customer):
    """(name, url) for every named pattern under /admin/, with a real object id where one is needed."""
    objects = {}
    for model in admin.site._registry:
        first = model.objects.order_by("pk").first()
        objects[(model._meta.app_label, model._meta.model_name)] = first.pk if first else 1

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix)
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield pattern

    result = []
    for pattern in walk(admin.site.get_urls()):
        name = pattern.name
        if name in ("login", "logout"):
            continue
        kwargs = {}
        converters = pattern.pattern.converters
        for key in converters:
            if key in ("object_id", "pk", "id"):
                app_model = name.rsplit("_", 1)[0]
                pk = next((pk for (app, model), pk in objects.items() if app_model == f"{app}_{model}"), 1)
                kwargs[key] = pk
            elif key == "app_label":
                kwargs[key] = "canonical"
            else:
                kwargs[key] = "1"
        if pattern.pattern.regex.groups and not converters:
            continue  # regex-only patterns (catch-all): nothing to fill in
        try:
            url = reverse(f"admin:{name}", kwargs=kwargs)
        except Exception:  # noqa: BLE001 - patterns needing other arguments (e.g. content type + object) are skipped
            continue
        result.append((name, url))
    return result


def test_every_admin_url_is_covered(world):
    names = {name for name, _ in admin_urls(world)}
    for model in admin.site._registry:
        prefix = f"{model._meta.app_label}_{model._meta.model_name}"
        assert {f"{prefix}_changelist", f"{prefix}_change"} <= names, prefix
    assert "webhooks_inboxevent_replay" in names and "canonical_customer_resend" in names


def test_staff_without_permissions_gets_403_on_every_model_page(world):
    client = client_for(staff())
    refused, allowed = [], []
    for name, url in admin_urls(world):
        response = client.get(url)
        body = response.content.decode(errors="replace")
        assert PII not in body, f"{name} shows personal data to a user without permissions"
        if name in OPEN_TO_ANY_STAFF:
            continue
        if response.status_code == 302:  # a history page of a table without rows: "does not exist" -> index
            assert response["Location"] == reverse("admin:index") and name.endswith("_history"), name
            continue
        if response.status_code == 405:  # a POST-only endpoint (e.g. a decision button): POST it instead
            before = snapshot()
            response = client.post(url, {"post": "yes"})
            assert snapshot() == before, name
        assert response.status_code in (403, 404), f"{name} {url}: {response.status_code}"
        (refused if response.status_code == 403 else allowed).append(name)
    print(f"{len(refused)} admin pages refused (403), {len(allowed)} not found (404: app index without access)")
    assert len(refused) >= 2 * len(admin.site._registry)


def test_non_staff_users_are_sent_to_the_login_page(world):
    client = client_for(User.objects.create_user("customer-user"))
    for name, url in admin_urls(world):
        response = client.get(url)
        assert response.status_code in (302, 404), name
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("admin:login")), name


def _superuser_actions():
    superuser = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("root", None, None)
    request = RequestFactory().get("/admin/")
    request.user = superuser
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.get_actions(request):
            yield model, action


def _action_post(client, model, action):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    pks = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)[:5]]
    return client.post(url, {"action": action, "_selected_action": pks, "post": "yes", "index": 0})


def test_view_only_user_cannot_run_any_action(world):
    actions = list(_superuser_actions())
    assert len(actions) >= 10  # custsync's own plus delete_selected on every model
    client = client_for(view_only())
    before = snapshot()
    for model, action in actions:
        response = _action_post(client, model, action)
        assert response.status_code in (200, 302, 403), (model, action, response.status_code)
        assert b'id="confirm-action"' not in response.content
        assert snapshot() == before, f"{model._meta.label}.{action} changed data for a view-only user"
    print(f"{len(actions)} actions refused to a view-only user")


def test_view_only_user_cannot_add_change_or_delete(world):
    client = client_for(view_only())
    before = snapshot()
    for model in admin.site._registry:
        base = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        first = model._default_manager.order_by("pk").first()
        assert client.post(reverse(f"{base}_add"), {}).status_code == 403, base
        if first is not None:
            assert client.post(reverse(f"{base}_change", args=[first.pk]), {}).status_code == 403, base
            assert client.post(reverse(f"{base}_delete", args=[first.pk]), {"post": "yes"}).status_code == 403, base
    assert snapshot() == before


def test_every_action_and_form_post_needs_the_csrf_token(world):
    superuser = User.objects.create_superuser("csrf-root", None, None)
    client = client_for(superuser, csrf=True)
    before = snapshot()
    for model, action in _superuser_actions():
        response = _action_post(client, model, action)
        assert response.status_code == 403, (model, action)
    for model in admin.site._registry:
        base = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        first = model._default_manager.order_by("pk").first()
        assert client.post(reverse(f"{base}_add"), {}).status_code == 403
        if first is not None:
            assert client.post(reverse(f"{base}_delete", args=[first.pk]), {"post": "yes"}).status_code == 403
    for name, url in admin_urls(world):
        if name in ("jsi18n", "view_on_site", "autocomplete"):
            continue
        assert client.post(url, {"post": "yes"}).status_code in (403, 405), name
    assert snapshot() == before
    # and the login form itself
    assert Client(enforce_csrf_checks=True).post(reverse("admin:login"),
                                                 {"username": "csrf-root", "password": "x"}).status_code == 403


def test_every_custsync_action_leaves_an_audit_entry_with_the_user(world):
    """Repudiation: what a person did in the admin is attributable (a LogEntry per action run, naming the user)."""
    missing = []
    for model, action in _superuser_actions():
        if model._meta.app_label not in ("canonical", "webhooks", "targets", "reconciliation"):
            continue  # django's delete_selected logs itself; django-q's resubmit is third-party
        if action == "delete_selected":
            continue
        _reset_actionable_rows()
        user = User.objects.create_superuser(f"audit{User.objects.count()}", None, None)
        before = LogEntry.objects.filter(user=user).count()
        response = _action_post(client_for(user), model, action)
        assert response.status_code in (200, 302), (model, action)
        if LogEntry.objects.filter(user=user).count() == before:
            missing.append(f"{model._meta.label}.{action}")
    print(f"actions without an audit entry: {missing}")
    assert set(missing) <= KNOWN_UNAUDITED_ACTIONS, f"new actions without a LogEntry: {set(missing) - KNOWN_UNAUDITED_ACTIONS}"


def _reset_actionable_rows():
    """Put every row an action works on back into the state the action acts on."""
    from canonical.models import Conflict
    from webhooks.models import InboxEvent

    Conflict.objects.update(status="open", resolved_by=None, resolved_at=None)
    OutboxMessage.objects.filter(last_status=422).update(status="dead")
    InboxEvent.objects.filter(event_id="evt_failed").update(status="failed")
    Discrepancy.objects.update(fixed_at=None)


# Reported to the owners of targets/admin.py (docs/security.md, residual risks); remove entries as they are fixed.
KNOWN_UNAUDITED_ACTIONS: set[str] = set()
