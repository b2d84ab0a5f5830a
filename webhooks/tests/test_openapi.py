"""The generated OpenAPI schema describes the endpoint for senders."""

import pytest


@pytest.mark.django_db
def test_schema_describes_the_webhook_endpoint(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    operation = response.json()["paths"]["/webhooks/customer"]["post"]
    assert set(operation["responses"]) >= {"202", "400", "401", "413", "415", "422"}
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"X-Timestamp", "X-Signature", "webhook-id", "webhook-timestamp", "webhook-signature"}
    body = operation["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/Envelope")
    assert operation.get("security", []) == []  # no authentication: the signature is the proof
    envelope = response.json()["components"]["schemas"]["Envelope"]
    assert set(envelope["required"]) == {"source", "schema_version", "type", "occurred_at", "data"}
