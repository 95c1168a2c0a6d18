"""The fake cloud: scripted outcomes, API fault injection and model record/replay, driven
through the official SDKs.

One server per store runs with a fixtures file and fault injection enabled; the tests force
results, failures and delays per document, and make creates answer 429/500/503 a set number of
times to observe the SDK's own retry behaviour (it retries 408, 409, 429 and >= 500, up to
`max_retries`, honouring Retry-After). The record/replay test records the `openai` backend's
exchanges with the fake model (fake_model.py), stops it, and replays them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from landingai_ade import LandingAIADE, UnprocessableEntityError
from llama_cloud import (
    BadRequestError,
    InternalServerError,
    LlamaCloud,
    PollingError,
    RateLimitError,
)

from conftest import (
    API_KEYS,
    _create_pg_database,
    _drop_pg_database,
    _start_server,
    _stop,
)
from fake_model import FakeModel, answer, prompt_text
from test_v2_sdk import make_pdf

RULES = [
    {"type": "invoice", "description": "a bill requesting payment, with invoice number, line items and a total due"},
    {"type": "contract", "description": "a legal agreement between parties with terms, obligations and signatures"},
]
INVOICE = b"INVOICE No. 2024-001\nTotal due: 1000 EUR\nPayment within 30 days\n"
SHA_MATCHED = b"A document identified by its content hash only.\n"


def fixtures_document(forced_type: str = "contract") -> dict:
    return {
        "fixtures": [
            {"match": {"file_name": "forced-*"},
             "result": {"type": forced_type, "confidence": 0.42, "reasoning": "scripted"}},
            {"match": {"file_name": "broken-*"}, "fail": "scripted failure: the scanner jammed"},
            {"match": {"file_name": "slow-*"}, "delay_ms": 1500},
            {"match": {"sha256": hashlib.sha256(SHA_MATCHED).hexdigest()},
             "result": {"type": None, "confidence": 0.05, "reasoning": "scripted by hash"}},
            {"match": {"rule_types": ["memo"]},
             "result": {"type": "memo", "confidence": 0.9, "reasoning": "scripted by rule types"}},
            {"match": {"file_name": "paged-*"},
             "pages": {"0": {"type": "contract", "confidence": 0.7, "reasoning": "scripted page 0"},
                       "2": {"type": None, "confidence": 0.1, "reasoning": "scripted page 2"}},
             "result": {"type": "invoice", "confidence": 0.6, "reasoning": "scripted other pages"}},
            {"match": {"file_name": "partly-*"},
             "pages": {"1": {"type": "invoice", "confidence": 0.8, "reasoning": "scripted page 1"}}},
        ],
        "api_faults": [
            {"match": {"method": "POST", "path": "/api/v2/classify", "headers": {"x-test-case": "limited-twice-a"}},
             "status": 429, "retry_after_seconds": 1, "times": 2},
            {"match": {"method": "POST", "path": "/api/v2/classify", "headers": {"x-test-case": "limited-twice-b"}},
             "status": 429, "retry_after_seconds": 1, "times": 2},
            {"match": {"method": "POST", "path": "/api/v2/classify", "headers": {"x-test-case": "always-limited"}},
             "status": 429, "times": 1000},
            {"match": {"method": "POST", "path": "/api/v2/classify", "headers": {"x-test-case": "flaky"}},
             "status": 500, "times": 2},
            {"match": {"method": "POST", "path": "/api/v2/classify", "headers": {"x-test-case": "unavailable"}},
             "status": 503, "times": 2},
            {"match": {"method": "POST", "path": "/v1/ade/classify", "headers": {"x-test-case": "ade-limited"}},
             "status": 429, "retry_after_seconds": 1, "times": 2},
            {"match": {"path": "/api/v1/beta/files", "headers": {"x-test-case": "bad-once"}},
             "status": 400, "times": 1, "detail": "scripted bad request"},
        ],
    }


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fake_cloud(request, tmp_path_factory):
    store = request.param
    tmp = tmp_path_factory.mktemp(f"fake-cloud-{store}")
    fixtures = tmp / "fixtures.json"
    fixtures.write_text(json.dumps(fixtures_document()))
    db_name = _create_pg_database() if store == "postgres" else None
    database_url = f"postgres://postgres@127.0.0.1:5432/{db_name}" if db_name else None
    server = None
    try:
        server = _start_server(
            store, tmp, database_url, extra_args=("--fixtures", str(fixtures), "--enable-faults")
        )
        yield server, fixtures
    finally:
        if server is not None:
            _stop(server.process)
        if db_name is not None:
            _drop_pg_database(db_name)


def client_for(server, **kwargs) -> LlamaCloud:
    kwargs.setdefault("timeout", 30.0)
    return LlamaCloud(api_key="key-a", base_url=server.base_url, **kwargs)


def upload(client: LlamaCloud, name: str, content: bytes = INVOICE) -> str:
    return client.files.create(file=(name, content, "text/plain"), purpose="classify").id


def run(client: LlamaCloud, file_id: str, rules=RULES):
    return client.classify.run(
        file_input=file_id, configuration={"rules": rules},
        polling_interval=0.1, backoff="constant", polling_timeout=30,
    )


def test_forced_result(fake_cloud):
    server, _ = fake_cloud
    client = client_for(server)
    job = run(client, upload(client, "forced-1.txt"))
    assert job.status == "COMPLETED"
    assert (job.result.type, job.result.confidence, job.result.reasoning) == ("contract", 0.42, "scripted")


def test_forced_failure(fake_cloud):
    server, _ = fake_cloud
    client = client_for(server)
    file_id = upload(client, "broken-1.txt")
    with pytest.raises(PollingError, match="scanner jammed"):
        run(client, file_id)
    jobs = list(client.classify.list(status="FAILED"))
    assert any(j.error_message == "scripted failure: the scanner jammed" for j in jobs)


def test_delay_keeps_the_job_running(fake_cloud):
    server, _ = fake_cloud
    client = client_for(server)
    job = client.classify.create(file_input=upload(client, "slow-1.txt"), configuration={"rules": RULES})
    seen = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = client.classify.get(job.id).status
        seen.add(status)
        if status == "COMPLETED":
            break
        time.sleep(0.1)
    assert "RUNNING" in seen, f"the delay should be observable as RUNNING, saw {seen}"
    assert client.classify.get(job.id).result.type == "invoice", "after the delay the backend answers"


def test_match_by_content_hash_and_rule_types(fake_cloud):
    server, _ = fake_cloud
    client = client_for(server)
    by_hash = run(client, upload(client, "anything.txt", SHA_MATCHED))
    assert (by_hash.result.type, by_hash.result.reasoning) == (None, "scripted by hash")
    memo_rules = [{"type": "memo", "description": "an internal memo between members of staff"}]
    by_rules = run(client, upload(client, "plain.txt"), memo_rules)
    assert by_rules.result.type == "memo"


def test_unmatched_documents_reach_the_classifier(fake_cloud):
    server, _ = fake_cloud
    client = client_for(server)
    job = run(client, upload(client, "ordinary.txt"))
    assert job.result.type == "invoice"
    assert "scripted" not in job.result.reasoning


def test_fixtures_file_is_reloaded_when_it_changes(fake_cloud):
    server, fixtures = fake_cloud
    client = client_for(server)
    original = fixtures.read_text()
    try:
        fixtures.write_text(json.dumps(fixtures_document(forced_type="invoice")))
        later = time.time() + 5
        os.utime(fixtures, (later, later))
        job = run(client, upload(client, "forced-2.txt"))
        assert job.result.type == "invoice", "the changed fixture applies without a restart"
    finally:
        fixtures.write_text(original)
        os.utime(fixtures, (time.time() + 10, time.time() + 10))


def test_sdk_retries_429_honouring_retry_after(fake_cloud):
    server, _ = fake_cloud
    file_id = upload(client_for(server), "ordinary-2.txt")
    # Two scripted 429s with Retry-After: 1 each. One retry is not enough; two are.
    short = client_for(server, max_retries=1, default_headers={"x-test-case": "limited-twice-a"})
    with pytest.raises(RateLimitError):
        short.classify.create(file_input=file_id, configuration={"rules": RULES})
    patient = client_for(server, max_retries=2, default_headers={"x-test-case": "limited-twice-b"})
    started = time.monotonic()
    job = patient.classify.create(file_input=file_id, configuration={"rules": RULES})
    elapsed = time.monotonic() - started
    assert job.status == "PENDING"
    assert elapsed >= 1.8, f"two Retry-After: 1 answers should make the SDK wait about 2 s, took {elapsed:.2f}s"


def test_sdk_gives_up_after_max_retries(fake_cloud):
    server, _ = fake_cloud
    file_id = upload(client_for(server), "ordinary-3.txt")
    client = client_for(server, max_retries=2, default_headers={"x-test-case": "always-limited"})
    with pytest.raises(RateLimitError) as raised:
        client.classify.create(file_input=file_id, configuration={"rules": RULES})
    assert raised.value.status_code == 429
    assert "Injected fault" in str(raised.value.body)


def test_sdk_retries_500(fake_cloud):
    server, _ = fake_cloud
    file_id = upload(client_for(server), "ordinary-4.txt")
    with pytest.raises(InternalServerError):
        client_for(server, max_retries=0, default_headers={"x-test-case": "flaky"}).classify.create(
            file_input=file_id, configuration={"rules": RULES})
    job = client_for(server, max_retries=1, default_headers={"x-test-case": "flaky"}).classify.create(
        file_input=file_id, configuration={"rules": RULES})
    assert job.status == "PENDING", "the SDK retried the second scripted 500 and then got through"


def test_sdk_retries_503(fake_cloud):
    server, _ = fake_cloud
    file_id = upload(client_for(server), "ordinary-6.txt")
    with pytest.raises(InternalServerError) as raised:
        client_for(server, max_retries=0, default_headers={"x-test-case": "unavailable"}).classify.create(
            file_input=file_id, configuration={"rules": RULES})
    assert raised.value.status_code == 503
    job = client_for(server, max_retries=1, default_headers={"x-test-case": "unavailable"}).classify.create(
        file_input=file_id, configuration={"rules": RULES})
    assert job.status == "PENDING", "the SDK retried the second scripted 503 and then got through"


def test_4xx_faults_are_not_retried(fake_cloud):
    server, _ = fake_cloud
    client = client_for(server, default_headers={"x-test-case": "bad-once"})
    with pytest.raises(BadRequestError, match="scripted bad request"):
        upload(client, "ordinary-5.txt")
    assert upload(client, "ordinary-5.txt").startswith("dfl-"), "the fault fired once, the SDK did not retry it"


THREE_PAGES = make_pdf([
    ["SERVICE AGREEMENT", "This agreement is made between the parties ACME and Beta."],
    ["Weather outlook", "Sunny spells with light clouds over the hills."],
    ["INVOICE No. 7", "Total due: 75.00 EUR", "Payment within 14 days"],
])
ADE_CLASSES = [
    {"class": "invoice", "description": "An invoice with an invoice number, a total due and payment terms"},
    {"class": "contract", "description": "An agreement between parties with terms, obligations and signatures"},
]


def ade_for(server) -> LandingAIADE:
    return LandingAIADE(apikey="key-a", base_url=server.base_url, timeout=30.0)


def test_page_level_outcomes_are_scripted_per_page(fake_cloud, tmp_path):
    server, _ = fake_cloud
    document = tmp_path / "paged-1.pdf"
    document.write_bytes(THREE_PAGES)
    with ade_for(server) as ade:
        response = ade.classify(document=document, classes=ADE_CLASSES)
    answers = [(p.page, p.class_, p.reason) for p in response.classification]
    assert answers == [
        (0, "contract", "scripted page 0"),
        (1, "invoice", "scripted other pages"),
        (2, "unknown", "scripted page 2"),
    ]


def test_pages_a_fixture_does_not_name_reach_the_classifier(fake_cloud, tmp_path):
    server, _ = fake_cloud
    document = tmp_path / "partly-1.pdf"
    document.write_bytes(THREE_PAGES)
    with ade_for(server) as ade:
        response = ade.classify(document=document, classes=ADE_CLASSES)
    answers = [(p.class_, p.reason) for p in response.classification]
    assert answers[1] == ("invoice", "scripted page 1"), "page 1 (weather) is forced to invoice"
    assert answers[0][0] == "contract" and "scripted" not in answers[0][1]
    assert answers[2][0] == "invoice" and "scripted" not in answers[2][1]


def test_page_level_scripted_failure_is_a_422(fake_cloud, tmp_path):
    server, _ = fake_cloud
    document = tmp_path / "broken-1.pdf"
    document.write_bytes(THREE_PAGES)
    with ade_for(server) as ade, pytest.raises(UnprocessableEntityError, match="scanner jammed"):
        ade.classify(document=document, classes=ADE_CLASSES)


def test_ade_sdk_retries_429_by_default(fake_cloud, tmp_path):
    server, _ = fake_cloud
    document = tmp_path / "paged-2.pdf"
    document.write_bytes(THREE_PAGES)
    client = LandingAIADE(apikey="key-a", base_url=server.base_url, timeout=30.0,
                          default_headers={"x-test-case": "ade-limited"})
    started = time.monotonic()
    with client as ade:
        response = ade.classify(document=document, classes=ADE_CLASSES)
    elapsed = time.monotonic() - started
    assert [p.reason for p in response.classification][0] == "scripted page 0"
    assert elapsed >= 1.8, f"two 429s with Retry-After: 1 under the default 2 retries, took {elapsed:.2f}s"


def reading_model(n: int, body: dict):
    prompt = prompt_text(body)
    label = "invoice" if "INVOICE" in prompt else "contract" if "AGREEMENT" in prompt else None
    return answer(label, 0.77, f"the model saw {label}")


def test_model_exchanges_recorded_once_replay_without_the_model(tmp_path):
    model = FakeModel(reading_model)
    recording = tmp_path / "model-recording.jsonl"
    documents = [("bill.txt", INVOICE), ("terms.txt", b"SERVICE AGREEMENT between ACME and Beta.\n")]

    def classify_all(server):
        client = client_for(server)
        return [run(client, upload(client, name, content)) for name, content in documents]

    def start(name, *args):
        directory = tmp_path / name
        directory.mkdir()
        return _start_server("sqlite", directory, None, extra_args=(
            "--classifier", "openai", "--model", "fake-model", *args))

    server = start("record", "--openai-base-url", model.url,
                   "--openai-api-key", "sk-never-written", "--model-record", str(recording))
    try:
        recorded = classify_all(server)
    finally:
        _stop(server.process)
        model.close()
    assert [j.result.type for j in recorded] == ["invoice", "contract"]
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    assert len(lines) == len(model.requests) == 2
    assert "sk-never-written" not in recording.read_text()

    server = start("replay", "--model-replay", str(recording))
    try:
        replayed = classify_all(server)
        assert [(j.status, j.result.type, j.result.confidence, j.result.reasoning) for j in replayed] == [
            (j.status, j.result.type, j.result.confidence, j.result.reasoning) for j in recorded]
        client = client_for(server)
        with pytest.raises(PollingError, match="No recorded model exchange matched"):
            run(client, upload(client, "memo.txt", b"Minutes of the staff meeting.\n"))
    finally:
        _stop(server.process)
