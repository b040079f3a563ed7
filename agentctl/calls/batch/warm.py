"""A batch through the stack's gateway: the CLI's side of ``POST /v1/batch`` (``calls.batch.wire``).

When the stack serves the call and its gateway answers (the rule of ``calls.gateway.warm``), the
input's items are sent as they are read and the records come back as items finish, on one HTTP/1.1
request whose body and answer flow at once. http.client and httpx send a whole body before they read the answer,
so this speaks HTTP through h11 on a socket of its own. At most ``concurrency`` items are sent ahead
of their records: as on the Ray path, the next input line is read only when an item finishes.
Malformed input lines are judged here, as they are read, and never sent. Nothing here imports Ray,
Prefect or openai.
"""

from __future__ import annotations

import json
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import h11
from pydantic import TypeAdapter, ValidationError

from agentctl.calls.batch import Options, Outcome
from agentctl.calls.batch.reader import Item, Malformed, Read
from agentctl.calls.batch.wire import Line, MalformedLine, Opened, Recorded
from agentctl.calls.gateway.client import GatewayDown, GatewayLost, raised, refusal
from agentctl.calls.gateway.warm import HEAL, Warm, choose, down
from agentctl.calls.gateway.wire import NDJSON
from agentctl.config import Settings
from agentctl.events import Failed, Log
from agentctl.processes.discovery import anchored
from agentctl.stack import gateway
from agentctl.stack.worker_env import secrets_of

LINES: TypeAdapter[Line] = TypeAdapter(Line)
CONNECT = 5.0  # seconds to reach the gateway on loopback before it counts as down
POLL = 0.25  # seconds between looks at whether the batch ended, while an item waits for a free slot
BROKEN = (OSError, h11.ProtocolError)


def through_gateway(
    settings: Settings,
    reads: Iterable[Read],
    options: Options,
    process: str | None,
    warned: list[str],
    otherwise: Callable[[], Iterator[Outcome]],
) -> Iterator[Outcome]:
    """The batch's outcomes through the stack's gateway when it serves the call, else ``otherwise()``
    (after one warning line when the gateway should have served it). ``process``: the items are its
    argument sets; ``warned``: warnings the caller printed already."""
    warm = Warm() if options.standalone else choose(settings)
    if warm.client is not None and warm.state is not None and warm.state.gateway_url is not None:
        warm.client.close()  # its requests send a whole body before reading the answer
        try:
            url, token, wait = warm.state.gateway_url, gateway.token(settings), settings.gateway.read_timeout
            batch = _Batch(url, token, _call(settings, options, process), wait)
        except GatewayDown as exc:
            warm.notice = down(str(exc))
        else:
            yield from batch.outcomes(reads, set(warned))
            return
    if warm.notice is not None:
        yield Log(time=time.time(), level="WARNING", run_name="agentctl", message=warm.notice)
    yield from otherwise()


def _call(settings: Settings, options: Options, process: str | None) -> dict[str, Any]:
    """The body's first line: the caller (paths anchored here: the gateway runs elsewhere) and how it runs;
    it expires when this stops waiting for the answer (a gateway that reads it later does not start it)."""
    return {
        "settings": anchored(settings).model_dump(mode="json", exclude={"database"}),
        "secrets": secrets_of(settings),
        "approved": {"everything": options.yes, "names": sorted(options.approve)},
        "concurrency": options.concurrency,
        "process": process,
        "expires": time.time() + settings.gateway.read_timeout,
    }


