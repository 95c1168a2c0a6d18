"""openapi.yaml against the running server.

Checks the document's structure (OpenAPI 3.x, every operation has responses, every `$ref`
resolves) and then sends one request per documented path + method to a real classifyd:
the route must exist (not 405, not the unknown-route 404 `{"detail": "Not Found"}`), the
status it answers must be one the document lists for that operation, and a JSON answer must
carry the top-level fields its documented schema requires.

Requests use dummy ids, `{}` JSON bodies and an empty multipart form, so most answers are
404/400/422 — which is enough to prove the route is served and documented. The bearer key is
$CLASSIFYD_TEST_API_KEY, else the first key conftest.py configures the server with, else none
(then every /api/ route answers 401, which the document also lists).
Needs: pytest, pyyaml; the `base_url` fixture from conftest.py.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DUMMY_IDS = {
    "file_id": "dfl-00000000-0000-0000-0000-000000000000",
    "job_id": "cls-00000000-0000-0000-0000-000000000000",
}
DEFAULT_DUMMY_ID = "xxx-00000000-0000-0000-0000-000000000000"
UNKNOWN_ROUTE_BODY = {"detail": "Not Found"}
BOUNDARY = "classifyd-openapi-test-boundary"

# What the server serves today; the document must describe exactly these operations.
EXPECTED_OPERATIONS = {
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.yaml"),
    ("get", "/docs"),
    ("post", "/api/v1/beta/files"),
    ("get", "/api/v1/beta/files"),
    ("post", "/api/v1/beta/files/query"),
    ("get", "/api/v1/beta/files/{file_id}"),
    ("delete", "/api/v1/beta/files/{file_id}"),
    ("get", "/api/v1/beta/files/{file_id}/content"),
    ("get", "/api/v1/beta/files/{file_id}/download"),
    ("post", "/api/v2/classify"),
    ("get", "/api/v2/classify"),
    ("get", "/api/v2/classify/{job_id}"),
    ("delete", "/api/v2/classify/{job_id}"),
    ("post", "/api/v2/classify/{job_id}/cancel"),
    ("post", "/api/v1/beta/configurations"),
    ("get", "/api/v1/beta/configurations"),
    ("get", "/api/v1/beta/configurations/{config_id}"),
    ("put", "/api/v1/beta/configurations/{config_id}"),
    ("patch", "/api/v1/beta/configurations/{config_id}"),
    ("delete", "/api/v1/beta/configurations/{config_id}"),
    ("post", "/api/v1/beta/webhook-configs"),
    ("get", "/api/v1/beta/webhook-configs"),
    ("get", "/api/v1/beta/webhook-configs/{config_id}"),
    ("put", "/api/v1/beta/webhook-configs/{config_id}"),
    ("patch", "/api/v1/beta/webhook-configs/{config_id}"),
    ("delete", "/api/v1/beta/webhook-configs/{config_id}"),
    ("get", "/api/v2/webhook-configs"),
    ("post", "/api/v2/parse"),
    ("get", "/api/v2/parse"),
    ("post", "/api/v2/parse/upload"),
    ("get", "/api/v2/parse/versions"),
    ("get", "/api/v2/parse/{job_id}"),
    ("delete", "/api/v2/parse/{job_id}"),
    ("post", "/api/v2/parse/{job_id}/cancel"),
    ("post", "/api/v1/files"),
    ("get", "/api/v1/files/{file_id}"),
    ("delete", "/api/v1/files/{file_id}"),
    ("get", "/api/v1/files/{file_id}/content"),
    ("post", "/api/v1/classifier/jobs"),
    ("get", "/api/v1/classifier/jobs"),
    ("get", "/api/v1/classifier/jobs/{job_id}"),
    ("get", "/api/v1/classifier/jobs/{job_id}/results"),
    ("post", "/v1/ade/classify"),
}


def _load_spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    assert isinstance(spec, dict), f"{SPEC_PATH} is not a YAML mapping"
    return spec


SPEC = _load_spec()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(method, path, operation, path item) for every operation in the document."""
    found = []
    for path, item in (spec.get("paths") or {}).items():
        for method in HTTP_METHODS:
            if isinstance(item, dict) and method in item:
                found.append((method, path, item[method], item))
    return found


