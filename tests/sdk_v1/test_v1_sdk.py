"""The deprecated v1 classifier API as its clients drive it.

`LlamaClassify` (llama-cloud-services 0.6.94) uploads through `/api/v1/files`, creates one job
for many files, polls `/api/v1/classifier/jobs/{id}` and reads `/results`; the raw Fern SDK
(llama-cloud 0.1.46) parses every response strictly (pydantic), so a missing field, a wrong
type or a status outside v1's enum (e.g. RUNNING) fails these tests.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from llama_cloud.client import AsyncLlamaCloud, LlamaCloud
from llama_cloud.core.api_error import ApiError
from llama_cloud.errors import UnprocessableEntityError
from llama_cloud.types import (
    ClassifierRule,
    ClassifyMode,
    ClassifyParsingConfiguration,
    ParserLanguages,
    StatusEnum,
)
from llama_cloud_services.beta.classifier.client import LlamaClassify

RULES = [
    ClassifierRule(type="invoice", description="An invoice with an invoice number, line items and a total due"),
    ClassifierRule(type="contract", description="An agreement between parties with terms, obligations and signatures"),
    ClassifierRule(type="receipt", description="A shop receipt: proof of payment with cashier, change and card"),
]

DOCUMENTS = {
    "invoice.txt": (
        "INVOICE No. 2024-001\nBill to: Example Corp\nLine items: consulting 10 h\n"
        "Total due: 1000 EUR\nPayment within 30 days\n",
        "invoice",
    ),
    "agreement.md": (
        "# SERVICE AGREEMENT\n\nThis agreement is made between the parties ACME and Beta.\n\n"
        "## Terms\nObligations of each party.\n\n## Signatures\nBoth parties sign below.\n",
        "contract",
    ),
    "receipt.txt": (
        "CORNER SHOP\nReceipt 0042\nCashier: Ann\nMilk 1.20\nBread 2.10\nPaid by card 3.30\n"
        "Change 0.00\nThank you for your purchase\n",
        "receipt",
    ),
}

# Files named slow-* take 1.5 s each in the server (scripted delay), to observe a running job;
# creates carrying an `x-test-case` header meet the scripted API faults of the same file.
SERVER_ENV = {
    "CLASSIFYD_FIXTURES": str(Path(__file__).resolve().parents[1] / "fixtures" / "v1-faults.json"),
    "CLASSIFYD_ENABLE_FAULTS": "true",
}
SLOW_DELAY_S = 1.5

TERMINAL = {StatusEnum.SUCCESS, StatusEnum.ERROR, StatusEnum.PARTIAL_SUCCESS, StatusEnum.CANCELLED}


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("v1-docs")
    paths = {}
    for name, (text, _) in DOCUMENTS.items():
        paths[name] = folder / name
        paths[name].write_text(text)
    (folder / "empty.txt").write_text("")
    paths["empty.txt"] = folder / "empty.txt"
    return paths


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[LlamaCloud]:
    yield LlamaCloud(token="key-a", base_url=base_url, timeout=30)


def _classify(base_url: str) -> LlamaClassify:
    # A fresh client per call: LlamaClassify.classify runs asyncio.run, and an async httpx
    # client cannot outlive the event loop it first ran in.
    return LlamaClassify(AsyncLlamaCloud(token="key-a", base_url=base_url, timeout=30), polling_interval=0.2)


def _upload(client: LlamaCloud, name: str, content: bytes):
    handle = io.BytesIO(content)
    handle.name = name
    return client.files.upload_file(upload_file=handle, external_file_id=f"ext/{name}")


def _wait(client: LlamaCloud, job_id: str, timeout_s: float = 45.0):
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.classifier.get_classify_job(job_id)
        if job.status in TERMINAL:
            return job
        assert job.status == StatusEnum.PENDING
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.2)


def test_llama_classify_three_files_end_to_end(base_url, documents):
    files = [str(documents[name]) for name in DOCUMENTS]
    results = _classify(base_url).classify(
        RULES, files=files, parsing_configuration=ClassifyParsingConfiguration(lang="en", max_pages=3)
    )
    assert len(results.items) == 3
    by_name = {item.file.name: item for item in results.items}
    assert set(by_name) == set(DOCUMENTS)
    for name, (_, expected) in DOCUMENTS.items():
        item = by_name[name]
        assert item.file_id == item.file.id
        assert item.file.external_file_id == str(documents[name])
        assert item.result is not None, name
        assert item.result.type == expected, item.result.reasoning
        assert 0.0 <= item.result.confidence <= 1.0
        assert item.result.reasoning
    assert len({item.id for item in results.items}) == 3


def test_llama_classify_partial_success_and_error(base_url, documents):
    partial = _classify(base_url).classify(
        RULES, files=[str(documents["invoice.txt"]), str(documents["empty.txt"])], raise_on_error=False
    )
    by_name = {item.file.name: item for item in partial.items}
    assert by_name["invoice.txt"].result.type == "invoice"
    assert by_name["empty.txt"].result is None
    with pytest.raises(ValueError, match="Error classifying files"):
        _classify(base_url).classify(RULES, files=[str(documents["empty.txt"])])


def test_raw_sdk_files_and_job_lifecycle(client, documents):
    invoice = _upload(client, "invoice.txt", documents["invoice.txt"].read_bytes())
    agreement = _upload(client, "agreement.md", documents["agreement.md"].read_bytes())
    assert invoice.name == "invoice.txt" and invoice.project_id == "prj-a"
    assert invoice.external_file_id == "ext/invoice.txt"
    assert client.files.get_file(invoice.id).id == invoice.id
    content = client.files.read_file_content(invoice.id)
    assert content.url and content.expires_at

    created = client.classifier.create_classify_job(
        file_ids=[invoice.id, agreement.id],
        rules=RULES,
        mode=ClassifyMode.FAST,
        parsing_configuration=ClassifyParsingConfiguration(lang=ParserLanguages.RS_LATIN, target_pages=[0]),
        project_id="prj-a",
    )
    assert created.status == StatusEnum.PENDING
    assert created.project_id == "prj-a" and created.user_id
    assert [r.type for r in created.rules] == ["invoice", "contract", "receipt"]
    assert created.parsing_configuration.target_pages == [0]
    assert created.parsing_configuration.lang == ParserLanguages.RS_LATIN

    done = _wait(client, created.id)
    assert done.status == StatusEnum.SUCCESS, done.error_message
    assert done.error_message is None
    results = client.classifier.get_classification_job_results(created.id)
    assert results.total_size == 2
    assert [item.file_id for item in results.items] == [invoice.id, agreement.id]
    assert [item.result.type for item in results.items] == ["invoice", "contract"]
    assert all(item.classify_job_id == created.id for item in results.items)

    listed = client.classifier.list_classify_jobs(page_size=1000)
    assert created.id in {job.id for job in listed.items}


def test_list_paginates(client, documents):
    invoice = _upload(client, "invoice.txt", documents["invoice.txt"].read_bytes())
    ids = {
        client.classifier.create_classify_job(file_ids=[invoice.id], rules=RULES).id for _ in range(3)
    }
    seen, token = [], None
    while True:
        page = client.classifier.list_classify_jobs(page_size=2, page_token=token)
        assert len(page.items) <= 2
        seen += [job.id for job in page.items]
        token = page.next_page_token
        if not token:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "kwargs, loc",
    [
        ({"mode": ClassifyMode.MULTIMODAL}, ["body", "mode"]),
        ({"parsing_configuration": ClassifyParsingConfiguration(target_pages=[-1])},
         ["body", "parsing_configuration", "target_pages"]),
        ({"rules": [ClassifierRule(type="invoice", description="short")]}, ["body", "rules", 0, "description"]),
        ({"rules": []}, ["body", "rules"]),
        ({"file_ids": []}, ["body", "file_ids"]),
    ],
)
def test_invalid_jobs_are_422_in_fastapi_shape(client, documents, kwargs, loc):
    invoice = _upload(client, "invoice.txt", documents["invoice.txt"].read_bytes())
    call = {"file_ids": [invoice.id], "rules": RULES, **kwargs}
    with pytest.raises(UnprocessableEntityError) as caught:
        client.classifier.create_classify_job(**call)
    errors = caught.value.body.detail
    assert [e.loc for e in errors] == [loc], errors
    assert errors[0].msg


def test_unknown_lang_is_422(base_url, documents, client):
    import httpx

    invoice = _upload(client, "invoice.txt", documents["invoice.txt"].read_bytes())
    response = httpx.post(
        f"{base_url}/api/v1/classifier/jobs",
        headers={"Authorization": "Bearer key-a"},
        json={
            "file_ids": [invoice.id],
            "rules": [r.dict() for r in RULES],
            "parsing_configuration": {"lang": "english"},
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "parsing_configuration", "lang"]


def test_unknown_ids_are_404(client, documents):
    with pytest.raises(ApiError) as caught:
        client.classifier.get_classify_job("00000000-0000-0000-0000-000000000000")
    assert caught.value.status_code == 404
    with pytest.raises(ApiError) as caught:
        client.classifier.get_classification_job_results("missing")
    assert caught.value.status_code == 404
    with pytest.raises(ApiError) as caught:
        client.classifier.create_classify_job(file_ids=["dfl-missing"], rules=RULES)
    assert caught.value.status_code == 404
    invoice = _upload(client, "invoice.txt", documents["invoice.txt"].read_bytes())
    client.files.delete_file(invoice.id)
    with pytest.raises(ApiError) as caught:
        client.files.get_file(invoice.id)
    assert caught.value.status_code == 404


def test_jobs_are_per_project(base_url, client, documents):
    invoice = _upload(client, "invoice.txt", documents["invoice.txt"].read_bytes())
    job = client.classifier.create_classify_job(file_ids=[invoice.id], rules=RULES)
    other = LlamaCloud(token="key-b", base_url=base_url, timeout=30)
    with pytest.raises(ApiError) as caught:
        other.classifier.get_classify_job(job.id)
    assert caught.value.status_code == 404
    with pytest.raises(ApiError) as caught:
        other.classifier.create_classify_job(file_ids=[invoice.id], rules=RULES)
    assert caught.value.status_code == 404


def test_a_jobs_files_run_concurrently_and_report_pending_meanwhile(client, documents):
    """Four 1.5 s files finish in well under 4 x 1.5 s (the server runs 4 workers), and while
    they run the strict SDK reads PENDING — v1 has no RUNNING."""
    text = documents["invoice.txt"].read_bytes()
    ids = [_upload(client, f"slow-{n}.txt", text).id for n in range(4)]
    started = time.monotonic()
    job = client.classifier.create_classify_job(file_ids=ids, rules=RULES)
    time.sleep(SLOW_DELAY_S / 2)
    assert client.classifier.get_classify_job(job.id).status == StatusEnum.PENDING
    done = _wait(client, job.id)
    elapsed = time.monotonic() - started
    assert done.status == StatusEnum.SUCCESS, done.error_message
    assert elapsed < 3 * SLOW_DELAY_S, f"4 files took {elapsed:.1f} s: not classified concurrently"
    results = client.classifier.get_classification_job_results(job.id)
    assert [item.file_id for item in results.items] == ids
    assert {item.result.type for item in results.items} == {"invoice"}


@pytest.mark.parametrize("case, status", [("v1-limited", 429), ("v1-unavailable", 503)])
def test_the_v1_client_does_not_retry_api_faults(base_url, client, documents, case, status):
    invoice = _upload(client, "invoice.txt", documents["invoice.txt"].read_bytes())
    faulty = LlamaCloud(token="key-a", base_url=base_url,
                        httpx_client=httpx.Client(timeout=30, headers={"x-test-case": case}))
    with pytest.raises(ApiError) as caught:
        faulty.classifier.create_classify_job(file_ids=[invoice.id], rules=RULES)
    assert caught.value.status_code == status
    # The fault was scripted once: a client that retried would have got through above.
    assert faulty.classifier.create_classify_job(file_ids=[invoice.id], rules=RULES).id