class _Batch:
    """One batch on the gateway: items out on one thread, lines in on another, outcomes in order here."""

    def __init__(self, url: str, token: str, call: dict[str, Any], read_timeout: float) -> None:
        """Open the request and send ``call``; ``GatewayDown`` when the gateway did not take it (or
        sent nothing for ``read_timeout`` seconds)."""
        self._http = _Duplex(url, token, read_timeout)
        try:
            self._http.send(_encoded(call))
            self._lines = self._http.lines()
            self._opened = _opened(self._lines)
        except BROKEN as exc:
            self._http.close()
            raise GatewayDown(f"it does not answer ({exc})") from None
        except BaseException:
            self._http.close()
            raise
        self._ended = threading.Event()
        self._out: queue.Queue[Outcome | BaseException | None] = queue.Queue()

    def outcomes(self, reads: Iterable[Read], warned: set[str]) -> Iterator[Outcome]:
        """Warnings, malformed lines and records as they happen; the gateway's error raised here."""
        window = threading.Semaphore(self._opened.concurrency)
        threading.Thread(target=self._send, args=(reads, window), name="batch-send", daemon=True).start()
        threading.Thread(target=self._receive, args=(window,), name="batch-receive", daemon=True).start()
        try:
            while (outcome := self._out.get()) is not None:
                if isinstance(outcome, BaseException):
                    raise outcome
                if not (isinstance(outcome, Log) and outcome.message in warned):
                    yield outcome
        finally:  # Ctrl-C too: the gateway, its client gone, cancels the items in flight
            self._ended.set()
            self._http.close()

    def _send(self, reads: Iterable[Read], window: threading.Semaphore) -> None:
        try:
            for read in reads:
                if isinstance(read, Malformed):
                    self._out.put(read)
                elif self._slot(window):
                    self._http.send(_encoded(_item(read)))
                else:
                    return
            self._http.send_end()
        except BROKEN:
            pass  # the answer's end says what happened
        except Exception as exc:  # reading the input failed: the batch ends with it
            self._out.put(exc)

    def _slot(self, window: threading.Semaphore) -> bool:
        """Wait until one more item may be sent; False once the batch ended."""
        while not window.acquire(timeout=POLL):  # polled: the batch may end while we wait
            if self._ended.is_set():
                return False
        return not self._ended.is_set()

    def _receive(self, window: threading.Semaphore) -> None:
        try:
            for raw in self._lines:
                if raw.strip():
                    self._out.put(_outcome(LINES.validate_json(raw), window))
            self._out.put(None)
        except BROKEN as exc:
            self._out.put(_broken(exc))
        except ValidationError:
            self._out.put(_lost("it sent a line that is no batch line"))
        except Exception as exc:  # the gateway's error, raised as the Ray path would raise it
            self._out.put(exc)


def _outcome(line: Line, window: threading.Semaphore) -> Outcome:
    """What a line of the answer is to the batch; a finished item frees a slot for the next one."""
    if isinstance(line, Recorded | MalformedLine):
        window.release()
        return line.record if isinstance(line, Recorded) else Malformed(line.line, line.reason)
    if isinstance(line, Failed):
        raised(line)  # raises when the gateway's side did
        return Log(time=time.time(), level="ERROR", run_name="agentctl", message=line.message)
    if isinstance(line, Opened):
        raise ConnectionError("it began the batch twice")
    return line


def _broken(exc: BaseException) -> GatewayLost:
    """The error for a connection that broke, or went quiet (``_Duplex._next``), mid-batch."""
    if isinstance(exc, TimeoutError):
        return _lost(str(exc), "stopped answering")
    return _lost(str(exc) or type(exc).__name__)


def _lost(why: str, what: str = "went away") -> GatewayLost:
    return GatewayLost(
        f"the stack's gateway {what} mid-batch ({why}): the records it sent are kept (--resume runs the rest); {HEAL}"
    )


def _opened(lines: Iterator[bytes]) -> Opened:
    """The answer's first line: how many items run at once (or the error that ended the batch)."""
    try:
        first = LINES.validate_json(next(line for line in lines if line.strip()))
    except StopIteration:
        raise _lost("its answer ended before the batch began") from None
    except BROKEN as exc:
        raise _broken(exc) from None
    except ValidationError:
        raise _lost("its answer is no batch") from None
    if isinstance(first, Failed):
        raised(first)
    if not isinstance(first, Opened):
        raise _lost("its answer began with no batch line")
    return first


