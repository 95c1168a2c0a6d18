"""The official `llama-cloud==2.19.0` Python SDK, unchanged but for `base_url`, against classifyd.

Covers the beta files API (`client.files.*`) and Classify v2 (`client.classify.*`): upload and
download, classify runs on text, Markdown and PDF documents, usage, listing with cursor
pagination and filters, cancel and delete (including the 409 `x-should-retry: false` rule),
failing documents, request validation, unknown ids, project isolation and authentication.

Every document is generated here (the PDFs by a tiny PDF writer below), so a fresh clone needs
no corpus; the real-PDF scenario runs only when ../shared/corpus exists.
Fixtures (server per store, clients) live in conftest.py.
"""

from __future__ import annotations

import os
import re
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from llama_cloud import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PollingError,  # defined in llama_cloud._polling, re-exported at the top level
    UnprocessableEntityError,
)

CORPUS_DIR = Path(__file__).resolve().parents[3] / "shared" / "corpus"

INVOICE_RULE = {
    "type": "invoice",
    "description": "a bill requesting payment, with invoice number, line items and a total due",
}
CONTRACT_RULE = {
    "type": "contract",
    "description": "a legal agreement between parties with terms, obligations and signatures",
}
RULES = [INVOICE_RULE, CONTRACT_RULE]
CONFIG = {"rules": RULES}

# run()/wait_for_completion() poll with a constant short interval (the SDK default is linear
# backoff starting at 1 s) and give up after 30 s instead of the SDK's 2 hours.
POLL = {"polling_interval": 0.2, "backoff": "constant", "polling_timeout": 30}
WAIT = {"polling_interval": 0.1, "backoff": "constant", "timeout": 30}

# Final 409s must carry `x-should-retry: false`; otherwise the SDK retries 5 times (~14 s).
FAST_CONFLICT_S = 2.0

UNKNOWN_FILE_ID = "dfl-00000000-0000-4000-8000-000000000000"
UNKNOWN_JOB_ID = "cls-00000000-0000-4000-8000-000000000000"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


# ---------------------------------------------------------------------------------------------
# Documents

INVOICE_LINES = [
    "INVOICE No. 2024-001",
    "Invoice date: 2024-03-01",
    "Bill to: Example Customer Ltd, 1 Sample Street, Springfield",
    "Line items:",
    "1 x Consulting services, 60.00 EUR",
    "2 x Support hours, 40.00 EUR",
    "Subtotal: 100.00 EUR",
    "Total due: 100 EUR",
    "Please send payment within 30 days and quote the invoice number with your payment.",
]
INVOICE_TXT = ("\n".join(INVOICE_LINES) + "\n").encode()

CONTRACT_TXT = b"""SERVICE AGREEMENT

This legal agreement is made between Alpha GmbH (the Provider) and Beta Ltd (the Client),
together the parties.

1. Terms. The terms of this agreement apply for twelve months from the effective date.
2. Obligations. Each of the parties shall perform its obligations under this agreement in good faith.
3. Governing law. This agreement is governed by the laws of Germany.

Signatures of the parties:
Alpha GmbH, signed by its director        Beta Ltd, signed by its director
"""

