"""Every error is the JSON error object, mapped in one table; CORS and the request id."""

import asyncio
import inspect
import io
import json

import pytest

import ome.engine.errors
from ome.api.errors import STATUS
from ome.engine import EngineError, Exchange
from tests.api.conftest import Client, refused
from tests.builders import MARKET, order_body

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Origin, Content-Type, Authorization, Access-Control-Request-Headers, "
        "Access-Control-Allow-Origin"
    ),
}
ORDER_ID = "0x" + "12" * 32
USER = "0x" + "34" * 20
# Every route that names a market, as (method, path after /book/{market}).
MARKET_ROUTES = [
    ("GET", ""),
    ("POST", "/order"),
    ("GET", "/order"),
    ("GET", f"/order/{ORDER_ID}"),
    ("DELETE", f"/order/{ORDER_ID}"),
    ("GET", f"/{USER}"),
]
EVERY_ROUTE = [
    "/",
    "/book",
    f"/book/{MARKET}",
    f"/book/{MARKET}/order",
    f"/book/{MARKET}/order/{ORDER_ID}",
    f"/book/{MARKET}/{USER}",
]


def test_every_engine_error_has_its_own_entry_in_the_error_table() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(ome.engine.errors, inspect.isclass)
        if issubclass(cls, EngineError)
    ]
    assert len(classes) >= 9
    assert [cls.__name__ for cls in classes if cls not in STATUS] == []


@pytest.mark.parametrize(("method", "tail"), MARKET_ROUTES)
async def test_unknown_market_on_every_market_route(client: Client, method: str, tail: str) -> None:
    json = order_body() if method == "POST" else None
    text = await refused(client, method, f"/book/{MARKET}{tail}", 404, json=json)
    assert text == "Market does not exist"


@pytest.mark.parametrize(("method", "tail"), MARKET_ROUTES)
@pytest.mark.parametrize("segment", ["0x1234", "nothex" * 7, MARKET + "ff"])
async def test_malformed_market_segment(
    client: Client, market: str, method: str, tail: str, segment: str
) -> None:
    json = order_body() if method == "POST" else None
    text = await refused(client, method, f"/book/{segment}{tail}", 400, json=json)
    assert "market" in text


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("segment", ["0x12", "z" * 64, ORDER_ID + "00"])
async def test_malformed_order_id_segment(
    client: Client, market: str, method: str, segment: str
) -> None:
    text = await refused(client, method, f"/book/{market}/order/{segment}", 400)
    assert "order_id" in text


async def test_malformed_user_segment(client: Client, market: str) -> None:
    assert "user" in await refused(client, "GET", f"/book/{market}/0x1234", 400)


@pytest.mark.parametrize(
    "path", ["/nope", "/book/", f"/book/{MARKET}/order/{ORDER_ID}/x", "/books", "/index.html"]
)
async def test_unknown_route(client: Client, path: str) -> None:
    assert await refused(client, "GET", path, 404) == "Not Found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/"),
        ("DELETE", "/book"),
        ("PUT", "/book"),
        ("PATCH", f"/book/{MARKET}"),
        ("DELETE", f"/book/{MARKET}"),
        ("PUT", f"/book/{MARKET}/order"),
        ("POST", f"/book/{MARKET}/order/{ORDER_ID}"),
        ("POST", f"/book/{MARKET}/{USER}"),
    ],
)
async def test_wrong_method(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status == 405
    assert await response.json() == {"status": 405, "message": "Method Not Allowed"}
    assert "Allow" in response.headers


@pytest.mark.parametrize("path", ["/book", f"/book/{MARKET}/order"])
@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"{'market': 1}", b"\xff"])
async def test_a_body_that_is_not_json(client: Client, market: str, path: str, raw: bytes) -> None:
    text = await refused(
        client, "POST", path, 400, data=raw, headers={"Content-Type": "application/json"}
    )
    assert text == "Body is not valid JSON"


@pytest.mark.parametrize("path", ["/book", f"/book/{MARKET}/order"])
@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b'"x"', b"3", b"null", b"true"])
async def test_a_body_that_is_not_an_object(
    client: Client, market: str, path: str, raw: bytes
) -> None:
    text = await refused(client, "POST", path, 400, data=raw)
    assert text == "Body must be a JSON object"


@pytest.mark.parametrize("path", ["/book", f"/book/{MARKET}/order"])
async def test_a_body_over_one_mebibyte(client: Client, market: str, path: str) -> None:
    raw = io.BytesIO(b'{"market": "' + b"a" * (1024 * 1024) + b'"}')
    assert await refused(client, "POST", path, 413, data=raw) == "Request Entity Too Large"
    # The service is still fine, and a body just under the limit is read and judged.
    raw = io.BytesIO(b'{"pad": "' + b"a" * (1024 * 1024 - 64) + b'"}')
    text = await refused(client, "POST", "/book", 400, data=raw)
    assert text == "Invalid market: market is missing"


async def test_an_unexpected_exception_is_a_generic_500(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Exchange) -> list[str]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Exchange, "markets", broken)
    response = await client.get("/book")
    assert response.status == 500
    assert await response.json() == {"status": 500, "message": "Internal server error"}
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", EVERY_ROUTE)
async def test_cors_preflight_on_every_route(client: Client, path: str) -> None:
    response = await client.options(
        path,
        headers={
            "Origin": "https://app.tracer.finance",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status == 200
    assert {k: response.headers[k] for k in CORS} == CORS


async def test_cors_headers_on_answers_and_errors(client: Client, market: str) -> None:
    for method, path in [("GET", "/book"), ("GET", "/nope"), ("PUT", "/"), ("GET", "/book/x")]:
        response = await client.request(method, path, headers={"Origin": "http://x.example"})
        assert {k: response.headers[k] for k in CORS} == CORS


async def test_every_answer_carries_a_request_id(client: Client) -> None:
    first = (await client.get("/")).headers["X-Request-Id"]
    second = (await client.get("/nope")).headers["X-Request-Id"]
    assert first and second and first != second
    echoed = await client.get("/", headers={"X-Request-Id": "trace-42"})
    assert echoed.headers["X-Request-Id"] == "trace-42"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/book/{MARKET}/order/0x12"),
        ("DELETE", f"/book/{MARKET}/order/0x12"),
        ("GET", f"/book/{MARKET}/0x12"),
        ("POST", f"/book/{MARKET}/order"),
    ],
)
async def test_a_malformed_segment_or_body_is_400_even_for_an_unknown_market(
    client: Client, method: str, path: str
) -> None:
    await refused(client, method, path, 400, json={"price": "1"} if method == "POST" else None)


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT-HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /book HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ],
)
async def test_a_malformed_http_request_gets_the_json_error_object(
    client: Client, raw: bytes
) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {"status": 400, "message": "Bad Request"}
