"""The receiver under generated HTTP, sent as raw bytes over a real socket (so header bytes, chunking
and truncation reach aiohttp's parser as a client could send them): never a 5xx other than 503 while
the broker is down, and never a produce for a request that was not answered 202."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbzx.core.webhook import sign
from nbzx.receiver.app import make_app
from tests.conftest import HOOK_SECRET, captures, make_config
from tests.unit.test_receiver_app import RecordingProducer, StaticJobs

BODY = captures()[4]["raw_body"].encode()
LIMIT = 64 * 1024

header_bytes = st.one_of(
    st.binary(min_size=0, max_size=80),
    st.text(max_size=40).map(lambda t: t.encode("utf-8")),  # non-ASCII a client may well send
    st.text(alphabet="0123456789abcdef", min_size=128, max_size=128).map(str.encode),
).filter(lambda b: b"\r" not in b and b"\n" not in b)
bodies = st.one_of(
    st.just(BODY),
    st.binary(max_size=2048),
    st.builds(lambda n: b"{" + b" " * n + b"}", st.integers(min_value=0, max_value=LIMIT + 100)),
    st.builds(lambda cut: BODY[:cut], st.integers(min_value=0, max_value=len(BODY))),
)


@st.composite
def requests(draw: Any) -> tuple[bytes, bool]:
    """A raw HTTP/1.1 request, and whether it is complete (a cut-short one gets no answer)."""
    # Mostly what a NetBox webhook looks like, so the generated headers and bodies reach its checks.
    method = draw(st.just(b"POST") | st.sampled_from([b"GET", b"PUT", b"DELETE", b"OPTIONS", b"HEAD", b"BREW"]))
    path = draw(
        st.just(b"/webhook")
        | st.sampled_from([b"/webhook/", b"/reconcile", b"/jobs", b"/jobs/x", b"/readyz", b"/%ff", b"/"])
    )
    body = draw(bodies)
    signed = draw(st.booleans())
    signature = sign(HOOK_SECRET, body).encode() if signed else draw(header_bytes)
    content_type = draw(
        st.sampled_from([b"application/json", b"application/json; charset=utf-8", b"text/plain", b""]) | header_bytes
    )
    headers = [b"Host: x", b"Content-Type: " + content_type, b"X-Hook-Signature: " + signature]
    headers += [draw(header_bytes) + b": " + draw(header_bytes) for _ in range(draw(st.integers(0, 2)))]
    framing = draw(st.sampled_from(["length", "chunked", "short"]))
    if framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 500]), body[i : i + 500]) for i in range(0, len(body), 500)
        )
        payload += b"0\r\n\r\n"
    else:
        headers.append(b"Content-Length: %d" % len(body))
        # "short": the client sends less than it announced, then goes away
        payload = body[: len(body) // 2] if framing == "short" else body
    head = method + b" " + path + b" HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\nConnection: close\r\n\r\n"
    return head + payload, framing != "short"


async def _send(port: int, raw: bytes, complete: bool) -> int | None:
    """The status code the server answered; None for a request cut short (the client goes away)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        if not complete:
            return None
        line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


class Server:
    def __init__(self) -> None:
        self.producer = RecordingProducer()
        self.cfg = make_config(receiver={"max_body_bytes": LIMIT})
        self.app = make_app(self.cfg, self.producer, StaticJobs(self.cfg))  # type: ignore[arg-type]
        self.runner = web.AppRunner(self.app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(req=requests(), broker_down=st.booleans())
async def test_generated_requests_never_5xx_and_never_produce_unless_202(
    req: tuple[bytes, bool], broker_down: bool
) -> None:
    raw, complete = req
    server = Server()
    await server.start()
    try:
        server.producer.down = broker_down
        status = await _send(server.port, raw, complete)
    finally:
        # Shutting the server down waits for its handlers to end: whatever this request (a cut-short
        # one too) could have produced, it has produced by now.
        await server.runner.cleanup()
    assert status is not None or not complete, "a complete request always gets an answer"
    assert status is None or status < 500 or (status == 503 and broker_down), status
    if status != 202:
        assert server.producer.sent == [], f"{status} yet produced"
    else:
        assert len(server.producer.sent) <= 1
