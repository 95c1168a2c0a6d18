"""Parse jobs (`client.parsing.*`) and classify on a parse job (`file_input="pjb-…"`), and
`expand=usage`, through the llama-cloud 2.19.0 SDK.
"""

from __future__ import annotations

import pytest
from llama_cloud import BadRequestError, NotFoundError, PollingError, UnprocessableEntityError

from test_v2_sdk import make_pdf

INVOICE_RULE = {
    "type": "invoice",
    "description": "a bill requesting payment, with invoice number, line items and a total due",
}
CONTRACT_RULE = {
    "type": "contract",
    "description": "a legal agreement between parties with terms, obligations and signatures",
}
CONFIG = {"rules": [INVOICE_RULE, CONTRACT_RULE]}
CONTRACT_PAGE = [
    "SERVICE AGREEMENT",
    "This agreement is made between Acme GmbH and Beta Ltd.",
    "The parties agree to the terms and obligations below.",
    "Signed by both parties.",
]
INVOICE_PAGE = [
    "INVOICE No. 2024-117",
    "Bill to: Acme GmbH",
    "Consulting, 10 hours at 120 EUR",
    "Total due: 1,200.00 EUR. Please pay this invoice within 30 days.",
]
TWO_PAGES = make_pdf([CONTRACT_PAGE, INVOICE_PAGE])
WAIT = {"polling_interval": 0.1, "timeout": 30}
CLASSIFY_WAIT = {"polling_interval": 0.1, "backoff": "constant", "timeout": 30}


@pytest.fixture(scope="module")
def two_pages(client):
    return client.files.create(file=("mixed.pdf", TWO_PAGES, "application/pdf"), purpose="parse")


def test_parse_job_round_trip(client, client_b, two_pages):
    job = client.parsing.create(tier="fast", version="latest", file_id=two_pages.id)
    assert job.id.startswith("pjb-") and job.status in {"PENDING", "RUNNING", "COMPLETED"}
    assert job.project_id == "prj-a" and job.tier == "fast" and job.name == "mixed.pdf"
    done = client.parsing.wait_for_completion(job.id, **WAIT)
    assert done.status == "COMPLETED"

    got = client.parsing.get(job.id, expand=["text", "markdown"])
    assert got.job.status == "COMPLETED"
    assert [p.page_number for p in got.text.pages] == [1, 2]
    assert "SERVICE AGREEMENT" in got.text.pages[0].text
    assert "INVOICE" in got.text.pages[1].text
    assert "INVOICE" in got.text_full and "AGREEMENT" in got.text_full
    assert [p.page_number for p in got.markdown.pages] == [1, 2]
    assert got.job.usage.credits == 2, "one credit per parsed page"
    assert client.parsing.get(job.id).text is None, "no expand, no text"

    only_second = client.parsing.parse(
        tier="fast", version="latest", file_id=two_pages.id,
        page_ranges={"target_pages": "2"}, expand=["text"], polling_interval=0.1,
    )
    assert [p.page_number for p in only_second.text.pages] == [2]

    assert job.id in [j.id for j in client.parsing.list(status="COMPLETED", page_size=1)]
    with pytest.raises(NotFoundError):
        client_b.parsing.get(job.id)
    with pytest.raises(UnprocessableEntityError):
        client.parsing.create(tier="fast", version="latest", file_id=two_pages.id,
                              page_ranges={"target_pages": "0"})
    with pytest.raises(NotFoundError):
        client.parsing.create(tier="fast", version="latest", file_id="dfl-00000000-0000-4000-8000-000000000000")


