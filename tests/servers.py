"""Real local HTTP servers that speak the OpenAI chat-completions and GitHub REST protocols.

The real clients (openai, httpx) reach them through the same configuration a user sets
(OPENAI_BASE_URL, GITHUB_API_URL). Each server records the requests it received so tests can count
them and inspect what was sent.
"""

from __future__ import annotations

import collections
import itertools
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FOLLOW_UP = "Done."  # the answer to a follow-up nothing was scripted for
DROP = 0  # a status that sends nothing: the server closes the connection instead


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a held or slow answer (a timeout, Ctrl-C) closed its end: expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Server:
    """A threading HTTP server on 127.0.0.1 with a request log."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._dispatch(self, "GET")

            def do_POST(self) -> None:
                owner._dispatch(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.requests: list[Recorded] = []
        self.busy_seconds = 0.0  # time spent answering, for benchmarks that subtract it
        # The most requests of this test (since reset()) being answered at once: one a test before left
        # hanging (a client that gave up on it) is not counted.
        self.most_in_flight = 0
        self._generation = 0
        self._in_flight: collections.Counter[int] = collections.Counter()
        self.lock = threading.Lock()
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        record = Recorded(method, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body)
        with self.lock:
            self.requests.append(record)
            generation = self._generation
            self._in_flight[generation] += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight[generation])
        started = time.perf_counter()
        try:
            status, headers, payload = self.respond(record)
        finally:
            with self.lock:
                self.busy_seconds += time.perf_counter() - started
                self._in_flight[generation] -= 1
        if status == DROP:
            handler.close_connection = True  # hang up with no answer, as a reset connection does
            return
        data = payload if isinstance(payload, bytes) else b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        for key, value in {"content-type": "application/json", **headers}.items():
            handler.send_header(key, value)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def respond(self, request: Recorded) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------- LLM


@dataclass
class Reply:
    """One scripted answer of the LLM server."""

    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    content: str | None = None
    status: int = 200
    error: str | None = None
    finish_reason: str | None = None
    refusal: str | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as the body of a 200 instead of a completion


def garbage(body: bytes, content_type: str = "text/html") -> Reply:
    """A 200 whose body is not a chat completion: a captive portal, a proxy's page, a broken server."""
    return Reply(raw=body, headers={"content-type": content_type})


def tool_call(name: str, arguments: dict[str, Any] | str, *more: tuple[str, dict[str, Any] | str]) -> Reply:
    """A reply that calls ``name`` with ``arguments`` (a dict, or a raw string sent as is)."""
    calls = [(name, arguments), *more]
    return Reply(tool_calls=[(n, a if isinstance(a, str) else json.dumps(a)) for n, a in calls])


def say(content: str) -> Reply:
    """A plain text reply with no tool call."""
    return Reply(content=content)


def fail(status: int, error: str = "scripted failure", headers: dict[str, str] | None = None) -> Reply:
    """An HTTP error reply."""
    return Reply(status=status, error=error, headers=headers or {})


def answer(choice: dict[str, Any]) -> Reply:
    """A structured (json_schema mode) answer: ``{"choice": choice}`` as the message content."""
    return Reply(content=json.dumps({"choice": choice}))


