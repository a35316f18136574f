"""Every top-level field of the Stripe objects the sandbox returns, as templates.

Field lists and types: stripe-python 16.1.0 (API version 2026-10-28.endive), the resource classes
under <site-packages>/stripe/ named in each docstring. The SDK is generated from Stripe's OpenAPI spec
and declares every top-level attribute of an object with its type; tests/test_stripe_objects.py
asserts that each template's key set equals the class's declared attributes, that every value has the
SDK's type, and that what the sandbox really answers has the same shape — so an SDK upgrade that adds
or moves a field fails there, naming it. (Generated once from the SDK; kept by hand since.)

Each template function returns a fresh dict (mutate freely) holding every top-level field with a
type-correct neutral default:
  * nullable / SDK-Optional fields -> None  (a few always-present ones on Customer are given real
    neutral values, see comments);
  * metadata -> {};  non-nullable bool -> False;  non-nullable int -> 0;
  * non-nullable arrays -> [];  non-nullable list objects -> _list_object(url);
  * non-nullable nested objects -> a dict with all of their fields, recursively;
  * non-nullable enums -> the value Stripe gives a newly created object;
  * currency -> "usd";  object -> the object name;  livemode -> False;
  * non-nullable ids / references without a neutral value -> "" and listed in MUST_FILL.
The comment after each field is the SDK's annotation (long Literal lists cut).
ExpandableField[X] means: the id string, or the full X object when the request asked for
expand[]=field.  Fields in EXPANDABLE are those.

Nested objects the sandbox fills in (a card, a next action, a payment error) have templates of
their own at the end, with every field their SDK class declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SDK_VERSION = "16.1.0"
API_VERSION = "2026-10-28.endive"


def _list_object(url: str) -> dict:
    """A Stripe list object as embedded in another object (e.g. subscription.items)."""
    return {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": url}


def payment_intent_template(id: str = "") -> dict:
    """Stripe `payment_intent` object -- 47 top-level fields.

    Source: stripe-python 16.1.0, stripe/_payment_intent.py (class stripe.PaymentIntent), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/payment_intents/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "payment_intent",  # Literal["payment_intent"]
        "allowed_payment_method_types": None,  # Optional[List[Union[Literal["acss_debit", "affirm", "afterpay_clearpay", ...96 more], str]]]
        "amount": 0,  # int
        "amount_capturable": 0,  # int
        "amount_details": None,  # Optional[AmountDetails]
        "amount_received": 0,  # int
        "application": None,  # Optional[ExpandableField[Application]]
        "application_fee_amount": None,  # Optional[int]
        "automatic_payment_methods": None,  # Optional[AutomaticPaymentMethods]
        "canceled_at": None,  # Optional[int]
        "cancellation_reason": None,  # Optional[Union[Literal["abandoned", "automatic", "duplicate", ...5 more], str]]
        "capture_method": "automatic",  # Union[Literal["automatic", "automatic_async", "manual"], str]
        "client_secret": None,  # Optional[str]
        "confirmation_method": "automatic",  # Union[Literal["automatic", "manual"], str]
        "created": 0,  # int
        "currency": "usd",  # str
        "customer": None,  # Optional[ExpandableField[Customer]]
        "customer_account": None,  # Optional[str]
        "description": None,  # Optional[str]
        "excluded_payment_method_types": None,  # Optional[List[Union[Literal["acss_debit", "affirm", "afterpay_clearpay", ...52 more], str]]]
        "hooks": None,  # Optional[Hooks]
        "last_payment_error": None,  # Optional[LastPaymentError]
        "latest_charge": None,  # Optional[ExpandableField[Charge]]
        "livemode": False,  # bool
        "managed_payments": None,  # Optional[ManagedPayments]
        "metadata": {},  # UntypedStripeObject[str]
        "next_action": None,  # Optional[NextAction]
        "on_behalf_of": None,  # Optional[ExpandableField[Account]]
        "payment_details": None,  # Optional[PaymentDetails]
        "payment_method": None,  # Optional[ExpandableField[PaymentMethod]]
        "payment_method_configuration_details": None,  # Optional[PaymentMethodConfigurationDetails]
        "payment_method_options": None,  # Optional[PaymentMethodOptions]
        "payment_method_types": ["card"],  # List[str]
        "payment_record": None,  # Optional[ExpandableField[PaymentRecord]]
        "presentment_details": None,  # Optional[PresentmentDetails]
        "processing": None,  # Optional[Processing]
        "receipt_email": None,  # Optional[str]
        "review": None,  # Optional[ExpandableField[Review]]
        "setup_future_usage": None,  # Optional[Union[Literal["off_session", "on_session"], str]]
        "shipping": None,  # Optional[Shipping]
        "source": None,  # Optional[ExpandableField[Union[Account, BankAccount, CardResource, Source]]]
        "statement_descriptor": None,  # Optional[str]
        "statement_descriptor_suffix": None,  # Optional[str]
        "status": "requires_payment_method",  # Union[Literal["canceled", "processing", "requires_action", ...4 more], str]
        "transfer_data": None,  # Optional[TransferData]
        "transfer_group": None,  # Optional[str]
    }


