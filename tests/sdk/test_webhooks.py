"""Webhooks through the llama-cloud 2.19.0 SDK: saved webhook configs (`client.webhook_configs.*`),
per-job `webhook_configurations` / `webhook_configuration_ids`, and real deliveries to a receiver
this test runs on 127.0.0.1 — signature, headers, output formats, event filter and order, and
retries that survive a server restart (the outbox is in the database).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from llama_cloud import LlamaCloud, NotFoundError, UnprocessableEntityError

from conftest import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    _create_pg_database,
    _drop_pg_database,
    _start_server,
    _stop,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slow.json"
SERVER_ENV = {
    "CLASSIFYD_ALLOW_PRIVATE_URLS": "true",
    "CLASSIFYD_FIXTURES": str(FIXTURES),
    "CLASSIFYD_WEBHOOK_RETRY_BASE_MS": "200",
}
INVOICE_RULE = {
    "type": "invoice",
    "description": "a bill requesting payment, with invoice number, line items and a total due",
}
CONFIG = {"rules": [INVOICE_RULE]}
INVOICE_TXT = b"INVOICE No. 7\nTotal due: 120.00 EUR\nPlease pay this invoice within 30 days.\n"
WAIT = {"polling_interval": 0.1, "backoff": "constant", "timeout": 30}


class Receiver:
    """An HTTP server that records every POST; `fail_first[path] = n` answers 500 n times."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_first: dict[str, int] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    remaining = receiver.fail_first.get(self.path, 0)
                    accepted = remaining == 0
                    if not accepted:
                        receiver.fail_first[self.path] = remaining - 1
                    receiver.requests.append({
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "accepted": accepted,
                    })
                self.send_response(200 if accepted else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str, accepted_only: bool = True) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path and (r["accepted"] or not accepted_only)]

    def wait_for(self, path: str, count: int, timeout_s: float = 30.0, accepted_only: bool = True) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.on(path, accepted_only)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{path}: expected {count} deliveries, got {self.on(path, accepted_only)}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def invoice(client):
    return client.files.create(file=("invoice.txt", INVOICE_TXT, "text/plain"), purpose="classify")


def _event(request: dict) -> dict:
    return json.loads(request["body"])


