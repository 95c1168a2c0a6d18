"""The deployment files, checked without Docker (images cannot be pulled where the tests run).

docker-compose.yml: it parses; PostgreSQL has a health check and classifyd waits for it;
every service has a health check; the optional profiles exist (`s3`: an S3-compatible store
and its bucket, `ollama`: a local model server wired to the `openai` backend); and every
environment variable classifyd is given is a real setting: documented in the README's
settings tables and, for classifyd's own, read by src/settings.rs or the blob store.
Dockerfile: multi-stage, dependency layer cached, non-root, health check, data volume.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.rs"))


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: str(value) for name, value in env.items()}


def _documented_variables() -> set[str]:
    """First-column names of the README's tables (`| `NAME` | ...`)."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README, flags=re.M))


def _default(value: str) -> str:
    """`${NAME:-default}` -> default; anything else unchanged."""
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:-(.*)\}", value)
    return match.group(1) if match else value


def test_postgres_is_healthy_before_classifyd_starts():
    assert "healthcheck" in SERVICES["postgres"]
    depends = SERVICES["classifyd"]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert _environment(SERVICES["classifyd"])["DATABASE_URL"].startswith("postgres://")


def test_every_service_that_stays_up_has_a_healthcheck():
    for name, service in SERVICES.items():
        if name == "minio-bucket":  # a one-shot job: classifyd waits for it to complete
            assert service["depends_on"]["minio"]["condition"] == "service_healthy"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"


def test_optional_profiles_are_wired():
    assert SERVICES["minio"]["profiles"] == ["s3"]
    assert SERVICES["minio-bucket"]["profiles"] == ["s3"]
    assert SERVICES["ollama"]["profiles"] == ["ollama"]
    assert "profiles" not in SERVICES["classifyd"] and "profiles" not in SERVICES["postgres"]
    depends = SERVICES["classifyd"]["depends_on"]
    for optional in ("minio-bucket", "ollama"):
        assert depends[optional]["required"] is False, f"{optional} must stay optional"
    env = _environment(SERVICES["classifyd"])
    assert _default(env["CLASSIFYD_OPENAI_BASE_URL"]) == "http://ollama:11434/v1"
    assert _default(env["AWS_ENDPOINT_URL"]) == "http://minio:9000"
    bucket = re.search(r"mc mb --ignore-existing local/([a-z0-9.-]+)", str(SERVICES["minio-bucket"]["command"]))
    assert bucket, "the s3 profile creates a bucket"
    header = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert f"CLASSIFYD_BLOB_URL=s3://{bucket.group(1)}/" in header, "the usage line names that bucket"
    assert "CLASSIFYD_CLASSIFIER=openai" in header


def test_every_variable_classifyd_gets_is_a_documented_setting():
    documented = _documented_variables()
    env = _environment(SERVICES["classifyd"])
    assert env, "classifyd is configured through its environment"
    for name in env:
        assert name in documented, f"{name} is not in a README settings table"
        if name.startswith("CLASSIFYD_") or name == "DATABASE_URL":
            assert f'env = "{name}"' in SOURCES, f"{name} is not read by src/settings.rs"
        else:
            assert name.startswith("AWS_"), f"{name}: only classifyd settings and the S3 store's AWS variables"


def test_dockerfile():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM ", dockerfile, flags=re.M)
    assert len(stages) >= 3, "multi-stage build"
    assert "cargo chef cook" in dockerfile, "dependencies build in their own cached layer"
    assert dockerfile.index("cargo chef cook") < dockerfile.index("COPY . .\nRUN cargo build")
    user = re.findall(r"^USER (\S+)", dockerfile, flags=re.M)
    assert user and user[-1] not in ("root", "0"), "runs as a non-root user"
    assert re.search(r"^HEALTHCHECK .*\n?.*curl -fsS http://127.0.0.1:8080/health", dockerfile, flags=re.M)
    assert re.search(r"^VOLUME /data$", dockerfile, flags=re.M)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "target/" in ignored and ".git/" in ignored
