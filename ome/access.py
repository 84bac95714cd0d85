"""Who may do what: the admin token, signed cancels, and the per-user cap on orders in flight.

Pure and synchronous. A cancel names its owner by its signature (EIP-191
`personal_sign` of `cancel:<order id>`); whether the owner is the order's
user is decided by the engine's cancel, inside the command path, so that no
other way to cancel can skip it. `InFlight` counts, per user, the submissions between
their local checks and the end of the executioner's `/check`, so that one
user's flood waits on its own cap (429) instead of queueing ahead of everyone
else's orders; a count is released however the check ends. Token comparison
takes constant time.
"""

import hmac
from collections.abc import Iterator
from contextlib import contextmanager

from ome.signing import cancel_message, cancel_signer

BEARER = "bearer "


class AccessError(Exception):
    """A request this caller may not make; the message is meant for the client."""


class AdminTokenRequired(AccessError):
    def __init__(self) -> None:
        super().__init__("Admin token required: Authorization: Bearer <token>")


class AdminTokenWrong(AccessError):
    def __init__(self) -> None:
        super().__init__("Wrong admin token")


class SignatureRequired(AccessError):
    def __init__(self, order_id: str) -> None:
        super().__init__("Signature required")
        # What to sign, for the answer's challenge.
        self.message = cancel_message(order_id)


class InFlightLimitReached(AccessError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"In-flight limit reached: {limit} orders of this user are already being checked"
        )
        self.limit = limit


def authorize_admin(authorization: str | None, token: str | None) -> None:
    """Nothing when no token is configured or `authorization` is `Bearer <token>`."""
    if token is None:
        return
    if not authorization or authorization[: len(BEARER)].lower() != BEARER:
        raise AdminTokenRequired()
    given = authorization[len(BEARER) :].strip()
    if not given:
        raise AdminTokenRequired()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise AdminTokenWrong()


def cancel_owner(signature: str | None, order_id: str, *, unsigned_allowed: bool) -> str | None:
    """Who asks to cancel `order_id`: the signer of `signature`, or None for an unsigned
    cancel where those are allowed. SignatureRequired or InvalidSignature otherwise."""
    if signature is None:
        if unsigned_allowed:
            return None
        raise SignatureRequired(order_id)
    return cancel_signer(order_id, signature)


class InFlight:
    """Per user, how many submissions are waiting on the executioner's check."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def count(self, user: str) -> int:
        return self._counts.get(user, 0)

    @contextmanager
    def hold(self, user: str) -> Iterator[None]:
        """One slot of `user` for the duration; InFlightLimitReached when none is free."""
        counts = self._counts
        held = counts.get(user, 0)
        if held >= self.limit:
            raise InFlightLimitReached(self.limit)
        counts[user] = held + 1
        try:
            yield
        finally:
            left = counts[user] - 1
            if left:
                counts[user] = left
            else:
                del counts[user]