def _signature_ok(request: dict, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(request["headers"].get("lc-signature", ""), expected)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # webhook_configs.list()
def test_webhook_config_crud(client, client_b):
    created = client.webhook_configs.create(
        webhook_url="https://hooks.example.com/classify",
        webhook_events=["classify.success", "classify.error"],
        webhook_headers={"X-Token": "t0k"},
        webhook_output_format="json",
        webhook_signing_secret="s3cret",
    )
    assert created.id and created.has_secret and created.tenant_type == "project"
    assert created.tenant_id == "prj-a"
    assert created.webhook_events == ["classify.success", "classify.error"]
    assert created.webhook_headers == {"X-Token": "t0k"}
    assert "s3cret" not in created.model_dump_json(), "the secret is write-only"

    assert client.webhook_configs.retrieve(created.id).webhook_url == created.webhook_url
    updated = client.webhook_configs.update(created.id, webhook_url="https://hooks.example.com/v2")
    assert updated.webhook_url == "https://hooks.example.com/v2"
    assert updated.webhook_events == created.webhook_events and updated.has_secret, "only sent fields change"

    assert created.id in [c.id for c in client.webhook_configs.list()]
    more = [client.webhook_configs.create(webhook_url=f"https://hooks.example.com/{n}").id for n in range(3)]
    pages = list(client.webhook_configs.list_paginated(page_size=2).iter_pages())
    seen = [c.id for page in pages for c in page.items]
    assert len(seen) == len(set(seen)) and set(more + [created.id]) <= set(seen)
    assert [i for i in seen if i in more] == list(reversed(more)), "newest first"
    first = client.webhook_configs.list_paginated(page_size=1, include_total=True)
    assert first.model_extra.get("total_size", getattr(first, "total_size", None)) == len(seen)

    with pytest.raises(NotFoundError):
        client_b.webhook_configs.retrieve(created.id)
    assert created.id not in [c.id for c in client_b.webhook_configs.list()]

    for bad in [
        {"webhook_url": "ftp://example.com/x"},
        {"webhook_url": "not a url"},
        {"webhook_url": "https://example.com/x", "webhook_events": []},
        {"webhook_url": "https://example.com/x", "webhook_events": ["classify.done"]},
        {"webhook_url": "https://example.com/x", "webhook_output_format": "xml"},
        {"webhook_url": "https://example.com/x", "webhook_headers": {"Content-Length": "1"}},
    ]:
        with pytest.raises(UnprocessableEntityError):
            client.webhook_configs.create(**bad)

    client.webhook_configs.delete(created.id)
    with pytest.raises(NotFoundError):
        client.webhook_configs.retrieve(created.id)


def _path(name: str) -> str:
    """A receiver path of its own (the receiver outlives one server)."""
    return f"/{name}-{time.time_ns()}"


def test_events_are_signed_filtered_and_in_order(client, client_b, receiver, invoice):
    inline_path, saved_path = _path("inline"), _path("saved")
    saved = client.webhook_configs.create(
        webhook_url=receiver.url(saved_path), webhook_events=["classify.success"]
    )
    secret = "whsec-test-1"
    job = client.classify.create(
        file_input=invoice.id,
        configuration=CONFIG,
        webhook_configurations=[{
            "webhook_url": receiver.url(inline_path),
            "webhook_signing_secret": secret,
            "webhook_output_format": "json",
            "webhook_headers": {"X-Receiver-Token": "abc"},
        }],
        webhook_configuration_ids=[saved.id],
    )
    done = client.classify.wait_for_completion(job.id, **WAIT)
    assert done.status == "COMPLETED"

    inline = receiver.wait_for(inline_path, 3)
    events = [_event(r) for r in inline]
    assert [e["event_type"] for e in events] == ["classify.pending", "classify.running", "classify.success"]
    assert len({e["event_id"] for e in events}) == 3
    for request, event in zip(inline, events):
        assert _signature_ok(request, secret), f"bad LC-Signature on {event['event_type']}"
        assert request["headers"]["x-receiver-token"] == "abc"
        assert request["headers"]["lc-event-id"] == event["event_id"]
        assert request["headers"]["content-type"] == "application/json"
        assert event["job_id"] == job.id and event["project_id"] == "prj-a"
        assert isinstance(event["data"], dict) and event["data"]["id"] == job.id
    assert events[-1]["status"] == "COMPLETED"
    assert events[-1]["data"]["result"]["type"] == "invoice"
    assert events[0]["data"]["status"] == "PENDING", "each event carries the job as of the event"

    saved_requests = receiver.wait_for(saved_path, 1)
    time.sleep(0.5)
    assert len(receiver.on(saved_path)) == 1, "webhook_events filters the events"
    event = _event(saved_requests[0])
    assert event["event_type"] == "classify.success"
    assert "lc-signature" not in saved_requests[0]["headers"], "no secret, no signature"
    assert isinstance(event["data"], str), "the default output format is a JSON-encoded string"
    assert json.loads(event["data"])["id"] == job.id

    # Another project's saved config cannot be used; bad inline targets are refused.
    with pytest.raises(NotFoundError):
        client_b.classify.create(
            file_input=client_b.files.create(file=("i.txt", INVOICE_TXT, "text/plain"), purpose="classify").id,
            configuration=CONFIG, webhook_configuration_ids=[saved.id],
        )
    with pytest.raises(UnprocessableEntityError):
        client.classify.create(
            file_input=invoice.id, configuration=CONFIG,
            webhook_configurations=[{"webhook_url": "gopher://x", "webhook_events": ["classify.success"]}],
        )


def test_cancel_sends_the_cancelled_event(client, receiver):
    path = _path("cancel")
    slow = client.files.create(file=("slow-invoice.txt", INVOICE_TXT, "text/plain"), purpose="classify")
    job = client.classify.create(
        file_input=slow.id, configuration=CONFIG,
        webhook_configurations=[{"webhook_url": receiver.url(path),
                                 "webhook_events": ["classify.running", "classify.cancelled", "classify.success"]}],
    )
    receiver.wait_for(path, 1)  # running: the scripted delay keeps it there
    client.classify.cancel(job.id)
    got = receiver.wait_for(path, 2)
    time.sleep(2.0)  # past the scripted delay: no success may follow a cancel
    assert [_event(r)["event_type"] for r in receiver.on(path)] == ["classify.running", "classify.cancelled"]
    assert _event(got[1])["status"] == "CANCELLED"


def test_private_webhook_urls_fail_without_the_setting(tmp_path_factory, receiver):
    # A server with the default SSRF policy accepts the job but never posts to loopback.
    server = _start_server("sqlite", tmp_path_factory.mktemp("strict"), None,
                           {"CLASSIFYD_WEBHOOK_RETRY_BASE_MS": "50"})
    try:
        with LlamaCloud(api_key="key-a", base_url=server.base_url, timeout=30.0) as client:
            fid = client.files.create(file=("invoice.txt", INVOICE_TXT, "text/plain"), purpose="classify").id
            job = client.classify.create(file_input=fid, configuration=CONFIG,
                                         webhook_configurations=[{"webhook_url": receiver.url("/strict")}])
            assert client.classify.wait_for_completion(job.id, **WAIT).status == "COMPLETED"
            time.sleep(1.0)
            assert receiver.on("/strict", accepted_only=False) == []
    finally:
        _stop(server.process)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_failed_deliveries_are_retried_across_a_restart(store, tmp_path_factory, receiver):
    """The receiver fails twice; the server stops after the first failure and a new one on the
    same database finishes the job's deliveries: each event accepted once, in order."""
    db_name = _create_pg_database() if store == "postgres" else None
    database_url = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}" if db_name else None
    data_dir = tmp_path_factory.mktemp(f"restart-{store}")
    env = {"CLASSIFYD_ALLOW_PRIVATE_URLS": "true", "CLASSIFYD_WEBHOOK_RETRY_BASE_MS": "1500",
           "CLASSIFYD_OUTBOUND_TIMEOUT_SECONDS": "5"}
    path = _path(f"flaky-{store}")
    receiver.fail_first[path] = 2
    server = _start_server(store, data_dir, database_url, env)
    try:
        with LlamaCloud(api_key="key-a", base_url=server.base_url, timeout=30.0) as client:
            fid = client.files.create(file=("invoice.txt", INVOICE_TXT, "text/plain"), purpose="classify").id
            job = client.classify.create(
                file_input=fid, configuration=CONFIG,
                webhook_configurations=[{"webhook_url": receiver.url(path), "webhook_signing_secret": "k"}],
            )
        receiver.wait_for(path, 1, accepted_only=False)
        _stop(server.process)
        (data_dir / "port").unlink()
        server = _start_server(store, data_dir, database_url, env)
        accepted = receiver.wait_for(path, 3, timeout_s=45)
        time.sleep(1.0)
        attempts = receiver.on(path, accepted_only=False)
        accepted = receiver.on(path)
        events = [_event(r) for r in accepted]
        assert [e["event_type"] for e in events] == ["classify.pending", "classify.running", "classify.success"]
        assert len({e["event_id"] for e in events}) == 3, "each event accepted exactly once"
        assert all(e["job_id"] == job.id for e in events)
        failed = [r for r in attempts if not r["accepted"]]
        assert len(failed) == 2
        assert all(r["body"] == accepted[0]["body"] for r in failed), "a retry re-sends the same body"
        assert all(_signature_ok(r, "k") for r in attempts)
    finally:
        _stop(server.process)
        if db_name is not None:
            _drop_pg_database(db_name)


def test_parse_jobs_send_parse_events(client, receiver, invoice):
    path = _path("parse")
    job = client.parsing.create(
        tier="fast", version="latest", file_id=invoice.id,
        webhook_configurations=[{"webhook_url": receiver.url(path), "webhook_output_format": "json"}],
    )
    events = [_event(r) for r in receiver.wait_for(path, 3)]
    assert [e["event_type"] for e in events] == ["parse.pending", "parse.running", "parse.success"]
    assert events[-1]["data"]["job"]["id"] == job.id
    assert events[-1]["data"]["job"]["status"] == "COMPLETED"