def customer_template(id: str = "") -> dict:
    """Stripe `customer` object -- 32 top-level fields.

    Source: stripe-python 16.1.0, stripe/_customer.py (class stripe.Customer), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/customers/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "customer",  # Literal["customer"]
        "address": None,  # Optional[Address]
        "balance": 0,  # Optional[int]
        "business_name": None,  # Optional[str]
        "cash_balance": None,  # Optional[CashBalance]
        "created": 0,  # int
        "currency": None,  # Optional[str]
        "customer_account": None,  # Optional[str]
        "default_source": None,  # Optional[ExpandableField[Union[Account, BankAccount, Card, Source]]]
        "deleted": None,  # Optional[Literal[True]]
        "delinquent": False,  # Optional[bool]
        "description": None,  # Optional[str]
        "discount": None,  # Optional[Discount]
        "email": None,  # Optional[str]
        "individual_name": None,  # Optional[str]
        "invoice_credit_balance": None,  # Optional[UntypedStripeObject[int]]
        "invoice_prefix": None,  # Optional[str]
        "invoice_settings": {  # Optional[InvoiceSettings]
            "custom_fields": None,  # Optional[List[CustomField]]
            "default_payment_method": None,  # Optional[ExpandableField[PaymentMethod]]
            "footer": None,  # Optional[str]
            "rendering_options": None,  # Optional[RenderingOptions]
        },
        "livemode": False,  # bool
        "metadata": {},  # Optional[UntypedStripeObject[str]]
        "name": None,  # Optional[str]
        "next_invoice_sequence": None,  # Optional[int]
        "phone": None,  # Optional[str]
        "preferred_locales": [],  # Optional[List[str]]
        "shipping": None,  # Optional[Shipping]
        "sources": None,  # Optional[ListObject[Union[Account, BankAccount, Card, Source]]]
        "subscriptions": None,  # Optional[ListObject[Subscription]]
        "tax": None,  # Optional[Tax]
        "tax_exempt": "none",  # Optional[Union[Literal["exempt", "none", "reverse"], str]]
        "tax_ids": None,  # Optional[ListObject[TaxId]]
        "test_clock": None,  # Optional[ExpandableField[TestClock]]
    }


def payment_method_template(id: str = "") -> dict:
    """Stripe `payment_method` object -- 70 top-level fields.

    Source: stripe-python 16.1.0, stripe/_payment_method.py (class stripe.PaymentMethod), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/payment_methods/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "payment_method",  # Literal["payment_method"]
        "acss_debit": None,  # Optional[AcssDebit]
        "affirm": None,  # Optional[Affirm]
        "afterpay_clearpay": None,  # Optional[AfterpayClearpay]
        "alipay": None,  # Optional[Alipay]
        "allow_redisplay": None,  # Optional[Union[Literal["always", "limited", "unspecified"], str]]
        "alma": None,  # Optional[Alma]
        "amazon_pay": None,  # Optional[AmazonPay]
        "au_becs_debit": None,  # Optional[AuBecsDebit]
        "bacs_debit": None,  # Optional[BacsDebit]
        "bancontact": None,  # Optional[Bancontact]
        "billie": None,  # Optional[Billie]
        "billing_details": {  # BillingDetails
            "address": None,  # Optional[Address]
            "email": None,  # Optional[str]
            "name": None,  # Optional[str]
            "phone": None,  # Optional[str]
            "tax_id": None,  # Optional[str]
        },
        "bizum": None,  # Optional[Bizum]
        "blik": None,  # Optional[Blik]
        "boleto": None,  # Optional[Boleto]
        "card": None,  # Optional[Card]
        "card_present": None,  # Optional[CardPresent]
        "cashapp": None,  # Optional[Cashapp]
        "created": 0,  # int
        "crypto": None,  # Optional[Crypto]
        "custom": None,  # Optional[Custom]
        "customer": None,  # Optional[ExpandableField[Customer]]
        "customer_account": None,  # Optional[str]
        "customer_balance": None,  # Optional[CustomerBalance]
        "eps": None,  # Optional[Eps]
        "fpx": None,  # Optional[Fpx]
        "giropay": None,  # Optional[Giropay]
        "grabpay": None,  # Optional[Grabpay]
        "ideal": None,  # Optional[Ideal]
        "interac_present": None,  # Optional[InteracPresent]
        "kakao_pay": None,  # Optional[KakaoPay]
        "klarna": None,  # Optional[Klarna]
        "konbini": None,  # Optional[Konbini]
        "kr_card": None,  # Optional[KrCard]
        "link": None,  # Optional[Link]
        "livemode": False,  # bool
        "mb_way": None,  # Optional[MbWay]
        "metadata": {},  # Optional[UntypedStripeObject[str]]
        "mobilepay": None,  # Optional[Mobilepay]
        "multibanco": None,  # Optional[Multibanco]
        "naver_pay": None,  # Optional[NaverPay]
        "nz_bank_account": None,  # Optional[NzBankAccount]
        "oxxo": None,  # Optional[Oxxo]
        "p24": None,  # Optional[P24]
        "pay_by_bank": None,  # Optional[PayByBank]
        "payco": None,  # Optional[Payco]
        "paynow": None,  # Optional[Paynow]
        "paypal": None,  # Optional[Paypal]
        "paypay": None,  # Optional[Paypay]
        "payto": None,  # Optional[Payto]
        "pix": None,  # Optional[Pix]
        "promptpay": None,  # Optional[Promptpay]
        "radar_options": None,  # Optional[RadarOptions]
        "revolut_pay": None,  # Optional[RevolutPay]
        "samsung_pay": None,  # Optional[SamsungPay]
        "satispay": None,  # Optional[Satispay]
        "scalapay": None,  # Optional[Scalapay]
        "sepa_debit": None,  # Optional[SepaDebit]
        "sequra": None,  # Optional[Sequra]
        "sofort": None,  # Optional[Sofort]
        "sunbit": None,  # Optional[Sunbit]
        "swish": None,  # Optional[Swish]
        "twint": None,  # Optional[Twint]
        "type": "card",  # Union[Literal["acss_debit", "affirm", "afterpay_clearpay", ...56 more], str]
        "upi": None,  # Optional[Upi]
        "us_bank_account": None,  # Optional[UsBankAccount]
        "wechat_pay": None,  # Optional[WechatPay]
        "zip": None,  # Optional[Zip]
    }


