"""`python -m ome.sign`: the bodies it prints are the vectors' and pass verification."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ome.engine import Order, Side
from ome.sign import main
from ome.signing import Domain, cancel_signer, verify_order

VECTORS = json.loads((Path(__file__).resolve().parent / "vectors" / "signatures.json").read_text())
KEY = "0x" + "42" * 32
ORDER = VECTORS["order"]


def test_order_reproduces_the_vector(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            *("order", "--key", KEY, "--market", ORDER["target_tracer"]),
            *("--side", ORDER["side"], "--price", ORDER["price"], "--amount", ORDER["amount"]),
            *("--expiration", str(ORDER["expiration"]), "--created", str(ORDER["created"])),
        ]
    )
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert body["signed_data"] == ORDER["signed_data"]
    assert body["user"] == ORDER["user"].lower()
    assert err.strip() == f"order id: {ORDER['id']}"


def test_order_on_another_domain_verifies_there_only(capsys: pytest.CaptureFixture[str]) -> None:
    contract = "0x" + "ab" * 20
    main(
        [
            *("order", "--key", "0x" + "07" * 32, "--chain-id", "42161", "--contract", contract),
            *("--market", "0x" + "22" * 20, "--side", "Ask", "--price", "5", "--amount", "6"),
        ]
    )
    body = json.loads(capsys.readouterr().out)
    order = Order.create(
        user=body["user"],
        target_tracer=body["target_tracer"],
        side=Side[body["side"]],
        price=int(body["price"]),
        amount=int(body["amount"]),
        expiration=int(body["expiration"]),
        created=int(body["created"]),
        signed_data=body["signed_data"],
    )
    assert order.expiration == order.created + 86400
    verify_order(Domain.of(42161, contract), order)


def test_cancel_reproduces_the_vector_in_both_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    main(["cancel", "--key", KEY, "--order-id", ORDER["id"]])
    assert json.loads(capsys.readouterr().out) == {"signature": VECTORS["cancel"]["signature"]}
    upper_id = "0x" + ORDER["id"][2:].upper()
    main(["cancel", "--key", KEY, "--order-id", upper_id, "--market", ORDER["target_tracer"]])
    body = json.loads(capsys.readouterr().out)
    assert body == {
        "marketId": ORDER["target_tracer"],
        "orderId": ORDER["id"],
        "signature": VECTORS["cancel"]["signature"],
    }
    assert cancel_signer(body["orderId"], body["signature"]) == ORDER["user"].lower()


M = ORDER["target_tracer"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["cancel", "--key", "0x42", "--order-id", ORDER["id"]], "--key"),
        (["cancel", "--key", KEY, "--order-id", "0x1234"], "--order-id"),
        (["order", "--key", KEY, "--market", "0x22", "--price", "1", "--amount", "1"], "--market"),
        (["order", "--key", KEY, "--market", M, "--price", "-1", "--amount", "1"], "--price"),
        (["order", "--key", KEY, "--market", M, "--side", "Buy", "--price", "1"], "--side"),
    ],
    ids=["short key", "short id", "short market", "negative price", "unknown side"],
)
def test_bad_arguments_exit_2_naming_the_argument(argv: list[str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ome.sign", *argv], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert named in result.stderr