OPERATIONS = _operations(SPEC)


def _resolve(ref: str, spec: dict[str, Any] = SPEC) -> Any:
    assert ref.startswith("#/"), f"only local $refs are expected, got {ref!r}"
    node: Any = spec
    for raw in ref[2:].split("/"):
        key = urllib.parse.unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            assert key.isdigit() and int(key) < len(node), f"{ref!r}: no index {key!r}"
            node = node[int(key)]
        else:
            assert isinstance(node, dict) and key in node, f"{ref!r}: no key {key!r}"
            node = node[key]
    return node


def _deref(node: Any) -> Any:
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref not in seen, f"$ref cycle through {ref!r}"
        seen.add(ref)
        node = _resolve(ref)
    return node


def _walk_refs(node: Any, where: str = "#"):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from _walk_refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_refs(value, f"{where}/{index}")


# ---------------------------------------------------------------------------------------------
# Structure (no server needed)


def test_document_is_openapi_3():
    version = str(SPEC.get("openapi", ""))
    assert version.startswith("3."), f"openapi: {version!r} is not 3.x"
    info = SPEC.get("info") or {}
    assert info.get("title") and info.get("version"), "info.title and info.version are required"
    assert isinstance(SPEC.get("paths"), dict) and SPEC["paths"], "no paths"


def test_every_operation_has_responses():
    assert OPERATIONS, "the document has no operations"
    for method, path, operation, _ in OPERATIONS:
        responses = operation.get("responses")
        assert isinstance(responses, dict) and responses, f"{method.upper()} {path}: no responses"
        for status, response in responses.items():
            assert str(status) == "default" or (len(str(status)) == 3 and str(status)[0] in "12345"), (
                f"{method.upper()} {path}: bad response key {status!r}"
            )
            assert "description" in _deref(response), (
                f"{method.upper()} {path} {status}: response without description"
            )


def test_every_ref_resolves():
    refs = list(_walk_refs(SPEC))
    assert refs, "expected the document to use components via $ref"
    for where, ref in refs:
        try:
            _deref({"$ref": ref})
        except AssertionError as exc:
            pytest.fail(f"{where}: {exc}")


def test_path_parameters_are_declared():
    for method, path, operation, item in OPERATIONS:
        declared = {
            p["name"]
            for p in map(_deref, [*item.get("parameters", []), *operation.get("parameters", [])])
            if p.get("in") == "path"
        }
        in_template = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert declared == in_template, (
            f"{method.upper()} {path}: path parameters declared {sorted(declared)}, "
            f"template has {sorted(in_template)}"
        )


def test_documents_exactly_the_served_operations():
    documented = {(method, path) for method, path, _, _ in OPERATIONS}
    missing = EXPECTED_OPERATIONS - documented
    extra = documented - EXPECTED_OPERATIONS
    assert not missing and not extra, f"missing: {sorted(missing)}; not served: {sorted(extra)}"


def test_api_routes_take_project_and_organization_ids():
    for method, path, operation, item in OPERATIONS:
        if not path.startswith("/api/"):
            continue
        names = {
            p["name"]
            for p in map(_deref, [*item.get("parameters", []), *operation.get("parameters", [])])
            if p.get("in") == "query"
        }
        assert {"project_id", "organization_id"} <= names, (
            f"{method.upper()} {path}: query parameters {sorted(names)}"
        )


# ---------------------------------------------------------------------------------------------
# Against the server


@pytest.fixture(scope="module")
def api_key() -> str | None:
    configured = os.environ.get("CLASSIFYD_TEST_API_KEY", "").strip()
    if configured:
        return configured
    try:
        from conftest import API_KEYS  # the keys the server fixture starts classifyd with
    except ImportError:
        return None
    return next(iter(API_KEYS), None)


