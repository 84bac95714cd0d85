"""Every exception a request can raise, mapped to the HTTP status its client gets.

One table, looked up along the exception's MRO so that the most specific
entry wins. Every class of the engine's error tree has its own entry (a test
walks `ome.engine.errors` to keep it so). Entries whose status is `None` take
the status carried by the exception itself (aiohttp's HTTP exceptions: 404
unknown route, 405 wrong method, 413 body too large). A class found nowhere
is a bug: a logged 500 with a generic message. `headers_of` adds the headers
some errors need besides the JSON body.
"""

from aiohttp import hdrs, web

from ome.access import (
    AccessError,
    AdminTokenRequired,
    AdminTokenWrong,
    InFlightLimitReached,
    SignatureRequired,
)
from ome.engine import (
    BookIntegrityError,
    DuplicateOrder,
    EngineError,
    MarketExists,
    MarketLimitReached,
    MarketMismatch,
    NotOwner,
    OrderExpired,
    OrderFinished,
    OrderLimitReached,
    OrderNotFound,
    OrderRejected,
    SnapshotError,
    UnknownMarket,
)
from ome.executioner import ExecutionerError, ExecutionerRejected, ExecutionerUnavailable
from ome.journal import JournalUnavailable
from ome.signing import InvalidSignature
from ome.wire import InvalidRequest

INTERNAL_ERROR = "Internal server error"
REALM = "ome"
# aiohttp's own errors whose headers the JSON answer keeps: a 405's and a 415's.
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.ACCEPT_ENCODING)

STATUS: dict[type[BaseException], int | None] = {
    EngineError: 400,
    UnknownMarket: 404,
    MarketExists: 409,
    OrderNotFound: 404,
    OrderRejected: 400,
    MarketMismatch: 400,
    NotOwner: 403,
    OrderExpired: 400,
    DuplicateOrder: 409,
    OrderFinished: 409,
    OrderLimitReached: 429,
    MarketLimitReached: 429,
    # A book whose structures disagree is a bug of ours, never the client's.
    BookIntegrityError: 500,
    # Only raised when restoring a dumpfile, never by a request: if it ever is, it is a bug.
    SnapshotError: 500,
    InvalidRequest: 400,
    InvalidSignature: 400,
    AccessError: 403,
    AdminTokenRequired: 401,
    AdminTokenWrong: 403,
    SignatureRequired: 401,
    InFlightLimitReached: 429,
    ExecutionerError: 503,
    ExecutionerRejected: 400,
    ExecutionerUnavailable: 503,
    JournalUnavailable: 503,
    web.HTTPException: None,
}


def status_of(exc: BaseException) -> int:
    """The HTTP status for `exc`; 500 when nothing in its MRO is in the table."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            status = STATUS[cls]
            if status is None:
                assert isinstance(exc, web.HTTPException)
                return exc.status
            return status
    return 500


def message_of(exc: BaseException, status: int) -> str:
    """The text a client may see: the error's own message, never internals of a 500."""
    if status >= 500 and not isinstance(exc, ExecutionerError | JournalUnavailable):
        return INTERNAL_ERROR
    if isinstance(exc, web.HTTPException):
        return exc.reason
    if isinstance(exc, ExecutionerUnavailable):
        return "Executioner unavailable"
    return str(exc)


def headers_of(exc: BaseException) -> dict[str, str]:
    """Headers the answer to `exc` carries besides the JSON error object.

    Every 401 carries a challenge (RFC 9110 section 15.5.2): `Bearer` for the
    admin token (RFC 6750); for a cancel without a signature a scheme of our
    own, since no registered one takes a signature in the body, whose
    `message` is the exact text to `personal_sign`.
    """
    if isinstance(exc, AdminTokenRequired):
        return {hdrs.WWW_AUTHENTICATE: f'Bearer realm="{REALM}"'}
    if isinstance(exc, SignatureRequired):
        return {hdrs.WWW_AUTHENTICATE: f'EIP-191 realm="{REALM}", message="{exc.message}"'}
    if isinstance(exc, web.HTTPException):
        return {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return {}
