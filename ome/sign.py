"""`python -m ome.sign`: sign an order or a cancel with a private key, print the request body.

For trying the API by hand and for documentation, never for keys that hold
anything: the key is given on the command line. The domain defaults to the
one `--dev` verifies on (chain id 1337, trader contract 0x3333…3333).

    python -m ome.sign order --key 0x42…42 --market 0x22…22 --side Bid \\
        --price 1500000000000000000 --amount 2000000000000000000
    python -m ome.sign cancel --key 0x42…42 --order-id 0x5c55…214c [--market 0x22…22]

`order` prints the JSON body of `POST /book/{market}/order` (the maker is the
key's address) and, on stderr, the order's id; `cancel` prints the body of
`PATCH` or `DELETE /book/{market}/order/{order_id}`, in the frontend's shape
when `--market` is given.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence

from ome.engine import Order, Side
from ome.signing import Domain, address_of, cancel_digest, order_digest, sign_digest
from ome.wire import InvalidRequest, parse_address, parse_order_id

DEV_CHAIN_ID = 1337
DEV_TRADER_CONTRACT = "0x" + "33" * 20
_DAY = 86400


def _private_key(text: str) -> bytes:
    digits = text.removeprefix("0x").removeprefix("0X")
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        key = b""
    if len(key) != 32 or len(digits) != 64:
        raise argparse.ArgumentTypeError("must be 0x and 64 hex digits")
    return key


def _address(text: str) -> str:
    try:
        return parse_address(text, "address")
    except InvalidRequest:
        raise argparse.ArgumentTypeError("must be 0x and 40 hex digits") from None


def _order_id(text: str) -> str:
    try:
        return parse_order_id(text)
    except InvalidRequest:
        raise argparse.ArgumentTypeError("must be 0x and 64 hex digits") from None


def _natural(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError("must be a non-negative integer")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ome.sign", description=(__doc__ or "").splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    order = commands.add_parser("order", help="sign an order (EIP-712)")
    order.add_argument("--key", type=_private_key, required=True, help="0x + 64 hex digits")
    order.add_argument("--chain-id", type=_natural, default=DEV_CHAIN_ID)
    order.add_argument(
        "--contract", type=_address, default=DEV_TRADER_CONTRACT, help="trader contract"
    )
    order.add_argument("--market", type=_address, required=True, help="target_tracer")
    order.add_argument("--side", choices=[side.name for side in Side], default="Bid")
    order.add_argument("--price", type=_natural, required=True)
    order.add_argument("--amount", type=_natural, required=True)
    order.add_argument("--created", type=_natural, help="unix seconds (default now)")
    order.add_argument("--expiration", type=_natural, help="unix seconds (default created + 1 day)")

    cancel = commands.add_parser("cancel", help="sign a cancel (personal_sign)")
    cancel.add_argument("--key", type=_private_key, required=True, help="0x + 64 hex digits")
    cancel.add_argument("--order-id", type=_order_id, required=True)
    cancel.add_argument("--market", type=_address, help="also write marketId and orderId")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "order":
        created = int(time.time()) if args.created is None else args.created
        order = Order.create(
            user=address_of(args.key),
            target_tracer=args.market,
            side=Side[args.side],
            price=args.price,
            amount=args.amount,
            expiration=created + _DAY if args.expiration is None else args.expiration,
            created=created,
        )
        domain = Domain.of(args.chain_id, args.contract)
        body = order.to_dict()
        for field in ("id", "amount_left"):
            del body[field]
        body["signed_data"] = sign_digest(args.key, order_digest(domain, order))
        print(json.dumps(body))
        print(f"order id: {order.id}", file=sys.stderr)
    else:
        cancel = {"signature": sign_digest(args.key, cancel_digest(args.order_id))}
        if args.market is not None:
            cancel = {"marketId": args.market, "orderId": args.order_id, **cancel}
        print(json.dumps(cancel))


if __name__ == "__main__":
    main()
