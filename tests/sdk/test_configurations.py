"""Saved configurations (`client.configurations.*`), classify with `configuration_id`, and
idempotent creates (`transaction_id`) under concurrency, through the llama-cloud 2.19.0 SDK.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from llama_cloud import BadRequestError, ConflictError, NotFoundError, UnprocessableEntityError

from conftest import PG_HOST, PG_PORT, PG_USER

INVOICE_RULE = {
    "type": "invoice",
    "description": "a bill requesting payment, with invoice number, line items and a total due",
}
CONTRACT_RULE = {
    "type": "contract",
    "description": "a legal agreement between parties with terms, obligations and signatures",
}
PARAMETERS = {
    "product_type": "classify_v2",
    "rules": [INVOICE_RULE, CONTRACT_RULE],
    "parsing_configuration": {"max_pages": 3},
}
INVOICE_TXT = (
    b"INVOICE No. 2024-117\nBill to: Acme GmbH\nLine items: consulting 10 h at 120 EUR\n"
    b"Total due: 1,200.00 EUR\nPayment within 30 days of the invoice date.\n"
)
WAIT = {"polling_interval": 0.1, "backoff": "constant", "timeout": 30}


@pytest.fixture(scope="module")
def invoice(client):
    return client.files.create(file=("invoice.txt", INVOICE_TXT, "text/plain"), purpose="classify")


def _unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def test_configuration_round_trip(client, client_b):
    name = _unique("intake-router")
    created = client.configurations.create(name=name, parameters=PARAMETERS)
    assert created.id.startswith("cfg-")
    assert created.name == name
    assert created.product_type == "classify_v2"
    assert created.parameters.product_type == "classify_v2"
    assert [r.type for r in created.parameters.rules] == ["invoice", "contract"]
    assert created.parameters.parsing_configuration.max_pages == 3
    assert created.version

    got = client.configurations.retrieve(created.id)
    assert got.id == created.id and got.parameters == created.parameters

    # Create is an upsert on name + product type: same id, new parameters.
    again = client.configurations.create(
        name=name, parameters={**PARAMETERS, "rules": [INVOICE_RULE]}
    )
    assert again.id == created.id
    assert [r.type for r in again.parameters.rules] == ["invoice"]

    renamed = client.configurations.update(created.id, name=name + "-renamed")
    assert renamed.name == name + "-renamed"
    assert [r.type for r in renamed.parameters.rules] == ["invoice"], "update changes only what is sent"
    updated = client.configurations.update(created.id, parameters=PARAMETERS)
    assert updated.name == name + "-renamed"
    assert [r.type for r in updated.parameters.rules] == ["invoice", "contract"]

    listed = [c.id for c in client.configurations.list(name=name + "-renamed")]
    assert listed == [created.id]
    assert created.id in [c.id for c in client.configurations.list(product_type=["classify_v2"])]
    assert created.id not in [c.id for c in client.configurations.list(product_type=["parse_v2"])]

    # Another project sees nothing.
    with pytest.raises(NotFoundError):
        client_b.configurations.retrieve(created.id)
    with pytest.raises(NotFoundError):
        client_b.configurations.update(created.id, name="stolen")
    with pytest.raises(NotFoundError):
        client_b.configurations.delete(created.id)
    assert created.id not in [c.id for c in client_b.configurations.list()]

    client.configurations.delete(created.id)
    with pytest.raises(NotFoundError):
        client.configurations.retrieve(created.id)


def test_configuration_validation(client):
    bad = [
        {"product_type": "classify_v2", "rules": []},
        {"product_type": "classify_v2", "rules": [{"type": "invoice", "description": "short"}]},
        {"product_type": "classify_v2", "rules": [INVOICE_RULE], "parsing_configuration": {"target_pages": "0"}},
        {"product_type": "no_such_product", "rules": [INVOICE_RULE]},
    ]
    for parameters in bad:
        with pytest.raises(UnprocessableEntityError) as caught:
            client.configurations.create(name=_unique("bad"), parameters=parameters)
        assert isinstance(caught.value.body, dict) and isinstance(caught.value.body["detail"], list)


def test_configurations_paginate(client):
    prefix = _unique("page")
    ids = [client.configurations.create(name=f"{prefix}-{n}", parameters=PARAMETERS).id for n in range(5)]
    pages = list(client.configurations.list(page_size=2).iter_pages())
    seen = [c.id for page in pages for c in page.items]
    assert len(seen) == len(set(seen)), "a configuration appeared on two pages"
    assert [i for i in seen if i in ids] == list(reversed(ids)), "newest first"
    with pytest.raises(BadRequestError):
        client.configurations.list(page_size=2, page_token="forged.token")


def test_rename_onto_existing_name_conflicts(client):
    a = client.configurations.create(name=_unique("a"), parameters=PARAMETERS)
    b = client.configurations.create(name=_unique("b"), parameters=PARAMETERS)
    with pytest.raises(ConflictError):
        client.configurations.update(b.id, name=a.name)


def test_classify_with_a_saved_configuration(client, client_b, invoice):
    config = client.configurations.create(name=_unique("classify"), parameters=PARAMETERS)
    job = client.classify.create(file_input=invoice.id, configuration_id=config.id)
    assert job.configuration_id == config.id
    assert [r.type for r in job.configuration.rules] == ["invoice", "contract"], (
        "the job reports the rules it used"
    )
    assert job.configuration.parsing_configuration.max_pages == 3
    done = client.classify.wait_for_completion(job.id, **WAIT)
    assert done.status == "COMPLETED" and done.result.type == "invoice"

    other = client.classify.create(file_input=invoice.id, configuration={"rules": [INVOICE_RULE]})
    filtered = [j.id for j in client.classify.list(configuration_id=config.id)]
    assert filtered == [job.id], f"configuration_id filter: {filtered}"
    assert other.id not in filtered

    # run() with configuration_id, as a user would.
    ran = client.classify.run(
        file_input=invoice.id, configuration_id=config.id,
        polling_interval=0.1, backoff="constant", polling_timeout=30,
    )
    assert ran.status == "COMPLETED" and ran.configuration_id == config.id

    # Another project's configuration is unknown; unknown ids are 404; both or neither is refused.
    with pytest.raises(NotFoundError):
        client_b.classify.create(file_input=invoice.id, configuration_id=config.id)
    with pytest.raises(NotFoundError):
        client.classify.create(file_input=invoice.id, configuration_id="cfg-00000000-0000-4000-8000-000000000000")
    with pytest.raises((BadRequestError, UnprocessableEntityError)):
        client.classify.create(file_input=invoice.id, configuration_id=config.id, configuration={"rules": [INVOICE_RULE]})
    with pytest.raises((BadRequestError, UnprocessableEntityError)):
        client.classify.create(file_input=invoice.id)

    # A parse configuration is not a classify configuration.
    parse_config = client.configurations.create(
        name=_unique("parse"), parameters={"product_type": "parse_v2", "tier": "fast", "version": "latest"}
    )
    assert parse_config.product_type == "parse_v2"
    with pytest.raises(NotFoundError):
        client.classify.create(file_input=invoice.id, configuration_id=parse_config.id)


def _task_count(server, job_id: str) -> int:
    """Reads the server's database directly: the SDK has no view of tasks."""
    if server.database_url is None:
        with sqlite3.connect(server.tmp_dir / "classifyd.db") as db:
            return db.execute("SELECT COUNT(*) FROM tasks WHERE job_id = ?", (job_id,)).fetchone()[0]
    database = server.database_url.rsplit("/", 1)[1]
    done = subprocess.run(
        ["psql", "-w", "-X", "-Atq", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", database,
         "-c", f"SELECT COUNT(*) FROM tasks WHERE job_id = '{job_id}'"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return int(done.stdout.strip())


def test_concurrent_creates_with_one_transaction_id_make_one_job(client, classifyd_server, invoice):
    tx = _unique("tx-race")
    start = threading.Barrier(20)

    def create(_):
        start.wait()
        return client.classify.create(
            file_input=invoice.id, configuration={"rules": [INVOICE_RULE]}, transaction_id=tx
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        jobs = list(pool.map(create, range(20)))
    ids = {job.id for job in jobs}
    assert len(ids) == 1, f"20 racing creates with one transaction_id made {len(ids)} jobs"
    job_id = ids.pop()
    assert all(job.transaction_id == tx for job in jobs)
    assert _task_count(classifyd_server, job_id) == 1, "the job must have exactly one task"
    done = client.classify.wait_for_completion(job_id, **WAIT)
    assert done.status == "COMPLETED"
    # A later retry still answers with the original, finished job.
    again = client.classify.create(file_input=invoice.id, configuration={"rules": [CONTRACT_RULE]}, transaction_id=tx)
    assert again.id == job_id and again.status == "COMPLETED"
    assert [r.type for r in again.configuration.rules] == ["invoice"], "the original body wins"


def test_page_tokens_are_opaque_and_tamper_safe(client, client_b, invoice):
    for _ in range(3):
        client.classify.create(file_input=invoice.id, configuration={"rules": [INVOICE_RULE]})
    token = client.classify.list(page_size=1).next_page_token
    assert token
    payload, tag = token.split(".")
    flipped = tag[:-1] + ("A" if tag[-1] != "A" else "B")
    for forged in [f"{payload}.{flipped}", f"{payload[::-1]}.{tag}", "garbage", "a.b.c"]:
        with pytest.raises(BadRequestError):
            client.classify.list(page_size=1, page_token=forged)
    with pytest.raises(BadRequestError):
        client_b.classify.list(page_size=1, page_token=token)  # another project's token
    with pytest.raises(BadRequestError):
        client.parsing.list(page_size=1, page_token=token)  # another list's token
    with pytest.raises(BadRequestError):
        client.webhook_configs.list_paginated(page_size=1, page_token=token)