class FakeLLM(_Server):
    """An OpenAI-compatible ``/v1/chat/completions``.

    Replies are scripted per kind of request: ``route`` (a request's first call, offering the process
    tools, and its repairs), ``step`` (a follow-up that carries the results of the calls before it, and
    its repairs) and ``text`` (the text-processing task's call, offering UPPER/LOWER). A request with
    nothing scripted goes to ``responder`` (follow-ups too), and a follow-up neither answers gets a
    short text answer (``FOLLOW_UP``), so a test scripts one route reply per request, as with
    one-shot routing. Call ids are unique over the server's life, as OpenAI's are.
    """

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.scripts: dict[str, deque[Reply]] = {"route": deque(), "step": deque(), "text": deque()}
        self._call_ids = itertools.count()
        self.supports_tools = True
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.echo_key = False  # hostile: error bodies quote the key they were sent

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.most_in_flight = 0
            self._generation += 1
            for script in self.scripts.values():
                script.clear()
            self.supports_tools = True
            self.responder = None
            self.echo_key = False

    def script(self, kind: str, *replies: Reply) -> None:
        self.scripts[kind].extend(replies)

    def calls(self, kind: str | None = None) -> list[Recorded]:
        """The chat-completion requests received, optionally only those of one kind."""
        found = [r for r in self.requests if _is_chat(r)]
        return [r for r in found if kind is None or _kind(r.body) == kind]

    def respond(self, request: Recorded) -> tuple[int, dict[str, str], Any]:
        if not _is_chat(request) or request.method != "POST":
            return 404, {}, {"error": {"message": f"no route {request.path}"}}
        sent = request.headers.get("api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != self.api_key:
            return 401, {}, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
        if request.body.get("tools") and not self.supports_tools:
            error = {"message": "this server does not support tools", "type": "invalid_request_error"}
            return 400, {}, {"error": error}
        kind = _kind(request.body)
        with self.lock:
            reply = self.scripts[kind].popleft() if self.scripts[kind] else None
        if reply is None and self.responder is not None:
            reply = self.responder(request.body)
        if reply is None and kind == "step":
            structured = bool(request.body.get("response_format"))
            reply = answer({"process": "none", "reply": FOLLOW_UP}) if structured else say(FOLLOW_UP)
        if reply is None:
            return 500, {}, {"error": {"message": f"no scripted reply left for a {kind} request"}}
        if reply.delay:
            time.sleep(reply.delay)  # the server is slow; the client's timeout is what is tested
        if reply.raw is not None:
            return 200, reply.headers, reply.raw
        if reply.status != 200:
            said = f" (you sent {sent})" if self.echo_key else ""
            return reply.status, reply.headers, {"error": {"message": f"{reply.error}{said}", "type": "server_error"}}
        with self.lock:
            ids = [f"call_{next(self._call_ids)}" for _ in reply.tool_calls]
        return 200, reply.headers, _completion(request.body.get("model", "?"), reply, ids)


def _is_chat(request: Recorded) -> bool:
    return urlsplit(request.path).path.endswith("/chat/completions")


def _kind(body: Any) -> str:
    names = {t["function"]["name"] for t in (body or {}).get("tools", [])}
    schema_name = ((body or {}).get("response_format") or {}).get("json_schema", {}).get("name")
    if "UPPER" in names or schema_name == "text_tools":
        return "text"
    messages = _without_repairs(list((body or {}).get("messages", [])))
    return "step" if messages and _is_result(messages[-1]) else "route"


def _is_repair(message: dict[str, Any]) -> bool:
    """The router's feedback on an invalid answer (``router._repair_messages``)."""
    content = str(message.get("content") or "")
    return content.startswith("Error: ") and ("Call a tool again" in content or "Answer again" in content)


def _is_result(message: dict[str, Any]) -> bool:
    """A call's outcome sent back: a tool message, or json_schema mode's ``Result of`` user message."""
    return message.get("role") == "tool" or str(message.get("content") or "").startswith("Result of ")


def _without_repairs(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as it was before the repairs at its end: a repair is told apart from a step
    by what came before the invalid answer it follows."""
    while messages and _is_repair(messages[-1]):
        while messages and _is_repair(messages[-1]):
            messages.pop()
        if messages and messages[-1].get("role") == "assistant":
            messages.pop()
    return messages


def _completion(model: str, reply: Reply, ids: list[str]) -> dict[str, Any]:
    calls = [
        {"id": call_id, "type": "function", "function": {"name": n, "arguments": a}}
        for call_id, (n, a) in zip(ids, reply.tool_calls, strict=True)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
    if calls:
        message["tool_calls"] = calls
    finish = reply.finish_reason or ("tool_calls" if calls else "stop")
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


# ------------------------------------------------------------------------------------------- GitHub


class FakeGitHub(_Server):
    """GitHub's ``/repos/{owner}/{repo}`` and paged ``/contributors`` with ``Link`` headers."""

    def __init__(self) -> None:
        super().__init__()
        self.repos: dict[str, tuple[int, int]] = {}
        self.faults: deque[tuple[int, dict[str, str]]] = deque()
        self.link_base: str | None = None
        self.arrived = threading.Event()
        self.gate: threading.Event | None = None
        self.moved: dict[str, str] = {}  # old full name -> Location base (this server or another)
        self.links = "paged"  # "paged"; hostile: "self" (next is this page), "back" (to page 1), "endless"
        self.echo_auth = False  # hostile: error bodies quote the Authorization header they got
        self.fields: dict[str, dict[str, Any]] = {}  # full name -> fields the repository record says instead
        self.fault_message = "scripted failure"  # the "message" of a scripted failure's body
        self.meeting: set[str] = set()
        self._arrived: set[str] = set()
        self._deadline = 60.0
        self.meeting_changed = threading.Condition(self.lock)
        self.met = False  # the requests of ``meet`` were all in at once

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.repos.clear()
            self.faults.clear()
            self.link_base = None
            self.arrived.clear()
            self.moved.clear()
            self.links = "paged"
            self.echo_auth = False
            self.fields.clear()
            self.fault_message = "scripted failure"
            self.meeting, self._arrived, self.met = set(), set(), False
            self.meeting_changed.notify_all()
            if self.gate is not None:
                self.gate.set()
            self.gate = None

    def hold(self) -> threading.Event:
        """Hold every request until the returned event is set; ``arrived`` is set when one comes."""
        self.arrived.clear()
        self.gate = threading.Event()
        return self.gate

    def meet(self, *paths: str, deadline: float = 60) -> None:
        """Requests for ``paths`` each wait until every one of them has arrived, then ``met`` is set:
        requests made one after another never meet (a client's retry of the same path does not count),
        and after ``deadline`` seconds they get a 503."""
        with self.lock:
            self.meeting, self._arrived, self.met = set(paths), set(), False
        self._deadline = deadline

    def _meet(self, path: str) -> bool:
        """Wait for the meeting if ``path`` is one of it; whether it broke (not all came in time)."""
        with self.meeting_changed:
            if path not in self.meeting or self.met:
                return False
            self._arrived.add(path)
            self.meeting_changed.notify_all()
            if self.meeting_changed.wait_for(lambda: self._arrived >= self.meeting, timeout=self._deadline):
                self.met = True
                return False
            return True

    def add_repo(self, full_name: str, stars: int, contributors: int) -> None:
        self.repos[full_name.lower()] = (stars, contributors)

    def fail_next(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        """The next ``times`` requests get ``status``."""
        self.faults.extend([(status, headers or {})] * times)

    def drop_next(self, times: int = 1) -> None:
        """The next ``times`` requests get no answer: the connection is closed."""
        self.faults.extend([(DROP, {})] * times)

    def rate_limit(self, reset_epoch: int) -> None:
        self.fail_next(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset_epoch)}, times=100)

    def respond(self, request: Recorded) -> tuple[int, dict[str, str], Any]:
        self.arrived.set()
        gate = self.gate
        if gate is not None:
            gate.wait(timeout=120)
        if self._meet(urlsplit(request.path).path):
            return 503, {}, {"message": "the requests of the meeting did not arrive together"}
        with self.lock:
            fault = self.faults.popleft() if self.faults else None
        if fault:
            said = f" (you sent {request.headers.get('authorization')})" if self.echo_auth else ""
            return fault[0], fault[1], {"message": f"{self.fault_message}{said}"}
        parts = urlsplit(request.path)
        segments = parts.path.strip("/").split("/")
        if len(segments) < 3 or segments[0] != "repos":
            return 404, {}, {"message": "Not Found"}
        full_name = f"{segments[1]}/{segments[2]}"
        if full_name.lower() in self.moved:
            return 301, {"location": self.moved[full_name.lower()] + parts.path.split(full_name, 1)[1]}, {}
        if full_name.lower() not in self.repos:
            return 404, {}, {"message": "Not Found"}
        stars, contributors = self.repos[full_name.lower()]
        if len(segments) == 3:
            record = {"full_name": full_name, "stargazers_count": stars, "html_url": f"https://github.com/{full_name}"}
            return 200, {}, {**record, **self.fields.get(full_name.lower(), {})}
        if segments[3:] == ["contributors"]:
            return self._contributors(full_name, contributors, parse_qs(parts.query))
        return 404, {}, {"message": "Not Found"}

    def _contributors(self, full_name: str, total: int, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        if total == 0:
            return 204, {}, None
        last = (total + per_page - 1) // per_page
        start = (page - 1) * per_page
        people = [{"login": f"user{i}", "contributions": 1} for i in range(start, min(start + per_page, total))]
        base = f"{self.link_base or self.url}/repos/{full_name}/contributors?per_page={per_page}"
        links = []
        hostile = {"self": page, "back": 2 if page == 1 else 1, "endless": page + 1}.get(self.links)
        if hostile is not None:
            links.append(f'<{base}&page={hostile}>; rel="next"')
        elif page < last:
            links.append(f'<{base}&page={page + 1}>; rel="next"')
            links.append(f'<{base}&page={last}>; rel="last"')
        return 200, ({"link": ", ".join(links)} if links else {}), people
