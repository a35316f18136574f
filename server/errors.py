"""One error hierarchy; each class's docstring is its default message.

    PaywardenError                 (status 500)
    ├── InvalidRequest             (400) the call's arguments are wrong
    │   ├── UnknownCurrency
    │   ├── UnknownProduct
    │   ├── IdempotencyKeyReused
    │   ├── SpendLimitExceeded     (403) a configured limit forbids the charge
    │   ├── InsufficientCredits    (402) the balance cannot cover the credits asked for
    │   └── NotAllowedNow          (409) the payment is not in a state that allows this
    ├── MissingScope               (403) the API key may not call this tool
    ├── InvalidKey                 (401) the API key is wrong or revoked
    ├── RateLimited                (429) too many calls with one API key
    ├── ChargeInProgress           (409) the first request with this key is still running
    ├── NotFound                   (404)
    │   ├── NotConfigured          an endpoint this deployment does not serve
    │   ├── PaymentNotFound
    │   └── ReservationNotFound
    ├── WebhookRejected            (400) signature or body not acceptable
    │   ├── MalformedEvent         signed, but not an event (stored as rejected)
    │   ├── PayloadTooLarge        (413)
    │   └── UnsupportedMediaType   (415)
    ├── ProviderError              (502) the payment provider refused or failed
    │   └── ProviderUnavailable    (503)
    ├── DatabaseUnavailable        (503)
    └── ConfigurationError         the operator's settings cannot work (the CLI refuses to start)
        └── CatalogError           the product catalog cannot be used

Messages are written for the caller (an agent, an operator or a provider): what was wrong and how
to fix it. They never carry SQL, stack traces or secrets.
"""

from __future__ import annotations


class PaywardenError(Exception):
    """Something went wrong inside paywarden."""

    status: int = 500

    def __init__(self, message: str | None = None) -> None:
        self.message = message or " ".join((self.__doc__ or "").split())
        super().__init__(self.message)


class InvalidRequest(PaywardenError):
    """The request is not valid."""

    status = 400


class UnknownCurrency(InvalidRequest):
    """Unknown currency: use an ISO 4217 code such as USD, EUR or JPY."""


class UnknownProduct(InvalidRequest):
    """Unknown product: use a product_id from the catalog."""


class IdempotencyKeyReused(InvalidRequest):
    """This idempotency_key was already used for a different request; use a new key for a new charge."""


class SpendLimitExceeded(InvalidRequest):
    """The charge exceeds a spend limit set by the operator."""

    status = 403


class InsufficientCredits(InvalidRequest):
    """Not enough credits."""

    status = 402


class NotAllowedNow(InvalidRequest):
    """The payment is not in a state that allows this."""

    status = 409


class MissingScope(PaywardenError):
    status = 403

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"This API key lacks the '{scope}' scope this tool needs; ask the operator for a key with "
            f"--scopes including {scope}."
        )
        self.scope = scope


class InvalidKey(PaywardenError):
    """The API key is not valid: it is wrong, or it has been revoked. Nothing was done."""

    status = 401


class RateLimited(PaywardenError):
    status = 429

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"Too many calls with this API key; retry after {retry_after_seconds} seconds.")
        self.retry_after_seconds = retry_after_seconds


class ChargeInProgress(PaywardenError):
    """The first request with this idempotency_key is still in progress; retry shortly with the same key."""

    status = 409


class NotFound(PaywardenError):
    """Not found."""

    status = 404


class NotConfigured(NotFound):
    """This endpoint is not configured here."""


class PaymentNotFound(NotFound):
    """No payment with that payment_id."""


class ReservationNotFound(NotFound):
    """No reservation with that reservation_id."""


class WebhookRejected(PaywardenError):
    """The webhook was rejected."""

    status = 400


class PayloadTooLarge(WebhookRejected):
    """The request body is too large."""

    status = 413


class MalformedEvent(WebhookRejected):
    """The body is correctly signed but is not an event this endpoint understands."""

    def __init__(self, message: str | None = None, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        """The signed body, kept so the inbox can store it as rejected."""


class UnsupportedMediaType(WebhookRejected):
    """The request body is not of a type this endpoint takes."""

    status = 415


class ProviderError(PaywardenError):
    """The payment provider refused the request."""

    status = 502


class ProviderUnavailable(ProviderError):
    """The payment provider gave no definite answer, so the charge may or may not have gone through.
    Retry with the SAME idempotency_key (never a new one): the retry finds out, and never charges twice."""

    status = 503


class DatabaseUnavailable(PaywardenError):
    """The payments database is not answering. Retry shortly; a retry with the same idempotency_key
    never charges twice."""

    status = 503


class ConfigurationError(PaywardenError):
    """paywarden's settings cannot work; the message says which setting to fix."""


class CatalogError(ConfigurationError):
    """The catalog file cannot be used."""


def for_operator(error: PaywardenError) -> str:
    """The error as an operator should read it: agents are told about idempotency keys, operators are not."""
    if isinstance(error, ProviderUnavailable):
        return (
            "the payment provider did not answer, so the outcome is not known yet; asking again (the same "
            "command, or the next reconciler pass) never charges twice"
        )
    if isinstance(error, ProviderError):
        return f"the payment provider refused: {error.message}"
    if isinstance(error, ChargeInProgress):
        return "another process is talking to the provider about this right now; try again shortly"
    if isinstance(error, DatabaseUnavailable):
        return "the payments database is not answering; check it, then try again"
    return error.message