def setup_intent_template(id: str = "") -> dict:
    """Stripe `setup_intent` object -- 29 top-level fields.

    Source: stripe-python 16.1.0, stripe/_setup_intent.py (class stripe.SetupIntent), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/setup_intents/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "setup_intent",  # Literal["setup_intent"]
        "allowed_payment_method_types": None,  # Optional[List[Union[Literal["acss_debit", "affirm", "afterpay_clearpay", ...96 more], str]]]
        "application": None,  # Optional[ExpandableField[Application]]
        "attach_to_self": None,  # Optional[bool]
        "automatic_payment_methods": None,  # Optional[AutomaticPaymentMethods]
        "cancellation_reason": None,  # Optional[Union[Literal["abandoned", "duplicate", "requested_by_customer"], str]]
        "client_secret": None,  # Optional[str]
        "created": 0,  # int
        "customer": None,  # Optional[ExpandableField[Customer]]
        "customer_account": None,  # Optional[str]
        "description": None,  # Optional[str]
        "excluded_payment_method_types": None,  # Optional[List[Union[Literal["acss_debit", "affirm", "afterpay_clearpay", ...52 more], str]]]
        "flow_directions": None,  # Optional[List[Union[Literal["inbound", "outbound"], str]]]
        "last_setup_error": None,  # Optional[LastSetupError]
        "latest_attempt": None,  # Optional[ExpandableField[SetupAttempt]]
        "livemode": False,  # bool
        "managed_payments": None,  # Optional[ManagedPayments]
        "mandate": None,  # Optional[ExpandableField[Mandate]]
        "metadata": {},  # Optional[UntypedStripeObject[str]]
        "next_action": None,  # Optional[NextAction]
        "on_behalf_of": None,  # Optional[ExpandableField[Account]]
        "payment_method": None,  # Optional[ExpandableField[PaymentMethod]]
        "payment_method_configuration_details": None,  # Optional[PaymentMethodConfigurationDetails]
        "payment_method_options": None,  # Optional[PaymentMethodOptions]
        "payment_method_types": ["card"],  # List[str]
        "single_use_mandate": None,  # Optional[ExpandableField[Mandate]]
        "status": "requires_payment_method",  # Union[Literal["canceled", "processing", "requires_action", ...3 more], str]
        "usage": "off_session",  # str
    }


def checkout_session_template(id: str = "") -> dict:
    """Stripe `checkout.session` object -- 69 top-level fields.

    Source: stripe-python 16.1.0, stripe/checkout/_session.py (class stripe.checkout.Session), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/checkout/sessions/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "checkout.session",  # Literal["checkout.session"]
        "adaptive_pricing": None,  # Optional[AdaptivePricing]
        "after_expiration": None,  # Optional[AfterExpiration]
        "allow_promotion_codes": None,  # Optional[bool]
        "allowed_payment_method_types": None,  # Optional[List[str]]
        "amount_subtotal": None,  # Optional[int]
        "amount_total": None,  # Optional[int]
        "automatic_tax": {  # AutomaticTax
            "enabled": False,  # bool
            "liability": None,  # Optional[Liability]
            "provider": None,  # Optional[str]
            "status": None,  # Optional[Union[Literal["complete", "failed", "requires_location_inputs"], str]]
        },
        "billing_address_collection": None,  # Optional[Union[Literal["auto", "required"], str]]
        "branding_settings": None,  # Optional[BrandingSettings]
        "cancel_url": None,  # Optional[str]
        "client_reference_id": None,  # Optional[str]
        "client_secret": None,  # Optional[str]
        "collected_information": None,  # Optional[CollectedInformation]
        "consent": None,  # Optional[Consent]
        "consent_collection": None,  # Optional[ConsentCollection]
        "created": 0,  # int
        "currency": None,  # Optional[str]
        "currency_conversion": None,  # Optional[CurrencyConversion]
        "custom_fields": [],  # List[CustomField]
        "custom_text": {  # CustomText
            "after_submit": None,  # Optional[AfterSubmit]
            "shipping_address": None,  # Optional[ShippingAddress]
            "submit": None,  # Optional[Submit]
            "terms_of_service_acceptance": None,  # Optional[TermsOfServiceAcceptance]
        },
        "customer": None,  # Optional[ExpandableField[Customer]]
        "customer_account": None,  # Optional[str]
        "customer_creation": None,  # Optional[Union[Literal["always", "if_required"], str]]
        "customer_details": None,  # Optional[CustomerDetails]
        "customer_email": None,  # Optional[str]
        "discounts": None,  # Optional[List[Discount]]
        "excluded_payment_method_types": None,  # Optional[List[str]]
        "expires_at": 0,  # int
        "integration_identifier": None,  # Optional[str]
        "invoice": None,  # Optional[ExpandableField[Invoice]]
        "invoice_creation": None,  # Optional[InvoiceCreation]
        "line_items": None,  # Optional[ListObject[LineItem]]
        "livemode": False,  # bool
        "locale": None,  # Optional[Union[Literal["auto", "bg", "cs", ...39 more], str]]
        "managed_payments": None,  # Optional[ManagedPayments]
        "metadata": {},  # Optional[UntypedStripeObject[str]]
        "mode": "payment",  # Union[Literal["payment", "setup", "subscription"], str]
        "name_collection": None,  # Optional[NameCollection]
        "optional_items": None,  # Optional[List[OptionalItem]]
        "origin_context": None,  # Optional[Union[Literal["mobile_app", "web"], str]]
        "payment_intent": None,  # Optional[ExpandableField[PaymentIntent]]
        "payment_link": None,  # Optional[ExpandableField[PaymentLink]]
        "payment_method_collection": None,  # Optional[Union[Literal["always", "if_required"], str]]
        "payment_method_configuration_details": None,  # Optional[PaymentMethodConfigurationDetails]
        "payment_method_options": None,  # Optional[PaymentMethodOptions]
        "payment_method_types": ["card"],  # List[str]
        "payment_status": "unpaid",  # Union[Literal["no_payment_required", "paid", "unpaid"], str]
        "permissions": None,  # Optional[Permissions]
        "phone_number_collection": None,  # Optional[PhoneNumberCollection]
        "presentment_details": None,  # Optional[PresentmentDetails]
        "recovered_from": None,  # Optional[str]
        "redirect_on_completion": None,  # Optional[Union[Literal["always", "if_required", "never"], str]]
        "return_url": None,  # Optional[str]
        "saved_payment_method_options": None,  # Optional[SavedPaymentMethodOptions]
        "setup_intent": None,  # Optional[ExpandableField[SetupIntent]]
        "shipping_address_collection": None,  # Optional[ShippingAddressCollection]
        "shipping_cost": None,  # Optional[ShippingCost]
        "shipping_options": [],  # List[ShippingOption]
        "status": None,  # Optional[Union[Literal["complete", "expired", "open"], str]]
        "submit_type": None,  # Optional[Union[Literal["auto", "book", "donate", ...2 more], str]]
        "subscription": None,  # Optional[ExpandableField[Subscription]]
        "success_url": None,  # Optional[str]
        "tax_id_collection": None,  # Optional[TaxIdCollection]
        "total_details": None,  # Optional[TotalDetails]
        "ui_mode": None,  # Optional[Union[Literal["elements", "embedded_page", "form", "hosted_page"], str]]
        "url": None,  # Optional[str]
        "wallet_options": None,  # Optional[WalletOptions]
    }


def event_template(id: str = "") -> dict:
    """Stripe `event` object -- 11 top-level fields.

    Source: stripe-python 16.1.0, stripe/_event.py (class stripe.Event), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/events/object
    Must be set by the caller: id, data.object, type.
    """
    return {
        "id": id,  # str
        "object": "event",  # Literal["event"]
        "account": None,  # Optional[str]
        "api_version": None,  # Optional[str]
        "context": None,  # Optional[str]
        "created": 0,  # int
        "data": {  # Data
            "object": {},  # UntypedStripeObject[Any]
            "previous_attributes": None,  # Optional[UntypedStripeObject[Any]]
        },
        "livemode": False,  # bool
        "pending_webhooks": 0,  # int
        "request": None,  # Optional[Request]
        "type": "",  # Literal["account.application.authorized", "account.application.deauthorized", "account.external_account.created", ...272 more]  (placeholder: must be set)
    }