def _item(item: Item) -> dict[str, Any]:
    """An item as the gateway reads it: the request (and its model), or the arguments, with the id."""
    if item.request:
        return {"id": item.id, "request": item.request, **({"model": item.model} if item.model else {})}
    return {"id": item.id, **item.arguments}


def _encoded(document: dict[str, Any]) -> bytes:
    return (json.dumps(document) + "\n").encode()


class _Duplex:
    """One POST to the gateway whose chunked body is sent while its answer is read.

    ``GatewayDown`` until the gateway answered 200 (nothing ran); after that, ``OSError`` or an h11
    error when the connection breaks, ``TimeoutError`` when the gateway (which sends an empty line a
    second while quiet) sent nothing for ``read_timeout`` seconds.
    """

    def __init__(self, url: str, token: str, read_timeout: float) -> None:
        self.read_timeout = read_timeout
        place = urlsplit(url)
        try:
            self._socket = socket.create_connection((place.hostname, place.port), timeout=CONNECT)
        except OSError as exc:
            raise GatewayDown(f"it does not answer ({exc.strerror or exc})") from None
        self._socket.settimeout(None)  # sending waits while the gateway reads slowly; reads wait in _next
        self._h11 = h11.Connection(h11.CLIENT)
        self._lock = threading.Lock()  # one h11 state for the sending and the receiving thread
        headers = [
            ("Host", place.netloc),
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", NDJSON),
            ("Transfer-Encoding", "chunked"),
        ]
        try:
            self._event(h11.Request(method="POST", target="/v1/batch", headers=headers))
        except OSError as exc:
            self.close()
            raise GatewayDown(f"it does not answer ({exc.strerror or exc})") from None

    def send(self, data: bytes) -> None:
        """Send one piece of the body."""
        self._event(h11.Data(data=data))

    def send_end(self) -> None:
        """End the body."""
        self._event(h11.EndOfMessage())

    def _event(self, event: h11.Request | h11.Data | h11.EndOfMessage) -> None:
        with self._lock:
            data = self._h11.send(event)
        if data:
            self._socket.sendall(data)

    def lines(self) -> Iterator[bytes]:
        """The answer's lines, once its head said 200 (else the error it carries)."""
        self._head()
        pending = b""
        while isinstance(event := self._next(), h11.Data):
            *whole, pending = (pending + event.data).split(b"\n")
            yield from whole
        if not isinstance(event, h11.EndOfMessage):
            raise ConnectionError("the connection closed before the answer ended")
        if pending:
            yield pending

    def _head(self) -> None:
        try:
            head = self._next()
        except TimeoutError:
            raise GatewayDown(f"it does not answer (nothing within {self.read_timeout:g} s)") from None
        except BROKEN as exc:
            raise GatewayDown(f"it does not answer ({exc})") from None
        if not isinstance(head, h11.Response):
            raise GatewayDown("it closed the connection")
        if head.status_code != 200:
            raise refusal(head.status_code, self._rest())

    def _rest(self) -> bytes:
        """The body of an answer other than 200 (its error)."""
        content = b""
        with suppress(*BROKEN):
            while isinstance(event := self._next(), h11.Data):
                content += event.data
        return content

    def _next(self) -> Any:
        while True:
            with self._lock:
                event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            # select, not a socket timeout: that would also end the sending thread's sendall that waits
            ready, _, _ = select.select([self._socket], [], [], self.read_timeout)
            if not ready:
                raise TimeoutError(f"nothing for {self.read_timeout:g} s")
            data = self._socket.recv(1 << 16)
            with self._lock:
                self._h11.receive_data(data)

    def close(self) -> None:
        """Close the connection: the gateway, its client gone, stops the batch."""
        with suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