def _dummy_value(parameter: dict[str, Any]) -> str:
    schema = _deref(parameter.get("schema") or {})
    kind = schema.get("type")
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        return "1"
    if "enum" in schema:
        return str(schema["enum"][0])
    return DUMMY_IDS.get(parameter["name"], "0" * 32)


def _build_request(
    base_url: str, method: str, path: str, operation: dict, item: dict, api_key: str | None
) -> urllib.request.Request:
    parameters = [_deref(p) for p in [*item.get("parameters", []), *operation.get("parameters", [])]]
    url_path = path
    for parameter in parameters:
        if parameter.get("in") == "path":
            name = parameter["name"]
            url_path = url_path.replace("{" + name + "}", DUMMY_IDS.get(name, DEFAULT_DUMMY_ID))
    query = [
        (p["name"], _dummy_value(p))
        for p in parameters
        if p.get("in") == "query" and p.get("required")
    ]
    url = base_url.rstrip("/") + url_path
    if query:
        url += "?" + urllib.parse.urlencode(query)

    headers = {"Accept": "application/json"}
    data = None
    body = _deref(operation.get("requestBody") or {})
    content = body.get("content") or {}
    if "multipart/form-data" in content:
        data = f"--{BOUNDARY}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
    elif content or method == "post":
        data = b"{}"
        headers["Content-Type"] = "application/json"
    if api_key and operation.get("security", SPEC.get("security")) != []:
        headers["Authorization"] = f"Bearer {api_key}"
    return urllib.request.Request(url, data=data, headers=headers, method=method.upper())


def _send(request: urllib.request.Request) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        try:
            return error.code, dict(error.headers.items()), error.read()
        finally:
            error.close()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _schema_for(response: dict[str, Any]) -> dict[str, Any] | None:
    media = (response.get("content") or {}).get("application/json")
    return _deref(media.get("schema")) if media and media.get("schema") else None


@pytest.mark.parametrize(
    "method,path",
    [(method, path) for method, path, _, _ in OPERATIONS],
    ids=[f"{method.upper()} {path}" for method, path, _, _ in OPERATIONS],
)
def test_route_is_served_as_documented(base_url: str, api_key: str | None, method: str, path: str):
    item = SPEC["paths"][path]
    operation = item[method]
    request = _build_request(base_url, method, path, operation, item, api_key)
    status, headers, body = _send(request)
    parsed = _json(body)
    shown = body[:300].decode("utf-8", errors="replace")
    where = f"{request.get_method()} {request.full_url} -> {status} {shown}"

    assert status != 405, f"route not served for this method: {where}"
    assert not (status == 404 and parsed == UNKNOWN_ROUTE_BODY), f"unknown route: {where}"

    documented = {str(code) for code in operation["responses"]}
    assert str(status) in documented or "default" in documented, (
        f"status {status} is not documented (documented: {sorted(documented)}): {where}"
    )
    response = _deref(operation["responses"].get(str(status), operation["responses"].get("default")))

    for name in response.get("headers") or {}:
        if name.lower() in {"content-length", "content-disposition"}:
            continue
        assert name.lower() in {k.lower() for k in headers}, f"documented header {name} missing: {where}"

    schema = _schema_for(response)
    if schema is not None and schema.get("type") == "array":
        assert isinstance(parsed, list), f"expected a JSON array: {where}"
    elif schema is not None and status != 204:
        assert isinstance(parsed, dict), f"expected a JSON object: {where}"
        missing = [key for key in schema.get("required", []) if key not in parsed]
        assert not missing, f"required fields {missing} missing: {where}"
        if status >= 400:
            detail = parsed.get("detail")
            if status == 422:
                assert isinstance(detail, list) and all(
                    isinstance(e, dict) and {"loc", "msg", "type"} <= e.keys() for e in detail
                ), f"422 detail is not a list of field errors: {where}"
            else:
                assert isinstance(detail, str), f"error detail is not a string: {where}"
