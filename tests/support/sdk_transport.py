"""Give an SDK that is built on ``httpx`` an in-process server.

starlette's ``TestClient`` is an ``httpx2.Client`` when ``httpx2`` is installed (openai 3 pulls it
in), while SDKs such as cohere's still type-check and call ``httpx.Client``. ``sdk_client`` wraps
the TestClient in a real ``httpx.Client`` so the SDK runs unmodified against the ASGI app.
"""
from __future__ import annotations

import httpx
from starlette.testclient import TestClient

_DECODED = {"content-encoding", "content-length", "transfer-encoding"}


class _TestClientTransport(httpx.BaseTransport):
    def __init__(self, client: TestClient) -> None:
        self._client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self._client.request(request.method, str(request.url), content=request.read(),
                                    headers=list(request.headers.multi_items()))
        # The TestClient already decoded the body: its framing headers no longer describe it.
        headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _DECODED]
        return httpx.Response(resp.status_code, headers=headers, content=resp.content, request=request)


def sdk_client(client: TestClient) -> httpx.Client:
    """An ``httpx.Client`` whose requests go to ``client``'s app."""
    return httpx.Client(transport=_TestClientTransport(client), base_url=str(client.base_url))
