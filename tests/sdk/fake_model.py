"""A fake OpenAI-compatible model for the SDK suites: `POST /v1/chat/completions` on a loopback
port, answered from the test's script, every request recorded. It is the only fake in the suite,
the Python twin of tests/common/fake_model.rs.

    with FakeModel(lambda n, body: answer("invoice", 0.9)) as model:
        ... start classifyd with OPENAI_BASE_URL=model.url ...
        model.requests            # the JSON bodies received, in order
        model.script = lambda n, body: error(500, "overloaded")   # change the answers

A script gets the 0-based request number and the request body and returns a `Reply`.
Successful answers report `usage.prompt_tokens` as the request's message characters / 4
(the measure classifyd's token budget uses), so token counts follow what was sent.
"""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def answer(label: str | None, confidence: float, reasoning: str = "the fake model read the document") -> Reply:
    """A chat completion whose message is the structured answer classifyd asks for."""
    content = json.dumps({"type": label, "confidence": confidence, "reasoning": reasoning})
    return Reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}]})


def error(status: int, message: str, retry_after: int | None = None) -> Reply:
    """An OpenAI-style error body with `status` (and a `Retry-After` header if given)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Reply(status, {"error": {"message": message, "type": "fake_error"}}, headers)


Script = Callable[[int, dict], Reply]


def prompt_text(body: dict) -> str:
    """The text of a request's messages (text parts only)."""
    texts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(part.get("text", "") for part in content if part.get("type") == "text")
    return "\n".join(texts)


class FakeModel:
    def __init__(self, script: Script):
        self.script = script
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(error(404, f"no route {self.path}"))
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(error(400, "the request body is not JSON"))
                    return
                with fake._lock:
                    n = len(fake.requests)
                    fake.requests.append(body)
                    fake.authorizations.append(self.headers.get("Authorization"))
                    script = fake.script
                reply = script(n, body)
                if reply.status == 200:
                    prompt_tokens = len(prompt_text(body)) // 4
                    reply = Reply(200, {
                        "id": f"chatcmpl-fake-{n}", "object": "chat.completion", "created": 0,
                        "model": body.get("model"),
                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 20,
                                  "total_tokens": prompt_tokens + 20},
                        **reply.body,
                    }, reply.headers)
                self._send(reply)

            def _send(self, reply: Reply):
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        #: Base URL including `/v1`, as OPENAI_BASE_URL takes it.
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
