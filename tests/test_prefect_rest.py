"""agentctl's calls to Prefect's REST API wait out a busy server (503/429), as Prefect's client does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentctl import prefect_rest


class Busy(BaseHTTPRequestHandler):
    """Answers 503 (Retry-After: 0) until ``busy_for`` requests have come, then 200 with the body it got."""

    busy_for = 0
    seen: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["content-length"]))
        Busy.seen.append(body)
        busy = len(Busy.seen) <= Busy.busy_for
        self.send_response(503 if busy else 200)
        self.send_header("retry-after", "0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Busy.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()


def test_a_busy_server_is_asked_again_with_the_same_request(busy_api: str) -> None:
    Busy.busy_for = 2
    with prefect_rest.client(busy_api, timeout=5) as http:
        response = http.post("flow_runs/filter", json={"limit": 1})
    assert response.status_code == 200 and response.json() == {"limit": 1}
    assert len(Busy.seen) == 3 and len(set(Busy.seen)) == 1


def test_a_server_that_stays_busy_gets_its_answer_through(busy_api: str) -> None:
    Busy.busy_for = 100
    with prefect_rest.client(busy_api, timeout=5) as http:
        response = http.post("flow_runs/filter", json={})
    assert response.status_code == 503 and len(Busy.seen) == prefect_rest.ATTEMPTS