AGREEMENT_MD = b"""# Mutual Non-Disclosure Agreement

**Parties:** Gamma AG and Delta Inc. (each a party, together the parties)

## Terms

- This agreement between the parties starts on the effective date and has a term of two years.
- Legal obligations: each party keeps the other party's confidential information secret.

## Obligations

1. Use confidential information only for the purpose of this agreement.
2. Return or destroy it when the agreement ends.

## Signatures

| Party     | Signature   |
|-----------|-------------|
| Gamma AG  | ___________ |
| Delta Inc | ___________ |
"""


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF 1.4: one page per entry, each line drawn in Helvetica 12 pt.

    Object layout: 1 catalog, 2 page tree, 3 font (standard-14 Helvetica, WinAnsiEncoding, not
    embedded), then per page a page object and its uncompressed content stream. The classic
    cross-reference table lists every object's byte offset (20-byte entries).
    """
    page_numbers = [4 + 2 * i for i in range(len(pages))]
    kids = " ".join(f"{n} 0 R" for n in page_numbers)
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for page_number, lines in zip(page_numbers, pages):
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_number + 1} 0 R >>"
            ).encode()
        )
        ops = ["BT", "/F1 12 Tf", "72 720 Td"]
        for index, line in enumerate(lines):
            if index:
                ops.append("0 -16 Td")
            ops.append(f"({_pdf_string(line)}) Tj")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # binary comment: marks the file as binary
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_offset = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_offset)
    return bytes(out)


INVOICE_PDF = make_pdf([INVOICE_LINES])
# Many pages, so that each job keeps a worker busy a little while (used to get queued jobs).
HEAVY_PDF = make_pdf([[f"Page {n} of 200"] + INVOICE_LINES for n in range(1, 201)])
BROKEN_PDF = b"%PDF-1.4 garbage"


@pytest.fixture(scope="module")
def uploaded(client, tmp_path_factory) -> dict:
    """Uploads every test document once per server; returns name -> SDK file object."""
    md_path = tmp_path_factory.mktemp("docs") / "agreement.md"
    md_path.write_bytes(AGREEMENT_MD)
    files = {}
    for key, spec in {
        "invoice_txt": ("invoice.txt", INVOICE_TXT, "text/plain"),
        "contract_txt": ("contract.txt", CONTRACT_TXT, "text/plain"),
        "invoice_pdf": ("invoice.pdf", INVOICE_PDF, "application/pdf"),
        "heavy_pdf": ("heavy-invoice.pdf", HEAVY_PDF, "application/pdf"),
        "broken_pdf": ("broken.pdf", BROKEN_PDF, "application/pdf"),
        "empty_txt": ("empty.txt", b"", "text/plain"),
    }.items():
        files[key] = client.files.create(file=spec, purpose="classify")
    with md_path.open("rb") as fh:  # an open file: the SDK sends its basename as the filename
        files["agreement_md"] = client.files.create(file=fh, purpose="classify")
    return files


def _ids(items) -> list[str]:
    return [item.id for item in items]


def _job_id_from_polling_error(error: PollingError) -> str:
    # The SDK's message: "Job <id> failed with status: FAILED | Error: <error_message>"
    match = re.search(r"Job (\S+) failed with status: (\S+)", str(error))
    assert match, f"unexpected PollingError message: {error}"
    assert match.group(2) == "FAILED", f"PollingError for a non-FAILED status: {error}"
    return match.group(1)


def _assert_fast_conflict(call, what: str) -> ConflictError:
    started = time.monotonic()
    with pytest.raises(ConflictError) as excinfo:
        call()
    elapsed = time.monotonic() - started
    error = excinfo.value
    assert error.status_code == 409, f"{what}: expected 409, got {error.status_code}"
    assert elapsed < FAST_CONFLICT_S, (
        f"{what}: ConflictError took {elapsed:.1f} s; a final 409 must carry "
        f"`x-should-retry: false` (got {error.response.headers.get('x-should-retry')!r}) "
        "or the SDK retries it 5 times"
    )
    assert isinstance(error.body, dict) and "detail" in error.body, f"{what}: 409 body {error.body!r}"
    return error


def _assert_validation_error(call, what: str) -> None:
    with pytest.raises((UnprocessableEntityError, BadRequestError)) as excinfo:
        call()
    body = excinfo.value.body
    assert isinstance(body, dict) and "detail" in body, (
        f"{what}: error body should be FastAPI-shaped {{'detail': ...}}, got {body!r}"
    )


def _wait_all_terminal(client, job_ids: list[str], timeout_s: float = 45.0) -> dict[str, str]:
    """Polls the list endpoint until every job is terminal; returns id -> status."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = {job.id: job.status for job in client.classify.list(job_ids=job_ids, page_size=100)}
        assert set(statuses) == set(job_ids), (
            f"list(job_ids=...) lost jobs: missing {sorted(set(job_ids) - set(statuses))}"
        )
        pending = {i: s for i, s in statuses.items() if s not in TERMINAL}
        if not pending:
            return statuses
        assert time.monotonic() < deadline, f"jobs still not terminal after {timeout_s} s: {pending}"
        time.sleep(0.2)


