"""Whatever a client sends, the answer is the JSON error object or a success, never a 5xx,
and a refused request leaves the state as it was.

Hypothesis writes raw HTTP requests (methods, paths, headers, bodies and
encodings, valid and not) and sends each over a real socket to the app as
`__main__` serves it, on an event loop of its own in a thread so that the
test can block on sockets. The state is what a client can see: the market
list and every book, read before and after each refused request.
"""

import asyncio
import gzip
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome.api.app import create_app
from ome.api.middlewares import CORS_HEADERS
from ome.config import Settings
from tests.builders import MARKET, NOW, OTHER_MARKET, SIG, Clock, request_bytes, user
from tests.fakes import FakeExecutioner

ANSWER_TIMEOUT = 30.0
EXAMPLES = 400


class Served:
    """The app and a fake executioner on a loop in a thread; `port` is the app's."""

    def __init__(self, folder: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self._call(self._start(folder))

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(ANSWER_TIMEOUT)

    async def _start(self, folder: Path) -> int:
        self.fake = await FakeExecutioner().start()
        app = create_app(
            Settings(
                executioner_address=self.fake.url,
                dumpfile=folder / "dump.json",
                journal_dir=folder / "journal",
            ),
            clock=Clock(),
        )
        self.runner = web.AppRunner(
            app, handle_signals=False, access_log=None, header_timeout=5, body_timeout=5
        )
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return int(self.runner.addresses[0][1])

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.fake.close()

    def close(self) -> None:
        self._call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(ANSWER_TIMEOUT)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app = Served(tmp_path_factory.mktemp("fuzz"))
    try:
        yield app
    finally:
        app.close()


def send(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; the final answer's status, headers and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received, f"the server closed the connection without an answer to {data!r}"
    # An interim 100 Continue may come first.
    while received.startswith(b"HTTP/1.1 100"):
        received = received.split(b"\r\n\r\n", 1)[1]
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(status_line.split(" ", 2)[1]), headers, body


def visible_state(port: int) -> Any:
    _, _, body = send(port, request_bytes("GET", "/book"))
    markets = json.loads(body)["markets"]
    books = {m: json.loads(send(port, request_bytes("GET", f"/book/{m}"))[2]) for m in markets}
    return markets, books


# ---------------------------------------------------------------- what clients send

ORDER_ID = "0x" + "12" * 32
ADDRESSES = st.sampled_from([MARKET, MARKET, MARKET, OTHER_MARKET, MARKET[2:], "0x12", "zz"])
TEXT = st.text(max_size=20)
NASTY = st.sampled_from(["", "%ff", "%00", "..", "\u00e9", "\udcf5", " ", "?x=1", "#", "//"])


PATHS = [
    "/",
    "/book",
    "/book/{m}",
    "/book/{m}/order",
    "/book/{m}/order/{o}",
    "/book/{m}/{u}",
    "/book/{m}/order/{o}/x",
    "/{t}",
]


def fill(draw: st.DrawFn, template: str) -> str:
    market = draw(TEXT) if rarely(draw) else draw(ADDRESSES)
    order = draw(TEXT) if rarely(draw) else draw(st.sampled_from([ORDER_ID, "0x12", ""]))
    path = template.format(m=market, o=order, u=user(draw(st.integers(0, 3))), t=draw(TEXT))
    return path + draw(NASTY) if rarely(draw) else path


@st.composite
def paths(draw: st.DrawFn) -> str:
    return fill(draw, draw(st.sampled_from(PATHS)))


def rarely(draw: st.DrawFn) -> bool:
    """True one time in six: most of what is sent is nearly right, to reach the handlers."""
    # Not an end of the range: Hypothesis draws those more often than the rest.
    return draw(st.integers(0, 5)) == 3


def order_json(draw: st.DrawFn) -> dict[str, Any]:
    field = st.one_of(
        st.integers(-(2**130), 2**130).map(str),
        st.integers(0, 2**64),
        st.sampled_from(["", "0x", "-1", "1e3", "1.5", None, [], {}]),
    )
    body: dict[str, Any] = {
        "user": user(draw(st.integers(1, 3))),
        "target_tracer": draw(st.sampled_from([MARKET, MARKET, MARKET, OTHER_MARKET, "0x12"])),
        "side": draw(st.sampled_from(["Bid", "Ask", "bid", "ASK", "Sell", "", 1])),
        "price": str(draw(st.integers(1, 200))),
        "amount": str(draw(st.integers(1, 20))),
        "expiration": str(NOW + draw(st.integers(-10, 3600))),
        "created": str(NOW),
        "signed_data": SIG,
    }
    if not rarely(draw):
        return body
    for name in draw(st.lists(st.sampled_from(sorted(body)), min_size=1, max_size=2)):
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(field)
    return body


def market_body(draw: st.DrawFn) -> bytes:
    return json.dumps({"market": draw(TEXT) if rarely(draw) else draw(ADDRESSES)}).encode()


def order_body(draw: st.DrawFn) -> bytes:
    return json.dumps(order_json(draw)).encode()


def no_body(draw: st.DrawFn) -> bytes:
    return b""


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["market", "order", "json", "bytes", "none"]))
    if kind == "market":
        return market_body(draw)
    if kind == "order":
        return order_body(draw)
    if kind == "json":
        value = draw(st.recursive(st.none() | st.booleans() | st.integers() | TEXT, st.lists))
        return json.dumps(value).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    return b""