def refund_template(id: str = "") -> dict:
    """Stripe `refund` object -- 25 top-level fields.

    Source: stripe-python 16.1.0, stripe/_refund.py (class stripe.Refund), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/refunds/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "refund",  # Literal["refund"]
        "amount": 0,  # int
        "balance_transaction": None,  # Optional[ExpandableField[BalanceTransaction]]
        "charge": None,  # Optional[ExpandableField[Charge]]
        "created": 0,  # int
        "currency": "usd",  # str
        "customer": None,  # Optional[ExpandableField[Customer]]
        "customer_account": None,  # Optional[str]
        "description": None,  # Optional[str]
        "destination_details": None,  # Optional[DestinationDetails]
        "failure_balance_transaction": None,  # Optional[ExpandableField[BalanceTransaction]]
        "failure_reason": None,  # Optional[str]
        "instructions_email": None,  # Optional[str]
        "metadata": {},  # Optional[UntypedStripeObject[str]]
        "next_action": None,  # Optional[NextAction]
        "payment_intent": None,  # Optional[ExpandableField[PaymentIntent]]
        "payment_method": None,  # Optional[ExpandableField[PaymentMethod]]
        "pending_reason": None,  # Optional[Union[Literal["charge_pending", "insufficient_funds", "processing"], str]]
        "presentment_details": None,  # Optional[PresentmentDetails]
        "reason": None,  # Optional[Union[Literal["duplicate", "expired_uncaptured_charge", "fraudulent", "requested_by_customer"], str]]
        "receipt_number": None,  # Optional[str]
        "source_transfer_reversal": None,  # Optional[ExpandableField[TransferReversal]]
        "status": None,  # Optional[str]
        "transfer_reversal": None,  # Optional[ExpandableField[TransferReversal]]
    }


def charge_template(id: str = "") -> dict:
    """Stripe `charge` object -- 48 top-level fields.

    Source: stripe-python 16.1.0, stripe/_charge.py (class stripe.Charge), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/charges/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "charge",  # Literal["charge"]
        "amount": 0,  # int
        "amount_captured": 0,  # int
        "amount_refunded": 0,  # int
        "application": None,  # Optional[ExpandableField[Application]]
        "application_fee": None,  # Optional[ExpandableField[ApplicationFee]]
        "application_fee_amount": None,  # Optional[int]
        "authorization_code": None,  # Optional[str]
        "balance_transaction": None,  # Optional[ExpandableField[BalanceTransaction]]
        "billing_details": {  # BillingDetails
            "address": None,  # Optional[Address]
            "email": None,  # Optional[str]
            "name": None,  # Optional[str]
            "phone": None,  # Optional[str]
            "tax_id": None,  # Optional[str]
        },
        "calculated_statement_descriptor": None,  # Optional[str]
        "captured": False,  # bool
        "created": 0,  # int
        "currency": "usd",  # str
        "customer": None,  # Optional[ExpandableField[Customer]]
        "description": None,  # Optional[str]
        "disputed": False,  # bool
        "failure_balance_transaction": None,  # Optional[ExpandableField[BalanceTransaction]]
        "failure_code": None,  # Optional[str]
        "failure_message": None,  # Optional[str]
        "fraud_details": None,  # Optional[FraudDetails]
        "level3": None,  # Optional[Level3]
        "livemode": False,  # bool
        "metadata": {},  # UntypedStripeObject[str]
        "on_behalf_of": None,  # Optional[ExpandableField[Account]]
        "outcome": None,  # Optional[Outcome]
        "paid": False,  # bool
        "payment_intent": None,  # Optional[ExpandableField[PaymentIntent]]
        "payment_method": None,  # Optional[str]
        "payment_method_details": None,  # Optional[PaymentMethodDetails]
        "presentment_details": None,  # Optional[PresentmentDetails]
        "radar_options": None,  # Optional[RadarOptions]
        "receipt_email": None,  # Optional[str]
        "receipt_number": None,  # Optional[str]
        "receipt_url": None,  # Optional[str]
        "refunded": False,  # bool
        "refunds": None,  # Optional[ListObject[Refund]]
        "review": None,  # Optional[ExpandableField[Review]]
        "shipping": None,  # Optional[Shipping]
        "source": None,  # Optional[Union[Account, BankAccount, CardResource, Source]]
        "source_transfer": None,  # Optional[ExpandableField[Transfer]]
        "statement_descriptor": None,  # Optional[str]
        "statement_descriptor_suffix": None,  # Optional[str]
        "status": "pending",  # Union[Literal["failed", "pending", "succeeded"], str]
        "transfer": None,  # Optional[ExpandableField[Transfer]]
        "transfer_data": None,  # Optional[TransferData]
        "transfer_group": None,  # Optional[str]
    }


def subscription_template(id: str = "") -> dict:
    """Stripe `subscription` object -- 49 top-level fields.

    Source: stripe-python 16.1.0, stripe/_subscription.py (class stripe.Subscription), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/subscriptions/object
    Must be set by the caller: id, customer.
    """
    return {
        "id": id,  # str
        "object": "subscription",  # Literal["subscription"]
        "application": None,  # Optional[ExpandableField[Application]]
        "application_fee_percent": None,  # Optional[float]
        "automatic_tax": {  # AutomaticTax
            "disabled_reason": None,  # Optional[Literal["requires_location_inputs"]]
            "enabled": False,  # bool
            "liability": None,  # Optional[Liability]
        },
        "billing_cycle_anchor": 0,  # int
        "billing_cycle_anchor_config": None,  # Optional[BillingCycleAnchorConfig]
        "billing_mode": {  # BillingMode
            "flexible": None,  # Optional[Flexible]
            "type": "flexible",  # Union[Literal["classic", "flexible"], str]
            "updated_at": None,  # Optional[int]
        },
        "billing_schedules": [],  # List[BillingSchedule]
        "billing_thresholds": None,  # Optional[BillingThresholds]
        "cancel_at": None,  # Optional[int]
        "cancel_at_period_end": False,  # bool
        "canceled_at": None,  # Optional[int]
        "cancellation_details": None,  # Optional[CancellationDetails]
        "collection_method": "charge_automatically",  # Union[Literal["charge_automatically", "send_invoice"], str]
        "created": 0,  # int
        "currency": "usd",  # str
        "customer": "",  # ExpandableField[Customer]  (placeholder: must be set)
        "customer_account": None,  # Optional[str]
        "days_until_due": None,  # Optional[int]
        "default_payment_method": None,  # Optional[ExpandableField[PaymentMethod]]
        "default_source": None,  # Optional[ExpandableField[Union[Account, BankAccount, CardResource, Source]]]
        "default_tax_rates": None,  # Optional[List[TaxRate]]
        "description": None,  # Optional[str]
        "discounts": [],  # List[ExpandableField[Discount]]
        "ended_at": None,  # Optional[int]
        "invoice_settings": {  # InvoiceSettings
            "account_tax_ids": None,  # Optional[List[ExpandableField[TaxId]]]
            "custom_fields": None,  # Optional[List[CustomField]]
            "description": None,  # Optional[str]
            "footer": None,  # Optional[str]
            "issuer": {  # Issuer
                "account": None,  # Optional[ExpandableField[Account]]
                "type": "self",  # Union[Literal["account", "self"], str]
            },
        },
        "items": _list_object(f"/v1/subscription_items?subscription={id}"),  # ListObject[SubscriptionItem]
        "latest_invoice": None,  # Optional[ExpandableField[Invoice]]
        "livemode": False,  # bool
        "managed_payments": None,  # Optional[ManagedPayments]
        "metadata": {},  # UntypedStripeObject[str]
        "next_pending_invoice_item_invoice": None,  # Optional[int]
        "on_behalf_of": None,  # Optional[ExpandableField[Account]]
        "pause_collection": None,  # Optional[PauseCollection]
        "payment_settings": None,  # Optional[PaymentSettings]
        "pending_invoice_item_interval": None,  # Optional[PendingInvoiceItemInterval]
        "pending_setup_intent": None,  # Optional[ExpandableField[SetupIntent]]
        "pending_update": None,  # Optional[PendingUpdate]
        "presentment_details": None,  # Optional[PresentmentDetails]
        "schedule": None,  # Optional[ExpandableField[SubscriptionSchedule]]
        "start_date": 0,  # int
        "status": "incomplete",  # Union[Literal["active", "canceled", "incomplete", ...5 more], str]
        "status_details": None,  # Optional[StatusDetails]
        "test_clock": None,  # Optional[ExpandableField[TestClock]]
        "transfer_data": None,  # Optional[TransferData]
        "trial_end": None,  # Optional[int]
        "trial_settings": None,  # Optional[TrialSettings]
        "trial_start": None,  # Optional[int]
    }


