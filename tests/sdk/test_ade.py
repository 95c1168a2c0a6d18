"""landingai-ade 1.18.1 against classifyd: `client.classify(...)` on `POST /v1/ade/classify`.

Page-level and synchronous: every page of the document gets one of the caller's classes or
"unknown". The server runs with CLASSIFYD_ALLOW_PRIVATE_URLS so that `document_url` can point
at a loopback HTTP server inside the test; a second server without it must refuse that URL.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from landingai_ade import BadRequestError, LandingAIADE, UnprocessableEntityError

from conftest import ClassifydServer, _start_server, _stop
from test_v2_sdk import make_pdf

SERVER_ENV = {"CLASSIFYD_ALLOW_PRIVATE_URLS": "true"}

PAGES = [
    ["INVOICE No. 2024-0042", "Bill to: Example Corp", "Total due: 50.00 EUR", "Payment within 30 days"],
    ["SERVICE AGREEMENT", "This agreement is made between the parties ACME and Beta.",
     "Terms and obligations of each party.", "Signatures of both parties below."],
    ["Weather outlook", "Sunny spells with light clouds over the hills."],
    ["INVOICE No. 2024-0043", "Total due: 75.00 EUR", "Payment within 14 days"],
]
EXPECTED = ["invoice", "contract", "unknown", "invoice"]
MIXED_PDF = make_pdf(PAGES)

CLASSES = [
    {"class": "invoice", "description": "An invoice with an invoice number, a total due and payment terms"},
    {"class": "contract", "description": "An agreement between parties with terms, obligations and signatures"},
]


@pytest.fixture(scope="module")
def ade(base_url: str) -> Iterator[LandingAIADE]:
    client = LandingAIADE(apikey="key-a", base_url=base_url, timeout=60.0, _strict_response_validation=True)
    yield client
    client.close()


@pytest.fixture(scope="module")
def mixed_pdf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ade") / "mixed.pdf"
    path.write_bytes(MIXED_PDF)
    return path


@pytest.fixture(scope="module")
def document_server() -> Iterator[str]:
    """A loopback HTTP server: the mixed PDF at /docs/mixed.pdf, a redirect to it at /moved,
    404 elsewhere."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/docs/mixed.pdf")
                self.end_headers()
                return
            if self.path != "/docs/mixed.pdf":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(MIXED_PDF)))
            self.end_headers()
            self.wfile.write(MIXED_PDF)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def strict_server(classifyd_server: ClassifydServer, tmp_path_factory) -> Iterator[ClassifydServer]:
    """A second server on the same store without CLASSIFYD_ALLOW_PRIVATE_URLS."""
    server = _start_server(
        classifyd_server.store,
        tmp_path_factory.mktemp(f"classifyd-strict-{classifyd_server.store}"),
        classifyd_server.database_url,
    )
    yield server
    _stop(server.process)


def _assert_pages(response, expected_filename: str) -> None:
    pages = response.classification
    assert [p.page for p in pages] == list(range(len(PAGES)))
    assert [p.class_ for p in pages] == EXPECTED, [p.reason for p in pages]
    for page in pages:
        assert page.reason
        if page.class_ == "unknown":
            assert page.suggested_class == "weather outlook"
        else:
            assert page.suggested_class is None
    meta = response.metadata
    assert meta.page_count == len(PAGES)
    assert meta.filename == expected_filename
    assert meta.credit_usage == float(len(PAGES))
    assert isinstance(meta.duration_ms, int) and meta.duration_ms >= 0
    assert meta.job_id
    assert meta.version


def test_classify_uploaded_pdf_page_by_page(ade, mixed_pdf):
    response = ade.classify(document=mixed_pdf, classes=CLASSES, model="classify-20260420")
    _assert_pages(response, "mixed.pdf")


def test_classes_without_description_use_their_name(ade, mixed_pdf):
    response = ade.classify(document=mixed_pdf, classes=[{"class": "invoice"}, {"class": "agreement"}])
    assert [p.class_ for p in response.classification] == ["invoice", "agreement", "unknown", "invoice"]


def test_classes_as_json_string_like_the_docs(base_url, mixed_pdf):
    response = httpx.post(
        f"{base_url}/v1/ade/classify",
        headers={"Authorization": "Bearer key-a"},
        data={"classes": json.dumps(CLASSES)},
        files={"document": ("mixed.pdf", MIXED_PDF, "application/pdf")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["class"] for p in body["classification"]] == EXPECTED
    assert [p["page"] for p in body["classification"]] == [0, 1, 2, 3]

    empty = httpx.post(
        f"{base_url}/v1/ade/classify",
        headers={"Authorization": "Bearer key-a"},
        data={"classes": "[]"},
        files={"document": ("mixed.pdf", MIXED_PDF, "application/pdf")},
        timeout=60,
    )
    assert empty.status_code == 422
    assert "At least one class" in empty.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "classes, message",
    [
        ([], "Field required"),  # the SDK sends no classes field at all for an empty list
        ([{"class": "invoice"}, {"class": "Invoice"}], "Duplicate class"),
        ([{"class": "  "}], "non-empty"),
    ],
)
def test_invalid_classes_are_rejected(ade, mixed_pdf, classes, message):
    with pytest.raises(UnprocessableEntityError) as caught:
        ade.classify(document=mixed_pdf, classes=classes)
    detail = caught.value.body["detail"]
    assert isinstance(detail, list) and message in detail[0]["msg"]
    assert detail[0]["loc"][:2] == ["body", "classes"]


def test_unreadable_document_is_a_clear_422(ade):
    with pytest.raises(UnprocessableEntityError) as caught:
        ade.classify(document=b"%PDF-1.4 garbage", classes=CLASSES)
    assert "PDF" in caught.value.body["detail"][0]["msg"]


def test_document_url_from_loopback_when_allowed(ade, document_server):
    response = ade.classify(document_url=f"{document_server}/docs/mixed.pdf", classes=CLASSES)
    _assert_pages(response, "mixed.pdf")


def test_document_url_redirect_is_followed(ade, document_server):
    response = ade.classify(document_url=f"{document_server}/moved", classes=CLASSES)
    _assert_pages(response, "mixed.pdf")


def test_document_url_that_fails_is_a_bad_request(ade, document_server):
    with pytest.raises(BadRequestError) as caught:
        ade.classify(document_url=f"{document_server}/missing.pdf", classes=CLASSES)
    assert "404" in str(caught.value)


def test_document_url_on_loopback_is_refused_by_default(strict_server, document_server):
    client = LandingAIADE(apikey="key-a", base_url=strict_server.base_url, max_retries=0)
    try:
        with pytest.raises(BadRequestError) as caught:
            client.classify(document_url=f"{document_server}/docs/mixed.pdf", classes=CLASSES)
    finally:
        client.close()
    assert "CLASSIFYD_ALLOW_PRIVATE_URLS" in caught.value.body["detail"]
