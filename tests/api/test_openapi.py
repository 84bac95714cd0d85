"""The OpenAPI document: valid OpenAPI 3.1, exactly the routes the app serves, true to the parser.

The schemathesis run in test_schemathesis.py holds the live answers to the
document; these tests hold the document to the router and to `ome.wire`.
"""

import json
from typing import Any

import jsonschema
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic_core import PydanticCustomError

from ome.api.app import create_app
from ome.api.openapi import document
from ome.config import DEV_CHAIN_ID, DEV_TRADER_CONTRACT, Settings
from ome.signing import Domain, verify_order
from ome.wire import (
    ADDRESS_SCHEMA,
    MAX_UINT128,
    ORDER_ID_SCHEMA,
    QUANTITY_SCHEMA,
    SIDE_SCHEMA,
    TIMESTAMP_SCHEMA,
    InvalidRequest,
    _integer,
    _side,
    parse_address,
    parse_order,
    parse_order_id,
)
from tests.api.conftest import Client
from tests.builders import SIG, order_body

MAX_TIME = 2**64 - 1


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the router answers, HEAD left out."""
    routes = {(route.method, route.resource.canonical) for route in app.router.routes()}
    heads = {path for method, path in routes if method == "HEAD"}
    gets = {path for method, path in routes if method == "GET"}
    # aiohttp answers HEAD beside every GET; OpenAPI tools take it as implicit.
    assert heads == gets
    return {(method, path) for method, path in routes if method != "HEAD"}


def documented_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method != "parameters"
    }


async def test_the_served_document_is_valid_openapi_3_1(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    served = await response.json()
    assert served == document()
    OpenAPIV31SpecValidator(served).validate()


def test_the_document_has_exactly_the_routes_the_app_serves(settings: Settings) -> None:
    app = create_app(settings)
    assert documented_routes() == served_routes(app)


def test_every_path_parameter_is_described_once() -> None:
    for path, item in document()["paths"].items():
        names = [p["name"] for p in item.get("parameters", [])]
        assert sorted(names) == sorted(
            segment[1:-1] for segment in path.split("/") if segment.startswith("{")
        )


def test_every_answer_but_the_metrics_is_json_and_every_error_the_status_object() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if (path, method, status) == ("/metrics", "get", "200"):
                    assert list(response["content"]) == ["text/plain"]
                    continue
                schema = response["content"]["application/json"]["schema"]
                if int(status) >= 400:
                    assert schema["allOf"][0] == {"$ref": "#/components/schemas/Status"}, path
                    assert schema["allOf"][1]["properties"]["status"] == {"const": int(status)}


def test_every_401_declares_its_challenge() -> None:
    challenged = []
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            response = operation.get("responses", {}).get("401") if method != "parameters" else None
            if response is not None:
                header = response["headers"]["WWW-Authenticate"]
                assert header["required"] and header["description"], (path, method)
                challenged.append((method, path))
    assert sorted(challenged) == [
        ("delete", "/book/{market}/order/{order_id}"),
        ("patch", "/book/{market}/order/{order_id}"),
        ("post", "/book"),
    ]


# ---------------------------------------------------------------- the schemas are the parser's

_digits = st.text(alphabet="0123456789", min_size=0, max_size=42)
_near_bounds = st.sampled_from([0, 1, 2, MAX_TIME - 1, MAX_TIME, MAX_TIME + 1]) | st.sampled_from(
    [MAX_UINT128 - 1, MAX_UINT128, MAX_UINT128 + 1, 10**38 - 1, 10**38, 2 * 10**38]
)
_numbers = (
    st.integers(min_value=-5, max_value=2**130)
    | _near_bounds
    | _digits
    | _near_bounds.map(str)
    | _near_bounds.map(lambda n: "000" + str(n))
    | st.text(max_size=6)
    | st.booleans()
    # JSON Schema counts 1.0 as an integer; the parser, rightly, does not (a float is not exact),
    # which no schema can state: the description says it instead.
    | st.floats(allow_nan=False).filter(lambda f: not f.is_integer())
    | st.none()
)


def _valid(schema: dict[str, Any], value: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def _accepted(validate: Any, value: Any) -> bool:
    try:
        validate(value)
    except (PydanticCustomError, InvalidRequest):
        return False
    return True


@given(_numbers)
def test_the_quantity_schema_accepts_what_the_parser_accepts(value: Any) -> None:
    accepted = _accepted(lambda v: _integer(v, MAX_UINT128, 1), value)
    assert _valid(QUANTITY_SCHEMA, value) == accepted


@given(_numbers)
def test_the_timestamp_schema_accepts_what_the_parser_accepts(value: Any) -> None:
    accepted = _accepted(lambda v: _integer(v, MAX_TIME, 0), value)
    assert _valid(TIMESTAMP_SCHEMA, value) == accepted


_hex_text = st.text(alphabet="0123456789abcdefABCDEFxXg", max_size=68)


@given(st.sampled_from(["", "0x", "0X", "x"]), _hex_text)
def test_the_address_and_id_schemas_accept_what_the_path_parser_accepts(
    prefix: str, digits: str
) -> None:
    value = prefix + digits
    assert _valid(ADDRESS_SCHEMA, value) == _accepted(lambda v: parse_address(v, "market"), value)
    assert _valid(ORDER_ID_SCHEMA, value) == _accepted(parse_order_id, value)


@given(st.text(alphabet="bidaskBIDASK\u212a\u0130 ", max_size=4))
def test_the_side_schema_accepts_what_the_parser_accepts(value: str) -> None:
    assert _valid(SIDE_SCHEMA, value) == _accepted(_side, value)


_signature = st.sampled_from([SIG, SIG[2:], SIG.upper(), SIG[:-2], 7, None])


@given(
    st.dictionaries(st.sampled_from(["signed_data", "signedData"]), _signature, max_size=2),
    st.sampled_from(["user", "side", "price", None]),
)
def test_the_order_schema_accepts_what_the_parser_accepts(
    signatures: dict[str, Any], dropped: str | None
) -> None:
    body = {**order_body(signed_data=...), **signatures}
    if dropped is not None:
        del body[dropped]
    schema = {
        **document()["components"]["schemas"]["OrderRequest"],
        "$defs": document()["components"]["schemas"],
    }
    assert _valid(_resolved(schema), body) == _accepted(parse_order, body)


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with the document's component refs pointed at its own $defs."""
    return json.loads(json.dumps(schema).replace("#/components/schemas/", "#/$defs/"))


def test_the_examples_are_one_consistent_order() -> None:
    """The README's ask: its id is the order_id example, its market the market example."""
    paths = document()["paths"]
    example = paths["/book/{market}/order"]["post"]["requestBody"]["content"]["application/json"]
    order = parse_order(example["example"])
    examples = {
        p["name"]: p["example"] for p in paths["/book/{market}/order/{order_id}"]["parameters"]
    }
    assert examples == {"market": order.target_tracer, "order_id": order.id}
    # Signed by its user on the development domain, so `--dev` accepts it as it stands.
    verify_order(Domain.of(DEV_CHAIN_ID, DEV_TRADER_CONTRACT), order)