def _assert_completed_job(job, file_id: str, expected_type: str | None) -> None:
    assert job.status == "COMPLETED", f"job {job.id}: status {job.status}, error {job.error_message!r}"
    assert job.id.startswith("cls-"), f"classify job ids start with cls-: {job.id!r}"
    assert job.file_input == file_id
    assert job.document_input_type == "file_id"
    assert job.project_id == "prj-a"
    assert isinstance(job.user_id, str) and job.user_id
    assert [r.type for r in job.configuration.rules] == [r["type"] for r in RULES]
    result = job.result
    assert result is not None, f"completed job {job.id} has no result"
    if expected_type is not None:
        assert result.type == expected_type, (
            f"expected {expected_type!r}, got {result.type!r} "
            f"(confidence {result.confidence}, reasoning {result.reasoning!r})"
        )
    assert 0.0 <= result.confidence <= 1.0, f"confidence out of range: {result.confidence}"
    assert isinstance(result.reasoning, str) and result.reasoning.strip(), "reasoning must be non-empty"


# ---------------------------------------------------------------------------------------------
# Files


def test_upload_retrieve_and_download(client, uploaded):
    for key, name, data in [
        ("invoice_pdf", "invoice.pdf", INVOICE_PDF),
        ("invoice_txt", "invoice.txt", INVOICE_TXT),
        ("agreement_md", "agreement.md", AGREEMENT_MD),
    ]:
        f = uploaded[key]
        assert f.id.startswith("dfl-"), f"file ids start with dfl-: {f.id!r}"
        assert f.name == name, f"upload of {name}: name {f.name!r}"
        assert f.project_id == "prj-a", f"key-a's uploads belong to prj-a, got {f.project_id!r}"

        again = client.files.retrieve(f.id)
        assert (again.id, again.name, again.project_id) == (f.id, name, "prj-a")

        link = client.files.content(f.id)
        assert link.url.startswith("http"), f"content url: {link.url!r}"
        assert link.expires_at is not None
        # A presigned URL: fetched with no Authorization header at all.
        with urllib.request.urlopen(link.url, timeout=10) as response:
            assert response.status == 200
            body = response.read()
        assert body == data, f"{name}: downloaded {len(body)} bytes differ from the {len(data)} uploaded"


def test_file_ids_are_unique(uploaded):
    ids = _ids(uploaded.values())
    assert len(set(ids)) == len(ids), f"duplicate file ids: {ids}"


def test_file_list_paginates(client):
    mine = [
        client.files.create(file=(f"page-test-{n}.txt", INVOICE_TXT, "text/plain"), purpose="classify").id
        for n in range(3)
    ]
    listed = _ids(client.files.list(page_size=2))
    assert len(listed) == len(set(listed)), f"files.list repeated items across pages: {listed}"
    assert set(mine) <= set(listed), f"files.list lost uploads: {sorted(set(mine) - set(listed))}"

    pages = list(client.files.list(page_size=2, file_ids=mine).iter_pages())
    assert all(len(page.items) <= 2 for page in pages), "page_size=2 not honoured"
    got = [f.id for page in pages for f in page.items]
    assert sorted(got) == sorted(mine), f"file_ids filter: expected {mine}, got {got}"


def test_file_delete(client):
    f = client.files.create(file=("to-delete.txt", INVOICE_TXT, "text/plain"), purpose="classify")
    assert client.files.delete(f.id) is None
    with pytest.raises(NotFoundError):
        client.files.retrieve(f.id)
    with pytest.raises(NotFoundError):
        client.files.content(f.id)
    assert f.id not in _ids(client.files.list(file_ids=[f.id])), "deleted file still listed"


# ---------------------------------------------------------------------------------------------
# Classify: happy paths


def test_create_returns_pending_job(client, uploaded):
    fid = uploaded["invoice_txt"].id
    job = client.classify.create(file_input=fid, configuration=CONFIG)
    assert job.id.startswith("cls-"), f"classify job ids start with cls-: {job.id!r}"
    assert job.status == "PENDING", f"create must return at once with PENDING, got {job.status}"
    assert job.result is None
    assert job.file_input == fid and job.document_input_type == "file_id"
    assert job.project_id == "prj-a"
    assert job.created_at is not None
    assert [(r.type, r.description) for r in job.configuration.rules] == [
        (r["type"], r["description"]) for r in RULES
    ], "the configuration used must be echoed"
    done = client.classify.wait_for_completion(job.id, **WAIT)
    _assert_completed_job(done, fid, "invoice")


