"""The v2 SDK's classify flow through a model: classifyd runs with CLASSIFYD_CLASSIFIER=openai and
OPENAI_BASE_URL / OPENAI_API_KEY pointing at an OpenAI-compatible server (the fake in
fake_model.py), and the official llama_cloud client uploads, classifies and reads the usage.
The answer must be the model's, the model must have seen the rules and the document, and a
model that keeps failing must end the job FAILED with a message that says what it answered.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from llama_cloud import LlamaCloud, PollingError

from conftest import ClassifydServer, _create_pg_database, _drop_pg_database, _start_server, _stop
from conftest import PG_HOST, PG_PORT, PG_USER
from fake_model import FakeModel, answer, error, prompt_text

MODEL_KEY = "sk-fake-model-key-77"

RULES = [
    {"type": "invoice", "description": "a bill requesting payment, with an invoice number and a total due"},
    {"type": "contract", "description": "a legal agreement between parties with terms and signatures"},
]
CONFIG = {"rules": RULES}
POLL = {"polling_interval": 0.2, "backoff": "constant", "polling_timeout": 60}

# Reads like an invoice to any lexical classifier; the fake model answers "contract" below, so
# a "contract" result can only have come from the model.
DOCUMENT = (
    "INVOICE No. 2024-0777\nBill to: Example Corp\nLine items: consulting 12 h\n"
    "Total due: 1440.00 EUR\nPayment within 30 days\n"
)


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeModel]:
    with FakeModel(lambda n, body: answer("contract", 0.73)) as model:
        yield model


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def model_server(request, tmp_path_factory, fake_model: FakeModel) -> Iterator[ClassifydServer]:
    store = request.param
    db_name = _create_pg_database() if store == "postgres" else None
    database_url = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}" if db_name else None
    env = {
        "CLASSIFYD_CLASSIFIER": "openai",
        "OPENAI_BASE_URL": fake_model.url,
        "OPENAI_API_KEY": MODEL_KEY,
        "CLASSIFYD_MODEL": "fake-model-1",
        "CLASSIFYD_MODEL_MAX_RETRIES": "1",
        "CLASSIFYD_MODEL_RETRY_BASE_MS": "10",
    }
    server = None
    try:
        server = _start_server(store, tmp_path_factory.mktemp(f"model-{store}"), database_url, env)
        yield server
    finally:
        if server is not None:
            _stop(server.process)
        if db_name is not None:
            _drop_pg_database(db_name)


@pytest.fixture(scope="module")
def client(model_server: ClassifydServer) -> Iterator[LlamaCloud]:
    client = LlamaCloud(api_key="key-a", base_url=model_server.base_url, timeout=30.0,
                        _strict_response_validation=True)
    yield client
    client.close()


def _requests_about(fake_model: FakeModel, marker: str, since: int) -> list[dict]:
    """Requests since request number `since` (one fake serves both stores' servers)."""
    return [body for body in fake_model.requests[since:] if marker in prompt_text(body)]


def test_the_sdk_flow_classifies_through_the_model(client: LlamaCloud, fake_model: FakeModel):
    fake_model.script = lambda n, body: answer("contract", 0.73, "the fake model chose contract")
    since = len(fake_model.requests)
    uploaded = client.files.create(file=("bill.txt", DOCUMENT.encode(), "text/plain"), purpose="classify")
    job = client.classify.run(file_input=uploaded.id, configuration=CONFIG, **POLL)

    assert job.status == "COMPLETED"
    assert job.result.type == "contract", f"the result must be the model's answer: {job.result}"
    assert job.result.confidence == pytest.approx(0.73)
    assert job.result.reasoning == "the fake model chose contract"

    asked = _requests_about(fake_model, "INVOICE No. 2024-0777", since)
    assert len(asked) == 1, f"one model request per document, got {len(asked)}"
    body = asked[0]
    assert body["model"] == "fake-model-1"
    prompt = prompt_text(body)
    for rule in RULES:
        assert rule["type"] in prompt and rule["description"] in prompt, f"rule missing: {rule}"
    assert "Total due: 1440.00 EUR" in prompt, "the model must see the document's text"
    schema_types = body["response_format"]["json_schema"]["schema"]["properties"]["type"]["enum"]
    assert schema_types == ["invoice", "contract", None]
    authorizations = set(fake_model.authorizations[since:])
    assert authorizations == {f"Bearer {MODEL_KEY}"}, "OPENAI_API_KEY is the bearer token"

    usage = client.classify.get(job.id, expand=["usage"]).usage
    assert usage is not None and usage.credits == 1
    extra = usage.model_extra or {}
    assert extra.get("prompt_tokens") == len(prompt) // 4, f"the model's token counts are recorded: {extra}"
    assert extra.get("model_calls") == 1


def test_a_failing_model_fails_the_job_with_its_answer(client: LlamaCloud, fake_model: FakeModel):
    fake_model.script = lambda n, body: error(500, "the fake model is overloaded")
    since = len(fake_model.requests)
    text = "SERVICE AGREEMENT no. 55 between ACME and Beta.\nSignatures below.\n"
    uploaded = client.files.create(file=("deal.txt", text.encode(), "text/plain"), purpose="classify")
    with pytest.raises(PollingError):
        client.classify.run(file_input=uploaded.id, configuration=CONFIG, **POLL)
    jobs = [job for job in client.classify.list(status="FAILED") if job.file_input == uploaded.id]
    assert len(jobs) == 1, f"expected one FAILED job, got {jobs}"
    message = jobs[0].error_message or ""
    assert "HTTP 500" in message and "the fake model is overloaded" in message, message
    assert fake_model.url in message, f"the message names the model endpoint: {message}"
    assert MODEL_KEY not in message
    assert len(_requests_about(fake_model, "SERVICE AGREEMENT no. 55", since)) == 2, "one retry, then FAILED"
    assert jobs[0].result is None