HEADER_CHOICES = {
    b"Content-Type": [b"application/json", b"text/plain", b"multipart/form-data", b"\xf5"],
    b"Content-Encoding": [
        b"gzip", b"deflate", b"identity", b"br", b"zstd", b"compress", b"gzip, deflate", b"\xf5",
    ],
    b"Expect": [b"100-continue", b"200-ok", b"\xf5", b""],
    b"X-Request-Id": [b"abc", b"\xf5", b"a" * 300, b"\x7f", b"id with spaces"],
    b"Accept": [b"text/html", b"*/*", b"\xf5"],
    b"Origin": [b"https://example.com", b"null"],
    b"Transfer-Encoding": [b"chunked", b"gzip", b"identity"],
}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    # Mostly the requests the service serves, so that the handlers are reached.
    method, template, body = draw(
        st.sampled_from(
            [
                ("POST", "/book", market_body),
                ("POST", "/book/{m}/order", order_body),
                ("POST", "/book/{m}/order", order_body),
                ("DELETE", "/book/{m}/order/{o}", no_body),
                ("GET", "/book/{m}", no_body),
                ("GET", "/book/{m}/{u}", no_body),
            ]
        )
    )
    body = draw(bodies()) if rarely(draw) else body(draw)
    if rarely(draw):
        method = draw(st.sampled_from(["PUT", "PATCH", "HEAD", "OPTIONS", "BREW", "get", "P\xf5"]))
    path = draw(paths()) if rarely(draw) else fill(draw, template)
    headers = [(b"Content-Type", b"application/json")]
    headers += [
        (name, draw(st.sampled_from(values)))
        for name, values in HEADER_CHOICES.items()
        if draw(st.integers(0, 9)) == 3
    ]
    if rarely(draw):
        line = st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b)
        headers += draw(st.lists(st.tuples(line.filter(bool), line), max_size=2))
    encoding = dict(headers).get(b"Content-Encoding")
    if draw(st.booleans()):
        if encoding == b"gzip":
            body = gzip.compress(body)
        elif encoding == b"deflate":
            body = zlib.compress(body)
    if dict(headers).get(b"Transfer-Encoding") == b"chunked":
        chunked = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        data = request_bytes(method, "PATH", None, headers) + chunked
    else:
        data = request_bytes(method, "PATH", body, headers)
    target = path.encode("utf-8", "surrogateescape")
    return method, data.replace(b"PATH", target, 1)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_no_request_gets_a_5xx_or_a_body_that_is_not_json_or_changes_state_when_refused(
    served: Served, request: tuple[str, bytes]
) -> None:
    method, data = request
    before = visible_state(served.port)
    status, headers, body = send(served.port, data)
    assert status < 500, (data, body)
    if method != "HEAD" and status != 204:
        assert headers.get("content-type") == "application/json", (status, body)
        answer = json.loads(body)
        if status >= 400:
            assert answer["status"] == status and isinstance(answer["message"], str)
    for name, value in CORS_HEADERS.items():
        assert headers.get(name.lower()) == value, (status, headers)
    if status >= 400:
        assert visible_state(served.port) == before
