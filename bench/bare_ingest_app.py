"""The ingest ceiling: a bare WSGI app that does the gateway's irreducible work.

Verifies the same HMAC-SHA256 signature over "<X-Timestamp>.<raw body>" in
constant time, checks the timestamp window, parses the JSON body once and
INSERTs the event with psycopg2 (one statement, autocommit, one connection per
thread), then answers the gateway's 202 JSON. No framework, no ORM. Run by
bench/ingest.py under the same gunicorn settings as the real gateway.
"""

import hashlib
import hmac
import json
import os
import threading
import time

import psycopg2

SECRET = os.environ.get("WEBHOOK_SECRET", "").encode()
DSN = os.environ.get("DATABASE_URL", "")
TOLERANCE = 300
MAX_BODY = 256 * 1024
SQL = ("INSERT INTO bench_bare_inbox (source, event_id, type, schema_version, occurred_at, payload) "
       "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id")

_local = threading.local()


def _conn():
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg2.connect(DSN)
        conn.autocommit = True
        _local.conn = conn
    return conn


def _answer(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":
        return _answer(start_response, "405 Method Not Allowed", {"ok": False, "error": "POST only"})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        return _answer(start_response, "413 Payload Too Large", {"ok": False, "error": "too large"})
    body = environ["wsgi.input"].read(length)
    ts = environ.get("HTTP_X_TIMESTAMP", "")
    sig = environ.get("HTTP_X_SIGNATURE", "").removeprefix("sha256=")
    if not ts.isdigit() or abs(int(ts) - time.time()) > TOLERANCE:
        return _answer(start_response, "401 Unauthorized", {"ok": False, "error": "stale"})
    expected = hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig):
        return _answer(start_response, "401 Unauthorized", {"ok": False, "error": "signature"})
    obj = json.loads(body)
    with _conn().cursor() as cur:
        cur.execute(SQL, (obj["source"], obj["event_id"], obj["type"], obj["schema_version"], obj["occurred_at"],
                          body.decode()))
        cur.fetchone()
    return _answer(start_response, "202 Accepted", {"ok": True, "status": "accepted", "event_id": obj["event_id"]})


TABLE_DDL = """
CREATE TABLE IF NOT EXISTS bench_bare_inbox (
    id bigserial PRIMARY KEY,
    source varchar(64) NOT NULL,
    event_id varchar(255) NOT NULL,
    type varchar(64) NOT NULL,
    schema_version integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    status varchar(16) NOT NULL DEFAULT 'received',
    CONSTRAINT bench_bare_inbox_unique UNIQUE (source, event_id)
);
CREATE INDEX IF NOT EXISTS bench_bare_inbox_status ON bench_bare_inbox (status, received_at);
"""