def invoice_template(id: str = "") -> dict:
    """Stripe `invoice` object -- 80 top-level fields.

    Source: stripe-python 16.1.0, stripe/_invoice.py (class stripe.Invoice), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/invoices/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "invoice",  # Literal["invoice"]
        "account_country": None,  # Optional[str]
        "account_name": None,  # Optional[str]
        "account_tax_ids": None,  # Optional[List[ExpandableField[TaxId]]]
        "amount_due": 0,  # int
        "amount_overpaid": 0,  # int
        "amount_paid": 0,  # int
        "amount_paid_off_stripe": None,  # Optional[int]
        "amount_remaining": 0,  # int
        "amount_shipping": 0,  # int
        "application": None,  # Optional[ExpandableField[Application]]
        "attempt_count": 0,  # int
        "attempted": False,  # bool
        "auto_advance": None,  # Optional[bool]
        "automatic_tax": {  # AutomaticTax
            "disabled_reason": None,  # Optional[Union[Literal["finalization_requires_location_inputs", "finalization_system_error"], str]]
            "enabled": False,  # bool
            "liability": None,  # Optional[Liability]
            "provider": None,  # Optional[str]
            "status": None,  # Optional[Union[Literal["complete", "failed", "requires_location_inputs"], str]]
        },
        "automatically_finalizes_at": None,  # Optional[int]
        "billing_reason": None,  # Optional[Union[Literal["automatic_pending_invoice_item_invoice", "manual", "quote_accept", ...6 more], str]]
        "collection_method": "charge_automatically",  # Union[Literal["charge_automatically", "send_invoice"], str]
        "confirmation_secret": None,  # Optional[ConfirmationSecret]
        "created": 0,  # int
        "currency": "usd",  # str
        "custom_fields": None,  # Optional[List[CustomField]]
        "customer": None,  # Optional[ExpandableField[Customer]]
        "customer_account": None,  # Optional[str]
        "customer_address": None,  # Optional[CustomerAddress]
        "customer_email": None,  # Optional[str]
        "customer_name": None,  # Optional[str]
        "customer_phone": None,  # Optional[str]
        "customer_shipping": None,  # Optional[CustomerShipping]
        "customer_tax_exempt": None,  # Optional[Union[Literal["exempt", "none", "reverse"], str]]
        "customer_tax_ids": None,  # Optional[List[CustomerTaxId]]
        "default_payment_method": None,  # Optional[ExpandableField[PaymentMethod]]
        "default_source": None,  # Optional[ExpandableField[Union[Account, BankAccount, CardResource, Source]]]
        "default_tax_rates": [],  # List[TaxRate]
        "deleted": None,  # Optional[Literal[True]]
        "description": None,  # Optional[str]
        "discounts": [],  # List[ExpandableField[Discount]]
        "due_date": None,  # Optional[int]
        "effective_at": None,  # Optional[int]
        "ending_balance": None,  # Optional[int]
        "footer": None,  # Optional[str]
        "from_invoice": None,  # Optional[FromInvoice]
        "hosted_invoice_url": None,  # Optional[str]
        "invoice_pdf": None,  # Optional[str]
        "issuer": {  # Issuer
            "account": None,  # Optional[ExpandableField[Account]]
            "type": "self",  # Union[Literal["account", "self"], str]
        },
        "last_finalization_error": None,  # Optional[LastFinalizationError]
        "latest_revision": None,  # Optional[ExpandableField[Invoice]]
        "lines": _list_object(f"/v1/invoices/{id}/lines"),  # ListObject[InvoiceLineItem]
        "livemode": False,  # bool
        "metadata": {},  # Optional[UntypedStripeObject[str]]
        "next_payment_attempt": None,  # Optional[int]
        "number": None,  # Optional[str]
        "on_behalf_of": None,  # Optional[ExpandableField[Account]]
        "parent": None,  # Optional[Parent]
        "payment_settings": {  # PaymentSettings
            "default_mandate": None,  # Optional[str]
            "payment_method_options": None,  # Optional[PaymentMethodOptions]
            "payment_method_types": None,  # Optional[List[Union[Literal["ach_credit_transfer", "ach_debit", "acss_debit", ...48 more], str]]]
        },
        "payments": None,  # Optional[ListObject[InvoicePayment]]
        "period_end": 0,  # int
        "period_start": 0,  # int
        "post_payment_credit_notes_amount": 0,  # int
        "pre_payment_credit_notes_amount": 0,  # int
        "receipt_number": None,  # Optional[str]
        "rendering": None,  # Optional[Rendering]
        "shipping_cost": None,  # Optional[ShippingCost]
        "shipping_details": None,  # Optional[ShippingDetails]
        "starting_balance": 0,  # int
        "statement_descriptor": None,  # Optional[str]
        "status": None,  # Optional[Union[Literal["draft", "open", "paid", ...2 more], str]]
        "status_details": None,  # Optional[StatusDetails]
        "status_transitions": {  # StatusTransitions
            "finalized_at": None,  # Optional[int]
            "marked_uncollectible_at": None,  # Optional[int]
            "paid_at": None,  # Optional[int]
            "voided_at": None,  # Optional[int]
        },
        "subtotal": 0,  # int
        "subtotal_excluding_tax": None,  # Optional[int]
        "test_clock": None,  # Optional[ExpandableField[TestClock]]
        "threshold_reason": None,  # Optional[ThresholdReason]
        "total": 0,  # int
        "total_discount_amounts": None,  # Optional[List[TotalDiscountAmount]]
        "total_excluding_tax": None,  # Optional[int]
        "total_pretax_credit_amounts": None,  # Optional[List[TotalPretaxCreditAmount]]
        "total_taxes": None,  # Optional[List[TotalTax]]
        "webhooks_delivered_at": None,  # Optional[int]
    }


def price_template(id: str = "") -> dict:
    """Stripe `price` object -- 22 top-level fields.

    Source: stripe-python 16.1.0, stripe/_price.py (class stripe.Price), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/prices/object
    Must be set by the caller: id, product.
    """
    return {
        "id": id,  # str
        "object": "price",  # Literal["price"]
        "active": False,  # bool
        "billing_scheme": "per_unit",  # Union[Literal["per_unit", "tiered"], str]
        "created": 0,  # int
        "currency": "usd",  # str
        "currency_options": None,  # Optional[UntypedStripeObject[CurrencyOptions]]
        "custom_unit_amount": None,  # Optional[CustomUnitAmount]
        "deleted": None,  # Optional[Literal[True]]
        "livemode": False,  # bool
        "lookup_key": None,  # Optional[str]
        "metadata": {},  # UntypedStripeObject[str]
        "nickname": None,  # Optional[str]
        "product": "",  # ExpandableField[Product]  (placeholder: must be set)
        "recurring": None,  # Optional[Recurring]
        "tax_behavior": None,  # Optional[Union[Literal["exclusive", "inclusive", "unspecified"], str]]
        "tiers": None,  # Optional[List[Tier]]
        "tiers_mode": None,  # Optional[Union[Literal["graduated", "volume"], str]]
        "transform_quantity": None,  # Optional[TransformQuantity]
        "type": "one_time",  # Union[Literal["one_time", "recurring"], str]
        "unit_amount": None,  # Optional[int]
        "unit_amount_decimal": None,  # Optional[Decimal]
    }


def product_template(id: str = "") -> dict:
    """Stripe `product` object -- 21 top-level fields.

    Source: stripe-python 16.1.0, stripe/_product.py (class stripe.Product), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/products/object
    Must be set by the caller: id, name.
    """
    return {
        "id": id,  # str
        "object": "product",  # Literal["product"]
        "active": False,  # bool
        "created": 0,  # int
        "default_price": None,  # Optional[ExpandableField[Price]]
        "deleted": None,  # Optional[Literal[True]]
        "description": None,  # Optional[str]
        "images": [],  # List[str]
        "livemode": False,  # bool
        "marketing_features": [],  # List[MarketingFeature]
        "metadata": {},  # UntypedStripeObject[str]
        "name": "",  # str  (placeholder: must be set)
        "package_dimensions": None,  # Optional[PackageDimensions]
        "shippable": None,  # Optional[bool]
        "statement_descriptor": None,  # Optional[str]
        "tax_code": None,  # Optional[ExpandableField[TaxCode]]
        "tax_details": None,  # Optional[TaxDetails]
        "type": "service",  # Union[Literal["good", "service"], str]
        "unit_label": None,  # Optional[str]
        "updated": 0,  # int
        "url": None,  # Optional[str]
    }


def dispute_template(id: str = "") -> dict:
    """Stripe `dispute` object -- 19 top-level fields.

    Source: stripe-python 16.1.0, stripe/_dispute.py (class stripe.Dispute), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/disputes/object
    Must be set by the caller: id, charge.
    """
    return {
        "id": id,  # str
        "object": "dispute",  # Literal["dispute"]
        "amount": 0,  # int
        "balance_transactions": [],  # List[BalanceTransaction]
        "charge": "",  # ExpandableField[Charge]  (placeholder: must be set)
        "created": 0,  # int
        "currency": "usd",  # str
        "enhanced_eligibility_types": [],  # List[Union[Literal["mastercard_compliance", "visa_compelling_evidence_3", "visa_compliance"], str]]
        "evidence": {  # Evidence
            "access_activity_log": None,  # Optional[str]
            "appeal": None,  # Optional[Appeal]
            "billing_address": None,  # Optional[str]
            "cancellation_policy": None,  # Optional[ExpandableField[File]]
            "cancellation_policy_disclosure": None,  # Optional[str]
            "cancellation_rebuttal": None,  # Optional[str]
            "customer_communication": None,  # Optional[ExpandableField[File]]
            "customer_email_address": None,  # Optional[str]
            "customer_name": None,  # Optional[str]
            "customer_purchase_ip": None,  # Optional[str]
            "customer_signature": None,  # Optional[ExpandableField[File]]
            "duplicate_charge_documentation": None,  # Optional[ExpandableField[File]]
            "duplicate_charge_explanation": None,  # Optional[str]
            "duplicate_charge_id": None,  # Optional[str]
            "enhanced_evidence": {  # EnhancedEvidence
                "mastercard_compliance": None,  # Optional[MastercardCompliance]
                "visa_compelling_evidence_3": None,  # Optional[VisaCompellingEvidence3]
                "visa_compliance": None,  # Optional[VisaCompliance]
            },
            "product_description": None,  # Optional[str]
            "receipt": None,  # Optional[ExpandableField[File]]
            "refund_policy": None,  # Optional[ExpandableField[File]]
            "refund_policy_disclosure": None,  # Optional[str]
            "refund_refusal_explanation": None,  # Optional[str]
            "service_date": None,  # Optional[str]
            "service_documentation": None,  # Optional[ExpandableField[File]]
            "shipping_address": None,  # Optional[str]
            "shipping_carrier": None,  # Optional[str]
            "shipping_date": None,  # Optional[str]
            "shipping_documentation": None,  # Optional[ExpandableField[File]]
            "shipping_tracking_number": None,  # Optional[str]
            "uncategorized_file": None,  # Optional[ExpandableField[File]]
            "uncategorized_text": None,  # Optional[str]
        },
        "evidence_details": {  # EvidenceDetails
            "due_by": None,  # Optional[int]
            "enhanced_eligibility": {  # EnhancedEligibility
                "mastercard_compliance": None,  # Optional[MastercardCompliance]
                "visa_compelling_evidence_3": None,  # Optional[VisaCompellingEvidence3]
                "visa_compliance": None,  # Optional[VisaCompliance]
            },
            "has_evidence": False,  # bool
            "past_due": False,  # bool
            "submission_count": 0,  # int
            "submission_method": "not_submitted",  # Union[Literal["manual", "not_submitted", "smart_disputes"], str]
        },
        "intended_submission_method": None,  # Optional[Literal["manual", "prefer_manual", "prefer_smart_disputes", "smart_disputes"]]
        "is_charge_refundable": False,  # bool
        "livemode": False,  # bool
        "metadata": {},  # UntypedStripeObject[str]
        "network_reason_code": None,  # Optional[str]
        "payment_intent": None,  # Optional[ExpandableField[PaymentIntent]]
        "payment_method_details": None,  # Optional[PaymentMethodDetails]
        "reason": "general",  # str
        "status": "needs_response",  # Union[Literal["appeal_needs_response", "appeal_under_review", "lost", ...7 more], str]
    }


def balance_transaction_template(id: str = "") -> dict:
    """Stripe `balance_transaction` object -- 16 top-level fields.

    Source: stripe-python 16.1.0, stripe/_balance_transaction.py (class stripe.BalanceTransaction), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/balance_transactions/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "balance_transaction",  # Literal["balance_transaction"]
        "amount": 0,  # int
        "available_on": 0,  # int
        "balance_type": "payments",  # Union[Literal["issuing", "payments", "refund_and_dispute_prefunding", "risk_reserved"], str]
        "created": 0,  # int
        "currency": "usd",  # str
        "description": None,  # Optional[str]
        "exchange_rate": None,  # Optional[float]
        "fee": 0,  # int
        "fee_details": [],  # List[FeeDetail]
        "net": 0,  # int
        "reporting_category": "charge",  # str
        "source": None,  # Optional[ExpandableField[Union[ApplicationFee, Charge, ConnectCollectionTransfer, CustomerCashBalanceTransaction, DisputeResource, ApplicationFeeRefund, Authorization, IssuingDisputeResource, Transaction, Payout, Refund, ReserveTransaction, TaxDeductedAtSource, Topup, Transfer, TransferReversal]]]
        "status": "pending",  # str
        "type": "charge",  # Union[Literal["adjustment", "advance", "advance_funding", ...49 more], str]
    }


