"""The warm path's client against a local socket server that answers as a gateway would, or breaks
off where a dying gateway would: what ``agentctl ask`` then reports (no stack needed)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from agentctl.calls.gateway.client import Client, GatewayDown, GatewayLost
from agentctl.events import Event, Routed

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-ndjson\r\n\r\n"
ROUTED = Routed(process="github_repo_info", process_kind="flow", arguments={"repo": "acme/rocket"})


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


Answer = Callable[[socket.socket], None]


@pytest.fixture
def gateway() -> Iterator[Callable[[Answer], Client]]:
    """A one-connection server on 127.0.0.1 that reads the request, then sends what ``answer`` sends."""
    listening = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []

    def serve(answer: Answer) -> Client:
        def once() -> None:
            connection, _ = listening.accept()
            with connection:
                connection.recv(1 << 20)  # the request: headers and its small JSON body
                answer(connection)
                connection.shutdown(socket.SHUT_WR)  # closed as a process that exits closes it

        threads.append(threading.Thread(target=once, daemon=True))
        threads[-1].start()
        return Client(f"http://127.0.0.1:{listening.getsockname()[1]}", "token", read_timeout=5)

    yield serve
    for thread in threads:
        thread.join(timeout=5)
    listening.close()


def read(client: Client) -> list[Event]:
    return list(client.stream("/v1/ask", {"request": "stars of acme/rocket"}))


def test_a_whole_stream_is_its_events_with_keep_alive_lines_skipped(gateway: Callable[[Answer], Client]) -> None:
    line = ROUTED.model_dump_json().encode() + b"\n"
    client = gateway(lambda c: c.sendall(HEAD + chunk(b"\n") + chunk(line) + chunk(b"\n") + b"0\r\n\r\n"))
    assert read(client) == [ROUTED]


@pytest.mark.parametrize(
    "sent",
    [HEAD, HEAD + chunk(b"\n"), HEAD + chunk(b"\n") + chunk(ROUTED.model_dump_json().encode() + b"\n")],
    ids=["after-the-head", "after-the-keep-alive", "after-an-event"],
)
def test_a_gateway_that_dies_before_its_stream_ends_is_lost_not_an_empty_answer(
    gateway: Callable[[Answer], Client], sent: bytes
) -> None:
    client = gateway(lambda c: c.sendall(sent))
    with pytest.raises(GatewayLost, match="went away mid-request"):
        read(client)


def test_an_answer_other_than_the_gateways_sends_the_call_through_ray(gateway: Callable[[Answer], Client]) -> None:
    body = json.dumps({"detail": "Not authenticated"}).encode()
    head = f"HTTP/1.1 401 Unauthorized\r\nContent-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n"
    client = gateway(lambda c: c.sendall(head.encode() + body))
    with pytest.raises(GatewayDown, match="401"):
        read(client)


def test_a_read_whose_body_is_no_json_is_a_gateway_that_does_not_answer(gateway: Callable[[Answer], Client]) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Type: text/html\r\n\r\n"
    client = gateway(lambda c: c.sendall(head + b"<html>hi!"))
    with pytest.raises(GatewayDown, match="does not answer"):
        client.get("/v1/runs")