@pytest.mark.parametrize(
    "key,expected",
    [("invoice_txt", "invoice"), ("contract_txt", "contract"), ("agreement_md", "contract")],
)
def test_run_text_documents(client, uploaded, key, expected):
    fid = uploaded[key].id
    job = client.classify.run(file_input=fid, configuration=CONFIG, **POLL)
    _assert_completed_job(job, fid, expected)


def test_run_pdf_invoice_and_usage(client, uploaded):
    fid = uploaded["invoice_pdf"].id
    job = client.classify.run(file_input=fid, configuration=CONFIG, **POLL)
    _assert_completed_job(job, fid, "invoice")

    fetched = client.classify.get(job.id)
    assert fetched.id == job.id and fetched.status == "COMPLETED"
    assert fetched.result.type == "invoice"

    with_usage = client.classify.get(job.id, expand=["usage"])
    assert with_usage.usage is not None, "expand=usage must return a usage object"
    assert with_usage.usage.credits is not None and with_usage.usage.credits >= 1, (
        f"a completed 1-page job costs at least 1 credit, got {with_usage.usage}"
    )


def test_parsing_configuration_accepted(client, uploaded):
    fid = uploaded["invoice_pdf"].id
    config = {"rules": RULES, "parsing_configuration": {"max_pages": 1, "target_pages": "1", "lang": "en"}}
    job = client.classify.run(file_input=fid, configuration=config, **POLL)
    _assert_completed_job(job, fid, "invoice")
    parsing = job.configuration.parsing_configuration
    assert parsing is not None and parsing.target_pages == "1" and parsing.max_pages == 1


def test_rule_type_charset_and_length_limits_accepted(client, uploaded):
    # Letters, digits, spaces, hyphens and underscores; type up to 50 chars; description >= 10.
    rules = [
        {"type": "sec_filing", "description": "an annual report filed with a regulator"},
        {"type": "Tax Return", "description": "a tax return form"},
        {"type": "10-K", "description": "ten chars!"},
        {"type": "x" * 50, "description": "a rule whose type is exactly fifty characters long"},
    ]
    job = client.classify.create(file_input=uploaded["invoice_txt"].id, configuration={"rules": rules})
    assert job.status == "PENDING"
    assert [r.type for r in job.configuration.rules] == [r["type"] for r in rules]
    done = client.classify.wait_for_completion(job.id, **WAIT)
    assert done.status == "COMPLETED"
    assert done.result.type in {r["type"] for r in rules} | {None}


def test_transaction_id_is_idempotent(client, uploaded):
    fid = uploaded["invoice_txt"].id
    tx = f"tx-{time.time_ns()}"
    first = client.classify.create(file_input=fid, configuration=CONFIG, transaction_id=tx)
    second = client.classify.create(
        file_input=uploaded["contract_txt"].id, configuration=CONFIG, transaction_id=tx
    )
    assert second.id == first.id, "re-using a transaction_id must return the original job"
    assert second.file_input == fid, "the second request's body must be ignored"
    assert first.transaction_id == tx
    client.classify.wait_for_completion(first.id, **WAIT)


# ---------------------------------------------------------------------------------------------
# Classify: listing