def test_clock_template(id: str = "") -> dict:
    """Stripe `test_helpers.test_clock` object -- 10 top-level fields.

    Source: stripe-python 16.1.0, stripe/test_helpers/_test_clock.py (class stripe.test_helpers.TestClock), API 2026-10-28.endive.
    Reference: https://docs.stripe.com/api/test_clocks/object
    Must be set by the caller: id.
    """
    return {
        "id": id,  # str
        "object": "test_helpers.test_clock",  # Literal["test_helpers.test_clock"]
        "created": 0,  # int
        "deleted": None,  # Optional[Literal[True]]
        "deletes_after": 0,  # int
        "frozen_time": 0,  # int
        "livemode": False,  # bool
        "name": None,  # Optional[str]
        "status": "ready",  # Union[Literal["advancing", "internal_failure", "ready"], str]
        "status_details": {  # StatusDetails
            "advancing": None,  # Optional[Advancing]
        },
    }


# template name -> function
TEMPLATES: dict[str, Callable[..., dict]] = {
    "payment_intent": payment_intent_template,
    "customer": customer_template,
    "payment_method": payment_method_template,
    "setup_intent": setup_intent_template,
    "checkout_session": checkout_session_template,
    "event": event_template,
    "refund": refund_template,
    "charge": charge_template,
    "subscription": subscription_template,
    "invoice": invoice_template,
    "price": price_template,
    "product": product_template,
    "dispute": dispute_template,
    "balance_transaction": balance_transaction_template,
    "test_clock": test_clock_template,
}

