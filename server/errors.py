"""One error hierarchy; each class's docstring is its default message.

    PaywardenError                 (status 500)
    ├── InvalidRequest             (400) the call's arguments are wrong
    │   ├── UnknownCurrency
    │   ├── UnknownProduct
    │   ├── IdempotencyKeyReused   (409) the key was used for a different request
    │   ├── SpendLimitExceeded     (403) a configured limit forbids the charge
    │   ├── InsufficientCredits    (402) the balance cannot cover the credits asked for
    │   ├── NotAllowedNow          (409) not allowed in the state the payment, reservation or subscription is in
    │   │   ├── NoSavedPaymentMethod   the customer has no saved card to charge
    │   │   └── SubscriptionExists     the customer already has a live subscription to the product
    │   ├── UnsafeWebhookUrl       a webhook endpoint URL paywarden will not send to
    │   ├── MalformedJson          the body is not JSON
    │   ├── InvalidParameter       (422) a parameter or body field does not match the schema
    │   └── UnknownParameter       (422) a parameter or body field the operation does not take
    ├── Unauthenticated            (401) no API key, or not an active one
    ├── MissingScope               (403) the API key may not call this tool
    ├── InvalidKey                 (401) the API key is wrong or revoked
    ├── NotPermitted               (403) the operator's role does not allow this
    ├── SignInRefused              (401) wrong operator name or password
    ├── RateLimited                (429) too many calls with one API key
    ├── SignInThrottled            (429) too many failed sign-ins for a name or from an address
    ├── ChargeInProgress           (409) the first request with this key is still running
    ├── MethodNotAllowed           (405) the path exists, not with this HTTP method
    ├── NotFound                   (404)
    │   ├── NotConfigured          an endpoint this deployment does not serve
    │   ├── PaymentNotFound
    │   ├── ReservationNotFound
    │   ├── WebhookEndpointNotFound
    │   ├── EventNotFound
    │   ├── CustomerNotFound
    │   └── SubscriptionNotFound
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
to fix it. They never carry SQL, stack traces or secrets. Each class has a stable, machine-readable
`code` (the HTTP API's problem `code`), and `param` names the argument at fault where one is.
"""

from __future__ import annotations


class PaywardenError(Exception):
    """Something went wrong inside paywarden."""

    code = "internal_error"
    status: int = 500
    param: str | None = None
    """The argument at fault, where the class or the raiser knows it."""

    def __init__(self, message: str | None = None, *, param: str | None = None) -> None:
        self.message = message or self.title()
        if param is not None:
            self.param = param
        super().__init__(self.message)

    @classmethod
    def title(cls) -> str:
        """The class's default message: the same for every occurrence of this kind of problem."""
        return " ".join((cls.__doc__ or "").split())


class InvalidRequest(PaywardenError):
    """The request is not valid."""

    code = "invalid_request"
    status = 400


class UnknownCurrency(InvalidRequest):
    """Unknown currency: use an ISO 4217 code such as USD, EUR or JPY."""

    code = "unknown_currency"
    param = "currency"


class UnknownProduct(InvalidRequest):
    """Unknown product: use a product_id from the catalog."""

    code = "unknown_product"
    param = "product_id"


class IdempotencyKeyReused(InvalidRequest):
    """This idempotency_key was already used for a different request; use a new key for a new request."""

    code = "idempotency_key_reused"
    status = 409
    param = "idempotency_key"


class SpendLimitExceeded(InvalidRequest):
    """The charge exceeds a spend limit set by the operator."""

    code = "spend_limit_exceeded"
    status = 403


class InsufficientCredits(InvalidRequest):
    """Not enough credits."""

    code = "insufficient_credits"
    status = 402


class NotAllowedNow(InvalidRequest):
    """Not allowed in the state the payment, reservation or subscription is in now."""

    code = "not_allowed_now"
    status = 409


class NoSavedPaymentMethod(NotAllowedNow):
    """This customer has no saved payment method. Call setup_payment_method for the customer and have the
    person save a card on its setup_url, then charge with payment_method='saved'."""

    code = "no_saved_payment_method"
    param = "payment_method"


class SubscriptionExists(NotAllowedNow):
    """The customer already has a live subscription to this product; cancel it first or use
    change_subscription."""

    code = "subscription_exists"
    param = "product_id"


class UnsafeWebhookUrl(InvalidRequest):
    """paywarden does not send webhooks to this URL."""

    code = "unsafe_webhook_url"
    param = "url"


class MalformedJson(InvalidRequest):
    """The request body is not valid JSON."""

    code = "malformed_json"


