"""Fixtures for the llama-cloud 2.19.0 SDK compatibility tests.

One real `classifyd` server is started per test module and per store (SQLite, PostgreSQL);
the tests talk to it only through the official SDK, with nothing but `base_url` changed.

Environment:
  CLASSIFYD_BIN      path of the server binary (default: <repo>/target/debug/classifyd if built)
  CLASSIFYD_TEST_PG  "0" skips the PostgreSQL variant
  CI                 "true" turns "cannot run this here" skips into failures
                     (no PostgreSQL reachable, no corpus)

The server is started as
  $CLASSIFYD_BIN serve --listen 127.0.0.1:0 --data-dir <tmp> --port-file <tmp>/port
with two API keys (key-a -> prj-a, key-b -> prj-b), fast worker polling and RUST_LOG=warn.
Its stdout/stderr go to files in <tmp>; their tail is attached to every failing test's report.
"""

from __future__ import annotations

import os
import signal
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

API_KEYS = {"key-a": "prj-a", "key-b": "prj-b"}

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DB = "test"

STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_GRACE_S = 5.0
LOG_TAIL_LINES = 60


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(message: str) -> None:
    """Skip locally; in CI a missing prerequisite is a failure, not a silent skip."""
    if in_ci():
        pytest.fail(f"{message} (CI=true, so this is a failure rather than a skip)", pytrace=False)
    pytest.skip(message)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


@dataclass
class ClassifydServer:
    store: str
    base_url: str
    process: subprocess.Popen
    tmp_dir: Path
    stdout_path: Path
    stderr_path: Path
    database_url: str | None = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return (
            f"--- stderr ({self.stderr_path}) ---\n{_tail(self.stderr_path, lines)}\n"
            f"--- stdout ({self.stdout_path}) ---\n{_tail(self.stdout_path, lines)}"
        )


# ---------------------------------------------------------------------------------------------
# PostgreSQL: a fresh database per server, created and dropped with the psql command-line client
# (the test venv deliberately has no database driver).


def _psql(sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "psql", "-w", "-X", "-v", "ON_ERROR_STOP=1",
            "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", PG_ADMIN_DB,
            "-c", sql,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    )


def _create_pg_database() -> str:
    if os.environ.get("CLASSIFYD_TEST_PG", "").strip() == "0":
        pytest.skip("PostgreSQL variant disabled (CLASSIFYD_TEST_PG=0)")
    name = f"classifyd_sdk_{secrets.token_hex(6)}"
    try:
        done = _psql(f'CREATE DATABASE "{name}"')
    except FileNotFoundError:
        skip_or_fail("psql not found: cannot create a PostgreSQL database for the postgres variant")
    except subprocess.TimeoutExpired:
        skip_or_fail(f"psql timed out connecting to {PG_USER}@{PG_HOST}:{PG_PORT}/{PG_ADMIN_DB}")
    if done.returncode != 0:
        skip_or_fail(
            f"cannot create PostgreSQL database on {PG_USER}@{PG_HOST}:{PG_PORT}/{PG_ADMIN_DB}: "
            f"{(done.stderr or done.stdout).strip()}"
        )
    return name


def _drop_pg_database(name: str) -> None:
    try:
        done = _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"warning: could not drop PostgreSQL database {name}: {exc}")
        return
    if done.returncode != 0:
        print(f"warning: could not drop PostgreSQL database {name}: {done.stderr.strip()}")


# ---------------------------------------------------------------------------------------------
# The server process


def _binary() -> str:
    configured = os.environ.get("CLASSIFYD_BIN", "").strip()
    if configured:
        path = Path(configured)
        if not path.is_file():
            pytest.fail(f"CLASSIFYD_BIN={configured!r} does not exist", pytrace=False)
        return str(path)
    default = REPO_ROOT / "target" / "debug" / "classifyd"
    if default.is_file():
        return str(default)
    pytest.fail(
        "no server binary: set CLASSIFYD_BIN to the classifyd executable (or run `cargo build` "
        f"so that {default} exists)",
        pytrace=False,
    )


def _server_env(database_url: str | None, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    # The tests define the server's whole configuration: drop any CLASSIFYD_* / DATABASE_URL
    # the caller's shell may carry (e.g. a different classifier backend or an ephemeral flag).
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSIFYD_") and k != "DATABASE_URL"}
    env["CLASSIFYD_API_KEYS"] = ",".join(f"{key}={project}" for key, project in API_KEYS.items())
    env["CLASSIFYD_POLL_INTERVAL_MS"] = "100"
    env["RUST_LOG"] = "warn"
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # The server runs in its own process group (it may have extraction child processes).
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=SHUTDOWN_GRACE_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=SHUTDOWN_GRACE_S)