# template name -> SDK class (dotted path, resolve with the stripe package)
SDK_CLASSES: dict[str, str] = {
    "payment_intent": "stripe.PaymentIntent",
    "customer": "stripe.Customer",
    "payment_method": "stripe.PaymentMethod",
    "setup_intent": "stripe.SetupIntent",
    "checkout_session": "stripe.checkout.Session",
    "event": "stripe.Event",
    "refund": "stripe.Refund",
    "charge": "stripe.Charge",
    "subscription": "stripe.Subscription",
    "invoice": "stripe.Invoice",
    "price": "stripe.Price",
    "product": "stripe.Product",
    "dispute": "stripe.Dispute",
    "balance_transaction": "stripe.BalanceTransaction",
    "test_clock": "stripe.test_helpers.TestClock",
}

# template name -> SDK source file (relative to site-packages)
SDK_FILES: dict[str, str] = {
    "payment_intent": "stripe/_payment_intent.py",
    "customer": "stripe/_customer.py",
    "payment_method": "stripe/_payment_method.py",
    "setup_intent": "stripe/_setup_intent.py",
    "checkout_session": "stripe/checkout/_session.py",
    "event": "stripe/_event.py",
    "refund": "stripe/_refund.py",
    "charge": "stripe/_charge.py",
    "subscription": "stripe/_subscription.py",
    "invoice": "stripe/_invoice.py",
    "price": "stripe/_price.py",
    "product": "stripe/_product.py",
    "dispute": "stripe/_dispute.py",
    "balance_transaction": "stripe/_balance_transaction.py",
    "test_clock": "stripe/test_helpers/_test_clock.py",
}

# Non-nullable fields the template leaves as a placeholder ("" / {}): the
# sandbox must set them before returning the object.
MUST_FILL: dict[str, tuple[str, ...]] = {
    "payment_intent": ("id",),
    "customer": ("id",),
    "payment_method": ("id",),
    "setup_intent": ("id",),
    "checkout_session": ("id",),
    "event": ("id", "data.object", "type"),
    "refund": ("id",),
    "charge": ("id",),
    "subscription": ("id", "customer"),
    "invoice": ("id",),
    "price": ("id", "product"),
    "product": ("id", "name"),
    "dispute": ("id", "charge"),
    "balance_transaction": ("id",),
    "test_clock": ("id",),
}

# Top-level fields typed ExpandableField[...]: an id string by default, the
# full object when the request carries expand[]=<field>.
EXPANDABLE: dict[str, tuple[str, ...]] = {
    "payment_intent": (
        "application",
        "customer",
        "latest_charge",
        "on_behalf_of",
        "payment_method",
        "payment_record",
        "review",
        "source",
    ),
    "customer": ("default_source", "test_clock"),
    "payment_method": ("customer",),
    "setup_intent": (
        "application",
        "customer",
        "latest_attempt",
        "mandate",
        "on_behalf_of",
        "payment_method",
        "single_use_mandate",
    ),
    "checkout_session": ("customer", "invoice", "payment_intent", "payment_link", "setup_intent", "subscription"),
    "event": (),
    "refund": (
        "balance_transaction",
        "charge",
        "customer",
        "failure_balance_transaction",
        "payment_intent",
        "payment_method",
        "source_transfer_reversal",
        "transfer_reversal",
    ),
    "charge": (
        "application",
        "application_fee",
        "balance_transaction",
        "customer",
        "failure_balance_transaction",
        "on_behalf_of",
        "payment_intent",
        "review",
        "source_transfer",
        "transfer",
    ),
    "subscription": (
        "application",
        "customer",
        "default_payment_method",
        "default_source",
        "discounts",
        "latest_invoice",
        "on_behalf_of",
        "pending_setup_intent",
        "schedule",
        "test_clock",
    ),
    "invoice": (
        "account_tax_ids",
        "application",
        "customer",
        "default_payment_method",
        "default_source",
        "discounts",
        "latest_revision",
        "on_behalf_of",
        "test_clock",
    ),
    "price": ("product",),
    "product": ("default_price", "tax_code"),
    "dispute": ("charge", "payment_intent"),
    "balance_transaction": ("source",),
    "test_clock": (),
}