def test_classify_a_parse_job_without_extracting_again(client, client_b, two_pages):
    parse = client.parsing.parse(tier="fast", version="latest", file_id=two_pages.id,
                                 expand=["text"], polling_interval=0.1)
    # Delete a copy of the file the parse job read: classify must use the stored text.
    copy = client.files.create(file=("copy.pdf", TWO_PAGES, "application/pdf"), purpose="parse")
    parse_of_copy = client.parsing.create(tier="fast", version="latest", file_id=copy.id)
    client.parsing.wait_for_completion(parse_of_copy.id, **WAIT)
    client.files.delete(copy.id)

    for parse_job_id in [parse.job.id, parse_of_copy.id]:
        job = client.classify.create(
            file_input=parse_job_id,
            configuration={**CONFIG, "parsing_configuration": {"target_pages": "2"}},
        )
        assert job.document_input_type == "parse_job_id"
        assert job.file_input == parse_job_id and job.parse_job_id == parse_job_id
        done = client.classify.wait_for_completion(job.id, **CLASSIFY_WAIT)
        assert done.status == "COMPLETED", done.error_message
        assert done.result.type == "invoice", "page 2 of the parsed text is the invoice"

    # The deprecated parse_job_id field works too, and page 1 is the contract.
    job = client.classify.create(parse_job_id=parse.job.id,
                                 configuration={**CONFIG, "parsing_configuration": {"target_pages": "1"}})
    done = client.classify.wait_for_completion(job.id, **CLASSIFY_WAIT)
    assert done.result.type == "contract" and done.document_input_type == "parse_job_id"

    with pytest.raises(NotFoundError):
        client_b.classify.create(file_input=parse.job.id, configuration=CONFIG)
    with pytest.raises(NotFoundError):
        client.classify.create(file_input="pjb-00000000-0000-4000-8000-000000000000", configuration=CONFIG)


def test_classify_waits_for_a_running_parse_job(client, two_pages):
    parse = client.parsing.create(tier="fast", version="latest", file_id=two_pages.id)
    job = client.classify.create(file_input=parse.id, configuration=CONFIG)
    done = client.classify.wait_for_completion(job.id, **CLASSIFY_WAIT)
    assert done.status == "COMPLETED" and done.result is not None
    assert client.parsing.get(parse.id).job.status == "COMPLETED"


def test_a_failed_parse_job_cannot_be_classified(client):
    broken = client.files.create(file=("broken.pdf", b"%PDF-1.4 garbage", "application/pdf"), purpose="parse")
    parse = client.parsing.create(tier="fast", version="latest", file_id=broken.id)
    with pytest.raises(PollingError):
        client.parsing.wait_for_completion(parse.id, **WAIT)
    failed = client.parsing.get(parse.id).job
    assert failed.status == "FAILED" and failed.error_message
    with pytest.raises(BadRequestError):
        client.classify.create(file_input=parse.id, configuration=CONFIG)
    assert client.parsing.delete(parse.id).id == parse.id
    with pytest.raises(NotFoundError):
        client.parsing.get(parse.id)


def test_usage(client, two_pages):
    direct = client.classify.run(file_input=two_pages.id, configuration=CONFIG,
                                 polling_interval=0.1, backoff="constant", polling_timeout=30)
    usage = client.classify.get(direct.id, expand=["usage"]).usage
    assert usage.credits == 2 and usage.parse_credits == 2, f"2 pages in FAST mode: {usage}"
    assert client.classify.get(direct.id).usage is None, "usage only with expand=usage"

    parse = client.parsing.parse(tier="fast", version="latest", file_id=two_pages.id,
                                 expand=["text"], polling_interval=0.1)
    on_parse = client.classify.run(file_input=parse.job.id, configuration=CONFIG,
                                   polling_interval=0.1, backoff="constant", polling_timeout=30)
    usage = client.classify.get(on_parse.id, expand=["usage"]).usage
    assert usage.credits == 0 and usage.parse_credits is None, (
        f"a job on the caller's parse job bills nothing of its own: {usage}"
    )

    pending = client.classify.create(
        file_input=client.files.create(file=("slow.txt", b"INVOICE total due 5 EUR", "text/plain"), purpose="classify").id,
        configuration=CONFIG,
    )
    early = client.classify.get(pending.id, expand=["usage"])
    if early.status in {"PENDING", "RUNNING"}:
        assert early.usage.credits is None, "null until billing has recorded it"


def test_parse_an_upload(client):
    job = client.parsing.create(
        tier="fast", version="latest", upload_file=("mixed.pdf", TWO_PAGES, "application/pdf"),
        page_ranges={"max_pages": 1},
    )
    assert job.id.startswith("pjb-") and job.name == "mixed.pdf"
    client.parsing.wait_for_completion(job.id, **WAIT)
    got = client.parsing.get(job.id, expand=["text"])
    assert [p.page_number for p in got.text.pages] == [1], "max_pages applies to uploads too"
    classified = client.classify.run(file_input=job.id, configuration=CONFIG,
                                     polling_interval=0.1, backoff="constant", polling_timeout=30)
    assert classified.result.type == "contract"


def test_list_versions(client):
    versions = client.parsing.list_versions()
    for tier in ["fast", "cost_effective", "agentic", "agentic_plus"]:
        assert getattr(versions.latest, tier) in getattr(versions, tier)
