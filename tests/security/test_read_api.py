"""The read API (GET /api/customers/, /api/customers/{id}/): who may read, and hostile query strings.

Golden records are personal data, so the API asks for the same permission
as the admin's customer pages (`canonical.view_customer`): being logged in
(a staff account without permissions, a token of any user) is not enough.
"""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from canonical.tests.factories import apply, make_event

pytestmark = pytest.mark.django_db

HTML = '<script>alert("x")</script>'


@pytest.fixture
def person():
    return apply(make_event({"shop_id": 1, "email": "reader-test@example.com", "first_name": HTML,
                             "last_name": "'; DROP TABLE canonical_customer; --"},
                            source="shop", event_id="evt_api")).customer_id


def token_client(*, perms=()) -> APIClient:
    user = User.objects.create_user(f"u{User.objects.count()}")
    user.user_permissions.add(*[Permission.objects.get(codename=p) for p in perms])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


@pytest.mark.parametrize("auth", [None, "Token nope", "Token ", "Bearer x", "Basic YWRtaW46YWRtaW4=", "Token a b"])
def test_without_valid_credentials_it_is_401(person, auth):
    api = APIClient()
    if auth:
        api.credentials(HTTP_AUTHORIZATION=auth)
    for url in ("/api/customers/", f"/api/customers/{person}/", "/api/customers/?email=reader-test@example.com"):
        response = api.get(url)
        assert response.status_code == 401, (auth, url)
        assert b"reader-test" not in response.content


def test_authenticated_without_the_view_permission_is_403(person):
    api = token_client()
    for url in ("/api/customers/", f"/api/customers/{person}/"):
        response = api.get(url)
        assert response.status_code == 403, url
        assert b"reader-test" not in response.content


def test_staff_session_without_the_permission_is_403_like_the_admin(person):
    client = Client()
    client.force_login(User.objects.create_user("staffer", is_staff=True))
    assert client.get("/admin/canonical/customer/").status_code == 403
    assert client.get("/api/customers/").status_code == 403


def test_with_the_view_permission_it_reads_and_values_are_json_not_html(person):
    response = token_client(perms=["view_customer"]).get(f"/api/customers/{person}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json()["first_name"] == HTML  # returned verbatim as JSON data, never rendered


def test_browsable_api_is_not_an_html_injection_vector(person):
    """Accept: text/html gets the browsable API only if enabled; either way the value is escaped."""
    response = token_client(perms=["view_customer"]).get(f"/api/customers/{person}/", HTTP_ACCEPT="text/html")
    assert response.status_code in (200, 406)
    assert HTML.encode() not in response.content


def test_api_writes_are_not_offered(person):
    api = token_client(perms=["view_customer", "change_customer", "delete_customer", "add_customer"])
    for method, url in (("post", "/api/customers/"), ("put", f"/api/customers/{person}/"),
                        ("patch", f"/api/customers/{person}/"), ("delete", f"/api/customers/{person}/")):
        assert getattr(api, method)(url, {}, format="json").status_code == 405, method


def test_session_writes_would_need_csrf(person):
    """There are no API writes; the session-authenticated POST is refused by CSRF before it reaches the 405."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    assert client.post("/api/customers/", {}).status_code == 403


HOSTILE_VALUES = ["a\x00b", "\x00", "x" * 20000, "' OR 1=1 --", "%", "_", "\\", "ä\u202e", "\ufffd", "\r\nX-Injected: 1",
                  "999999999999999999999999999", "-1", "1e9", "NaN", "null", "[]", "{}", "shop:", ":1", "shop:\x00"]
PARAMS = ["email", "phone", "region", "external_id", "limit", "offset", "ordering", "format", "search", "page"]


@pytest.mark.parametrize("param", PARAMS)
def test_hostile_query_values_are_never_a_500(person, param):
    api = token_client(perms=["view_customer"])
    for value in HOSTILE_VALUES:
        response = api.get("/api/customers/", {param: value, "phone": "+4915123456789"} if param == "region"
                           else {param: value})
        assert response.status_code in (200, 400, 404), (param, repr(value), response.status_code, response.content[:200])


@pytest.mark.parametrize("param", ["email", "external_id", "phone"])
def test_nul_in_a_filter_is_a_400_naming_it(person, param):
    """PostgreSQL refuses NUL in text parameters (a 500 before the fix); SQLite matched nothing."""
    response = token_client(perms=["view_customer"]).get("/api/customers/", {param: "shop:a\x00b"})
    assert response.status_code == 400
    assert param in response.json()


@pytest.mark.parametrize("pk", ["99999999999999999999", "9223372036854775808", "-1", "0", "1e3", "%00", "1%20OR%201=1"])
def test_hostile_detail_ids_are_404(person, pk):
    assert token_client(perms=["view_customer"]).get(f"/api/customers/{pk}/").status_code == 404