def _start_server(
    store: str,
    tmp_dir: Path,
    database_url: str | None,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> ClassifydServer:
    port_file = tmp_dir / "port"
    stdout_path = tmp_dir / "classifyd.stdout.log"
    stderr_path = tmp_dir / "classifyd.stderr.log"
    cmd = [
        _binary(), "serve",
        "--listen", "127.0.0.1:0",
        "--data-dir", str(tmp_dir),
        "--port-file", str(port_file),
        *extra_args,
    ]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=_server_env(database_url, extra_env),
            cwd=tmp_dir,
            start_new_session=True,
        )
    server = ClassifydServer(store, "", process, tmp_dir, stdout_path, stderr_path, database_url)

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_problem = "port file not written yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"classifyd ({store}) exited with code {process.returncode} during start-up\n"
                f"command: {' '.join(cmd)}\n{server.log_tail()}",
                pytrace=False,
            )
        try:
            text = port_file.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text.isdigit():
            base_url = f"http://127.0.0.1:{int(text)}"
            try:
                with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                    if response.status == 200:
                        server.base_url = base_url
                        return server
                    last_problem = f"GET /health answered {response.status}"
            except urllib.error.HTTPError as exc:
                last_problem = f"GET /health answered {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last_problem = f"GET /health failed: {exc}"
        elif text:
            last_problem = f"port file holds {text!r}, not a port number"
        time.sleep(0.05)

    _stop(process)
    pytest.fail(
        f"classifyd ({store}) not healthy within {STARTUP_TIMEOUT_S:.0f} s: {last_problem}\n"
        f"command: {' '.join(cmd)}\n{server.log_tail()}",
        pytrace=False,
    )


def _print_uncaptured(config: pytest.Config, message: str) -> None:
    """Print past pytest's output capturing (fixture teardown output is otherwise swallowed)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(message, flush=True)
    else:
        print(message, flush=True)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def classifyd_server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[ClassifydServer]:
    """A running server for this module and store; yields it (`.base_url` = http://127.0.0.1:<port>).

    A test module may set `SERVER_ENV = {...}` to add settings (e.g. CLASSIFYD_ALLOW_PRIVATE_URLS).
    """
    store = request.param
    db_name = _create_pg_database() if store == "postgres" else None
    database_url = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}" if db_name else None
    server = None
    try:
        server = _start_server(
            store,
            tmp_path_factory.mktemp(f"classifyd-{store}"),
            database_url,
            getattr(request.module, "SERVER_ENV", None),
        )
        failed_before = request.session.testsfailed
        yield server
        if request.session.testsfailed > failed_before:
            _print_uncaptured(
                request.config,
                f"\n=== classifyd ({store}) log tail after failing tests ===\n{server.log_tail()}\n",
            )
    finally:
        if server is not None:
            _stop(server.process)
        if db_name is not None:
            _drop_pg_database(db_name)


@pytest.fixture(scope="module")
def base_url(classifyd_server: ClassifydServer) -> str:
    return classifyd_server.base_url


@pytest.fixture(scope="module")
def make_client(classifyd_server: ClassifydServer) -> Iterator[Callable[..., LlamaCloud]]:
    """Factory for SDK clients pointed at the server: make_client(api_key="key-a", **client_kwargs).

    Clients validate responses strictly against the SDK's models (`_strict_response_validation`),
    so a missing required field or a wrong type fails loudly instead of reading as None. They keep
    the SDK's default retry policy (5 retries) unless told otherwise, as a user's client would.
    Note: `client.with_options()/copy()` does not carry strict validation over; make a new client.
    """
    from llama_cloud import LlamaCloud  # here, so that the v1 SDK's tests can share this file

    made: list[LlamaCloud] = []

    def make(api_key: str = "key-a", **kwargs) -> LlamaCloud:
        kwargs.setdefault("timeout", 30.0)
        kwargs.setdefault("_strict_response_validation", True)
        client = LlamaCloud(api_key=api_key, base_url=classifyd_server.base_url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def client(make_client) -> LlamaCloud:
    """Client for project prj-a (key-a)."""
    return make_client("key-a")


@pytest.fixture(scope="module")
def client_b(make_client) -> LlamaCloud:
    """Client for project prj-b (key-b)."""
    return make_client("key-b")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server's log tail to the report of every failing test that used a server."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, ClassifydServer):
            report.sections.append((f"classifyd ({value.store}) log tail", value.log_tail()))
            break