# Optional list-object fields: Stripe omits/nulls them unless expanded
# ("includable"); when expanded they are list objects, e.g.
# charge.refunds -> _list_object(f"/v1/charges/{id}/refunds").
INCLUDABLE_LISTS: dict[str, tuple[str, ...]] = {
    "customer": ("sources", "subscriptions", "tax_ids"),
    "checkout_session": ("line_items",),
    "charge": ("refunds",),
    "invoice": ("payments",),
}


def fill(template: dict, **values: Any) -> dict:
    """Set top-level fields on a template, refusing names Stripe does not have.

    >>> fill(customer_template("cus_1"), email="a@example.com")["email"]
    'a@example.com'
    """
    unknown = sorted(set(values) - set(template))
    if unknown:
        raise KeyError(f"not a top-level field of {template.get('object')!r}: {unknown}")
    template.update(values)
    return template


# Stripe test-mode PaymentMethod ids the sandbox accepts, with the test card
# each one stands for (https://docs.stripe.com/testing).  brand and last4
# follow from the card number (all are Visa numbers); funding/country are
# documented only for 4242 (US Visa credit).  Stripe does not document the
# expiry it gives these PaymentMethods: the sandbox gives them all one fixed
# future date (TEST_CARD_EXPIRY).  "outcome" is the behaviour on confirm.
TEST_CARDS: dict[str, dict[str, Any]] = {
    "pm_card_visa": {
        "number": "4242424242424242",
        "brand": "visa",
        "last4": "4242",
        "funding": "credit",
        "country": "US",
        "outcome": "succeeds (3DS supported but card not enrolled)",
    },
    "pm_card_chargeDeclined": {
        # current docs name it pm_card_visa_chargeDeclined; the short id is the older name
        "number": "4000000000000002",
        "brand": "visa",
        "last4": "0002",
        "outcome": "declined",
        "error_code": "card_declined",
        "decline_code": "generic_decline",
        "attachable": False,
    },
    "pm_card_chargeDeclinedInsufficientFunds": {
        # current docs name it pm_card_visa_chargeDeclinedInsufficientFunds
        "number": "4000000000009995",
        "brand": "visa",
        "last4": "9995",
        "outcome": "declined",
        "error_code": "card_declined",
        "decline_code": "insufficient_funds",
        "attachable": False,
    },
    "pm_card_chargeCustomerFail": {
        "number": "4000000000000341",
        "brand": "visa",
        "last4": "0341",
        "outcome": "attaching to a customer succeeds; every charge is then declined",
        "error_code": "card_declined",
        "attachable": True,
    },
    "pm_card_authenticationRequired": {
        "number": "4000002760003184",
        "brand": "visa",
        "last4": "3184",
        "outcome": "requires_action (3DS) on every payment, even after a SetupIntent",
    },
    "pm_card_threeDSecure2Required": {
        "number": "4000000000003220",
        "brand": "visa",
        "last4": "3220",
        "outcome": "requires_action (3DS2); succeeds once authenticated",
    },
    "pm_card_createDispute": {
        "number": "4000000000000259",
        "brand": "visa",
        "last4": "0259",
        "outcome": "charge succeeds, then is disputed as fraudulent",
    },
}


TEST_CARD_EXPIRY = (12, 2034)
"""(exp_month, exp_year) of every sandbox test card."""


def card_template(*, brand: str, last4: str, exp_month: int, exp_year: int, funding: str, country: str | None) -> dict:
    """`payment_method.card` (stripe.PaymentMethod.Card): every field it declares."""
    return {
        "brand": brand,  # str
        "checks": None,  # Optional[Checks]
        "country": country,  # Optional[str]
        "description": None,  # Optional[str]
        "display_brand": brand,  # Optional[str]
        "exp_month": exp_month,  # int
        "exp_year": exp_year,  # int
        "fingerprint": None,  # Optional[str]
        "funding": funding,  # str
        "generated_from": None,  # Optional[GeneratedFrom]
        "iin": None,  # Optional[str]
        "issuer": None,  # Optional[str]
        "last4": last4,  # str
        "networks": None,  # Optional[Networks]
        "regulated_status": None,  # Optional[Literal["regulated", "unregulated"] | str]
        "three_d_secure_usage": None,  # Optional[ThreeDSecureUsage]
        "wallet": None,  # Optional[Wallet]
    }


_OTHER_NEXT_ACTIONS = (
    "alipay_handle_redirect",
    "blik_authorize",
    "boleto_display_details",
    "card_await_notification",
    "cashapp_handle_redirect_or_display_qr_code",
    "display_bank_transfer_instructions",
    "klarna_display_qr_code",
    "konbini_display_details",
    "multibanco_display_details",
    "oxxo_display_details",
    "paynow_display_qr_code",
    "pix_display_qr_code",
    "promptpay_display_qr_code",
    "swish_handle_redirect_or_display_qr_code",
    "upi_handle_redirect_or_display_qr_code",
    "use_stripe_sdk",
    "verify_with_microdeposits",
    "wechat_pay_display_qr_code",
    "wechat_pay_redirect_to_android_app",
    "wechat_pay_redirect_to_ios_app",
)


def redirect_next_action(url: str, return_url: str | None) -> dict:
    """`payment_intent.next_action` (stripe.PaymentIntent.NextAction) of type redirect_to_url."""
    action: dict[str, Any] = dict.fromkeys(_OTHER_NEXT_ACTIONS)
    action.update(type="redirect_to_url", redirect_to_url={"return_url": return_url, "url": url})
    return action


def payment_error(*, type: str, code: str, message: str, decline_code: str | None, payment_method: dict | None) -> dict:
    """`payment_intent.last_payment_error` (stripe.PaymentIntent.LastPaymentError), also the `error` of an
    API answer in Stripe's shape."""
    return {
        "advice_code": None,  # Optional[str]
        "charge": None,  # Optional[str]
        "code": code,  # Literal[...] | str
        "decline_code": decline_code,  # Optional[str]
        "doc_url": f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}",  # Optional[str]
        "message": message,  # Optional[str]
        "network_advice_code": None,  # Optional[str]
        "network_decline_code": None,  # Optional[str]
        "param": None,  # Optional[str]
        "payment_intent": None,  # Optional[PaymentIntent]
        "payment_method": payment_method,  # Optional[PaymentMethod]
        "payment_method_type": "card" if payment_method else None,  # Optional[str]
        "request_log_url": None,  # Optional[str]
        "setup_intent": None,  # Optional[SetupIntent]
        "source": None,  # Optional[Account | BankAccount | CardResource | Source]
        "type": type,  # Literal["api_error", "card_error", "idempotency_error", "invalid_request_error"] | str
    }


def complete(name: str, stored: dict) -> dict:
    """A stored object with every top-level field of its template and nothing else (objects stored by
    earlier versions of the sandbox lacked some fields and carried some of their own)."""
    template = TEMPLATES[name](stored.get("id", ""))
    return {**template, **{key: value for key, value in stored.items() if key in template}}