def test_list_paginates_newest_first_and_filters(client, uploaded):
    fid = uploaded["invoice_txt"].id
    sentinel = client.classify.create(file_input=fid, configuration=CONFIG)
    time.sleep(0.05)
    batch = []
    for _ in range(5):
        batch.append(client.classify.create(file_input=fid, configuration=CONFIG))
        time.sleep(0.02)  # distinct creation times, so "newest first" is a strict order
    ids = _ids(batch)
    newest_first = list(reversed(ids))

    pages = list(client.classify.list(page_size=2, job_ids=ids).iter_pages())
    assert all(len(page.items) <= 2 for page in pages), "page_size=2 not honoured"
    assert len(pages) >= 3, f"5 jobs with page_size=2 need 3 pages, got {len(pages)}"
    assert [j.id for page in pages for j in page.items] == newest_first, "job_ids filter / order"

    # Plain iteration auto-paginates (the SDK re-sends the query plus page_token).
    assert _ids(client.classify.list(page_size=2, job_ids=ids)) == newest_first

    everything = list(client.classify.list(page_size=2))
    all_ids = _ids(everything)
    assert len(all_ids) == len(set(all_ids)), "list repeated jobs across pages"
    assert set(ids) | {sentinel.id} <= set(all_ids), "unfiltered list lost jobs"
    created = [j.created_at for j in everything]
    assert created == sorted(created, reverse=True), "list must be newest first"

    # created_at filters, with the SDK's datetime (ISO 8601 with +00:00) and with a Z string.
    start = batch[0].created_at
    assert set(_ids(client.classify.list(page_size=2, created_at_on_or_after=start))) == set(ids), (
        "created_at_on_or_after is inclusive and must exclude older jobs"
    )
    start_z = start.isoformat().replace("+00:00", "Z")
    assert set(_ids(client.classify.list(created_at_on_or_after=start_z))) == set(ids)
    before = list(
        client.classify.list(job_ids=ids + [sentinel.id], created_at_on_or_before=sentinel.created_at)
    )
    assert _ids(before) == [sentinel.id], "created_at_on_or_before is inclusive"
    later = start + timedelta(days=1)
    assert list(client.classify.list(created_at_on_or_after=later)) == []

    # status filter
    for job_id in ids + [sentinel.id]:
        client.classify.wait_for_completion(job_id, **WAIT)
    completed = _ids(client.classify.list(page_size=2, status="COMPLETED", job_ids=ids))
    assert completed == newest_first, f"status=COMPLETED: {completed}"
    assert list(client.classify.list(status="PENDING", job_ids=ids)) == []
    assert list(client.classify.list(status="FAILED", job_ids=ids)) == []


# ---------------------------------------------------------------------------------------------
# Classify: cancel and delete


def test_cancel_and_delete_unfinished_jobs(client, make_client, uploaded):
    # Separate client without retries for the bulk calls: a 409 that lacks x-should-retry would
    # otherwise cost ~14 s each. The timed assertions below use `client` (SDK default retries).
    no_retry = make_client("key-a", max_retries=0)
    fid = uploaded["heavy_pdf"].id
    # 4 workers, 200-page documents: the newest of 30 jobs are still queued when cancelled.
    jobs = [client.classify.create(file_input=fid, configuration=CONFIG).id for _ in range(30)]

    # Deleting a job that has not finished is refused at once (newest first: most likely queued).
    refused = None
    for job_id in reversed(jobs[-5:]):
        started = time.monotonic()
        try:
            client.classify.delete(job_id)
        except ConflictError as error:
            elapsed = time.monotonic() - started
            assert elapsed < FAST_CONFLICT_S, (
                f"delete of an unfinished job: ConflictError took {elapsed:.1f} s; a final 409 must "
                f"carry `x-should-retry: false` (got {error.response.headers.get('x-should-retry')!r})"
            )
            assert isinstance(error.body, dict) and "detail" in error.body, f"409 body {error.body!r}"
            refused = job_id
            break
        elapsed = time.monotonic() - started
        assert elapsed < FAST_CONFLICT_S, (
            f"delete of job {job_id} succeeded only after {elapsed:.1f} s: the SDK was retrying, "
            "so the server answered 409 without `x-should-retry: false` while the job ran"
        )
        jobs.remove(job_id)  # it had already finished, so the delete was legitimate
        with pytest.raises(NotFoundError):
            client.classify.get(job_id)
    assert refused is not None, "none of the newest 5 of 30 jobs was still unfinished"
    assert client.classify.get(refused).id == refused, "a refused delete must keep the job"

    # Cancel, newest first.
    cancelled = []
    for job_id in reversed(jobs):
        try:
            job = no_retry.classify.cancel(job_id)
        except ConflictError as error:
            assert error.response.headers.get("x-should-retry") == "false", (
                "409 on cancel must carry x-should-retry: false"
            )
            continue
        assert job.id == job_id
        assert job.status == "CANCELLED", f"cancel returned status {job.status}"
        assert job.result is None
        cancelled.append(job_id)
    assert cancelled, "no job of 30 queued ones could be cancelled"

    first = cancelled[0]
    assert client.classify.get(first).status == "CANCELLED"
    _assert_fast_conflict(lambda: client.classify.cancel(first), "cancel of a CANCELLED job")

    # Workers that were running a cancelled job must not overwrite the cancellation.
    statuses = _wait_all_terminal(client, jobs)
    for job_id in cancelled:
        assert statuses[job_id] == "CANCELLED", f"cancelled job {job_id} ended {statuses[job_id]}"
        assert client.classify.get(job_id).result is None
    assert list(client.classify.list(status="CANCELLED", job_ids=cancelled, page_size=100)), (
        "status=CANCELLED filter"
    )

    # A cancelled job is terminal: it can be deleted.
    deleted = client.classify.delete(first)
    assert deleted.id == first
    with pytest.raises(NotFoundError):
        client.classify.get(first)