class InvalidParameter(InvalidRequest):
    """A parameter does not have the shape this operation takes."""

    code = "invalid_parameter"
    status = 422


class UnknownParameter(InvalidRequest):
    """The request has a parameter this operation does not take."""

    code = "unknown_parameter"
    status = 422


class Unauthenticated(PaywardenError):
    """This call needs an API key: send `Authorization: Bearer pwk_…` with an active key."""

    code = "unauthenticated"
    status = 401


class MissingScope(PaywardenError):
    """This API key lacks the scope this call needs."""

    code = "missing_scope"
    status = 403

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"This API key lacks the '{scope}' scope this call needs; ask the operator for a key with "
            f"--scopes including {scope}."
        )
        self.scope = scope


class InvalidKey(Unauthenticated):
    """The API key is not valid: it is wrong, or it has been revoked. Check the key you send, or ask the
    operator for a new one (paywarden keys create). Nothing was done."""

    code = "invalid_key"


class TooManyWrongKeys(PaywardenError):
    """Too many requests with wrong API keys from this address; wait a minute."""

    code = "too_many_wrong_keys"
    status = 429


class RateLimited(PaywardenError):
    """Too many calls with this API key."""

    code = "rate_limited"
    status = 429

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"Too many calls with this API key; retry after {retry_after_seconds} seconds.")
        self.retry_after_seconds = retry_after_seconds


class NotPermitted(PaywardenError):
    """Your role does not allow this; ask an admin."""

    status = 403


class SignInRefused(PaywardenError):
    """Wrong name or password."""

    status = 401


class SignInThrottled(PaywardenError):
    status = 429

    def __init__(self, retry_after_seconds: int) -> None:
        minutes = max(1, -(-retry_after_seconds // 60))
        super().__init__(
            f"Too many failed sign-ins for this name or from this address; try again in {minutes} minute(s)."
        )
        self.retry_after_seconds = retry_after_seconds


class ChargeInProgress(PaywardenError):
    """The first request with this idempotency_key is still in progress; retry shortly with the same key."""

    code = "request_in_progress"
    status = 409


class MethodNotAllowed(PaywardenError):
    """This path does not take this HTTP method."""

    code = "method_not_allowed"
    status = 405


class NotFound(PaywardenError):
    """Not found."""

    code = "not_found"
    status = 404


class NotConfigured(NotFound):
    """This endpoint is not configured here."""

    code = "not_configured"


class PaymentNotFound(NotFound):
    """No payment with that payment_id."""

    code = "payment_not_found"


class SubscriptionNotFound(NotFound):
    """No subscription with that subscription_id."""

    code = "subscription_not_found"
    param = "subscription_id"


class CustomerNotFound(NotFound):
    """No customer with that customer_id."""

    code = "customer_not_found"
    param = "customer_id"


class ReservationNotFound(NotFound):
    """No reservation with that reservation_id."""

    code = "reservation_not_found"


class WebhookEndpointNotFound(NotFound):
    """No webhook endpoint with that id."""

    code = "webhook_endpoint_not_found"


class EventNotFound(NotFound):
    """No event with that id."""

    code = "event_not_found"


class WebhookRejected(PaywardenError):
    """The webhook was rejected."""

    code = "webhook_rejected"
    status = 400


class PayloadTooLarge(WebhookRejected):
    """The request body is too large."""

    code = "payload_too_large"
    status = 413


class MalformedEvent(WebhookRejected):
    """The body is correctly signed but is not an event this endpoint understands."""

    code = "malformed_event"

    def __init__(self, message: str | None = None, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        """The signed body, kept so the inbox can store it as rejected."""


class UnsupportedMediaType(WebhookRejected):
    """The request body is not of a type this endpoint takes."""

    code = "unsupported_media_type"
    status = 415


class ProviderError(PaywardenError):
    """The payment provider refused the request."""

    code = "provider_error"
    status = 502


class ProviderUnavailable(ProviderError):
    """The payment provider gave no definite answer, so the charge may or may not have gone through.
    Retry with the SAME idempotency_key (never a new one): the retry finds out, and never charges twice."""

    code = "provider_unavailable"
    status = 503


class DatabaseUnavailable(PaywardenError):
    """The payments database is not answering. Retry shortly; a retry with the same idempotency_key
    never charges twice."""

    code = "database_unavailable"
    status = 503


class ConfigurationError(PaywardenError):
    """paywarden's settings cannot work; the message says which setting to fix."""

    code = "configuration_error"


class CatalogError(ConfigurationError):
    """The catalog file cannot be used."""

    code = "catalog_error"


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
