"""An httpx client for Prefect's REST API that waits out a busy server, as Prefect's own client does.

A Prefect server on SQLite answers 503 while another write holds its database, and 429 when it
sheds load; Prefect's client retries both (honouring ``Retry-After``). agentctl's own calls to the
API (run history, cancelling, the deployment listing) go through this client and do the same.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

BUSY = frozenset({429, 503})
ATTEMPTS = 5
LONGEST_WAIT = 5.0


class _WaitsOutBusy(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(ATTEMPTS):
            response = self._inner.handle_request(request)
            if response.status_code not in BUSY or attempt == ATTEMPTS - 1:
                return response
            response.close()
            time.sleep(_wait(response, attempt))
        raise AssertionError("unreachable: the last attempt returns")

    def close(self) -> None:
        self._inner.close()


def _wait(response: httpx.Response, attempt: int) -> float:
    """The server's ``Retry-After`` when it gives one, else 0.25 s doubling; never more than 5 s."""
    try:
        asked = float(response.headers.get("retry-after", ""))
    except ValueError:
        asked = 0.25 * 2**attempt
    return max(0.0, min(asked, LONGEST_WAIT))


def client(
    api_url: str, timeout: float, headers: Mapping[str, str] | None = None, trust_env: bool = False
) -> httpx.Client:
    """A client for the Prefect API at ``api_url``; ``trust_env`` takes proxies and CAs from the environment."""
    transport = _WaitsOutBusy(httpx.HTTPTransport(trust_env=trust_env))
    base = api_url.rstrip("/") + "/"
    return httpx.Client(base_url=base, timeout=timeout, headers=headers, transport=transport, trust_env=trust_env)