def test_cancel_and_delete_finished_job(client, uploaded):
    fid = uploaded["invoice_txt"].id
    job = client.classify.run(file_input=fid, configuration=CONFIG, **POLL)
    assert job.status == "COMPLETED"

    _assert_fast_conflict(lambda: client.classify.cancel(job.id), "cancel of a COMPLETED job")
    assert client.classify.get(job.id).status == "COMPLETED", "a refused cancel must not change the job"

    deleted = client.classify.delete(job.id)
    assert deleted.id == job.id
    assert deleted.project_id in (None, "prj-a")
    with pytest.raises(NotFoundError):
        client.classify.get(job.id)
    with pytest.raises(NotFoundError):
        client.classify.delete(job.id)
    assert list(client.classify.list(job_ids=[job.id])) == [], "deleted job still listed"


# ---------------------------------------------------------------------------------------------
# Classify: documents that cannot be read


@pytest.mark.parametrize("key", ["broken_pdf", "empty_txt"])
def test_unreadable_document_fails(client, uploaded, key):
    with pytest.raises(PollingError) as excinfo:
        client.classify.run(file_input=uploaded[key].id, configuration=CONFIG, **POLL)
    job_id = _job_id_from_polling_error(excinfo.value)
    job = client.classify.get(job_id)
    assert job.status == "FAILED"
    assert job.error_message and job.error_message.strip(), "a FAILED job needs an error_message"
    assert job.result is None
    assert job_id in _ids(client.classify.list(status="FAILED", job_ids=[job_id]))
    # FAILED is terminal: delete works.
    assert client.classify.delete(job_id).id == job_id


# ---------------------------------------------------------------------------------------------
# Validation and unknown ids


def _rule(type_: str, description: str = "a description that is long enough") -> dict:
    return {"type": type_, "description": description}


INVALID_CREATE = [
    pytest.param(lambda fid: {"file_input": fid, "configuration": {"rules": []}}, id="no-rules"),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": {"rules": [_rule("invoice", "too short")]}},
        id="description-under-10-chars",
    ),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": {"rules": [_rule("x" * 51)]}},
        id="type-over-50-chars",
    ),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": {"rules": [_rule("invoice/bill")]}},
        id="type-with-slash",
    ),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": {"rules": [INVOICE_RULE, _rule("invoice")]}},
        id="duplicate-types",
    ),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": CONFIG, "configuration_id": "cfg-does-not-matter"},
        id="configuration-and-configuration_id",
    ),
    pytest.param(lambda fid: {"file_input": fid}, id="no-configuration"),
    pytest.param(lambda fid: {"configuration": CONFIG}, id="no-file-input"),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": {**CONFIG, "parsing_configuration": {"target_pages": "0"}}},
        id="target_pages-0",
    ),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": {**CONFIG, "parsing_configuration": {"target_pages": "3-1"}}},
        id="target_pages-reversed-range",
    ),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": {**CONFIG, "parsing_configuration": {"target_pages": "abc"}}},
        id="target_pages-not-pages",
    ),
    pytest.param(
        lambda fid: {"file_input": fid, "configuration": {**CONFIG, "parsing_configuration": {"max_pages": 0}}},
        id="max_pages-0",
    ),
]


@pytest.mark.parametrize("make_kwargs", INVALID_CREATE)
def test_create_validation_errors(client, uploaded, make_kwargs):
    kwargs = make_kwargs(uploaded["invoice_txt"].id)
    _assert_validation_error(lambda: client.classify.create(**kwargs), f"create({kwargs!r})")


