"""Fixtures for the llama-cloud 0.1.46 / llama-cloud-services 0.6.94 (v1) tests.

The server lifecycle (one real classifyd per module and store, SQLite and PostgreSQL, log tails
on failure) is the v2 suite's, loaded from tests/sdk/conftest.py; see its docstring for the
environment variables. This suite runs in its own virtualenv because the v1 SDK is an older
major version of the same `llama-cloud` package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SHARED = Path(__file__).resolve().parents[1] / "sdk" / "conftest.py"
_spec = importlib.util.spec_from_file_location("classifyd_sdk_conftest", _SHARED)
shared = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = shared  # dataclasses look their module up there
_spec.loader.exec_module(shared)

classifyd_server = shared.classifyd_server
base_url = shared.base_url
pytest_runtest_makereport = shared.pytest_runtest_makereport