def test_unknown_ids_are_not_found(client):
    with pytest.raises(NotFoundError) as excinfo:
        client.classify.create(file_input=UNKNOWN_FILE_ID, configuration=CONFIG)
    assert isinstance(excinfo.value.body, dict) and "detail" in excinfo.value.body
    with pytest.raises(NotFoundError):
        client.classify.get(UNKNOWN_JOB_ID)
    with pytest.raises(NotFoundError):
        client.classify.get(UNKNOWN_JOB_ID, expand=["usage"])
    with pytest.raises(NotFoundError):
        client.classify.cancel(UNKNOWN_JOB_ID)
    with pytest.raises(NotFoundError):
        client.classify.delete(UNKNOWN_JOB_ID)
    with pytest.raises(NotFoundError):
        client.files.retrieve(UNKNOWN_FILE_ID)
    with pytest.raises(NotFoundError):
        client.files.content(UNKNOWN_FILE_ID)


# ---------------------------------------------------------------------------------------------
# Projects and authentication


def test_projects_are_isolated(client, client_b):
    # A file of its own, so that a broken isolation cannot delete a file other tests use.
    file_a = client.files.create(file=("a-invoice.txt", INVOICE_TXT, "text/plain"), purpose="classify")
    job_a = client.classify.run(file_input=file_a.id, configuration=CONFIG, **POLL)

    for what, call in [
        ("get job", lambda: client_b.classify.get(job_a.id)),
        ("cancel job", lambda: client_b.classify.cancel(job_a.id)),
        ("delete job", lambda: client_b.classify.delete(job_a.id)),
        ("retrieve file", lambda: client_b.files.retrieve(file_a.id)),
        ("file content", lambda: client_b.files.content(file_a.id)),
        ("delete file", lambda: client_b.files.delete(file_a.id)),
        ("classify file", lambda: client_b.classify.create(file_input=file_a.id, configuration=CONFIG)),
    ]:
        with pytest.raises(NotFoundError):
            call()
            pytest.fail(f"key-b could {what} of project prj-a")
    assert job_a.id not in _ids(client_b.classify.list(page_size=100)), "prj-a job listed for key-b"
    assert _ids(client_b.classify.list(job_ids=[job_a.id])) == []
    assert file_a.id not in _ids(client_b.files.list(page_size=100)), "prj-a file listed for key-b"

    # key-a's objects are untouched by key-b's attempts.
    assert client.classify.get(job_a.id).status == "COMPLETED"
    assert client.files.retrieve(file_a.id).id == file_a.id

    # And the other way round.
    file_b = client_b.files.create(file=("b-invoice.txt", INVOICE_TXT, "text/plain"), purpose="classify")
    assert file_b.project_id == "prj-b"
    job_b = client_b.classify.run(file_input=file_b.id, configuration=CONFIG, **POLL)
    assert job_b.status == "COMPLETED" and job_b.project_id == "prj-b"
    with pytest.raises(NotFoundError):
        client.classify.get(job_b.id)
    with pytest.raises(NotFoundError):
        client.files.retrieve(file_b.id)


def test_wrong_api_key_is_rejected(make_client, uploaded):
    wrong = make_client("wrong")
    for what, call in [
        ("files.list", lambda: wrong.files.list()),
        ("files.retrieve", lambda: wrong.files.retrieve(uploaded["invoice_txt"].id)),
        ("files.create", lambda: wrong.files.create(file=("x.txt", b"hello", "text/plain"), purpose="classify")),
        ("classify.list", lambda: wrong.classify.list()),
        ("classify.get", lambda: wrong.classify.get(UNKNOWN_JOB_ID)),
        ("classify.create", lambda: wrong.classify.create(file_input=uploaded["invoice_txt"].id, configuration=CONFIG)),
    ]:
        with pytest.raises(AuthenticationError) as excinfo:
            call()
            pytest.fail(f"{what} succeeded with a wrong API key")
        assert excinfo.value.status_code == 401, f"{what}: {excinfo.value.status_code}"


# ---------------------------------------------------------------------------------------------
# A real PDF from the shared corpus (the README scenario), when the corpus is present


def test_corpus_invoice_readme_scenario(client):
    pdf = CORPUS_DIR / "i2d-01.pdf"
    if not pdf.is_file():
        message = f"corpus PDF {pdf} not found; skipping the real-PDF scenario"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with pdf.open("rb") as fh:
        f = client.files.create(file=fh, purpose="classify")
    assert f.name == "i2d-01.pdf"
    job = client.classify.run(file_input=f.id, configuration=CONFIG, **POLL)
    _assert_completed_job(job, f.id, "invoice")
