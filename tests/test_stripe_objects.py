"""The sandbox's Stripe objects have exactly the fields of the installed stripe SDK's classes, with its types.

The SDK's resource classes are generated from Stripe's OpenAPI spec and declare every top-level field
as a class annotation. These tests read those annotations at run time: a template that misses (or
invents) a field, or whose default has the wrong type, fails here, also after an SDK upgrade. The last
tests drive the running sandbox through its API and check every object and event it answers with.
"""

from __future__ import annotations

import copy
import decimal
import importlib
import inspect
import json
import pathlib
import typing
from typing import Any

import pytest
import stripe

from server.providers.sandbox import objects as so

NAMES = sorted(so.TEMPLATES)
EXPECTED_NAMES = {
    "payment_intent", "refund", "customer", "payment_method", "setup_intent",
    "checkout_session", "event", "subscription", "invoice", "price", "product",
    "dispute", "balance_transaction", "charge", "test_clock",
}  # fmt: skip
FAKE_KEY = "sk_test_sandbox"


def sdk_class(name: str) -> type:
    module, _, attr = so.SDK_CLASSES[name].rpartition(".")
    return getattr(importlib.import_module(module), attr)


def declared_fields(cls: type) -> dict[str, typing.Any]:
    """The instance attributes a resource class declares: its own evaluated
    annotations, minus ClassVars (OBJECT_NAME).  Nested classes (AmountDetails,
    ...) and methods are not annotations, so they are excluded by construction."""
    own = inspect.get_annotations(cls)
    return {k: v for k, v in own.items() if typing.get_origin(v) is not typing.ClassVar}


def is_optional(ann) -> bool:
    return typing.get_origin(ann) is typing.Union and type(None) in typing.get_args(ann)


def strip_optional(ann):
    if not is_optional(ann):
        return ann
    rest = tuple(a for a in typing.get_args(ann) if a is not type(None))
    return rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007 - built from a tuple at run time


ListObject, StripeObject = stripe.ListObject, stripe.StripeObject


def _origin_is(ann, klass) -> bool:
    return ann is klass or typing.get_origin(ann) is klass


def _untyped(ann) -> bool:
    """The SDK's annotation for a free-form object (metadata and the like), known by name: its class is private."""
    return getattr(typing.get_origin(ann) or ann, "__name__", "") == "UntypedStripeObject"


def sdk_class_for(obj: dict) -> type:
    """The class the SDK turns this JSON into, by its "object" name (as it does for any nested object)."""
    return type(stripe.StripeObject.construct_from({"nested": obj}, "sk_test_x")["nested"])


def check_value(value, ann, path: str, placeholders: set[str]) -> None:
    """Assert that a JSON-shaped value matches an SDK annotation."""
    if is_optional(ann):
        if value is None:
            return
        ann = strip_optional(ann)
    assert value is not None, f"{path}: None for non-nullable {ann}"
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is typing.Any:
        return
    if ann is bool:
        assert isinstance(value, bool), f"{path}: {value!r} is not bool"
    elif ann is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: {value!r} is not int"
    elif ann is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: not float"
    elif ann is str:
        assert isinstance(value, str), f"{path}: {value!r} is not str"
    elif ann is decimal.Decimal:
        assert isinstance(value, str), f"{path}: decimal fields travel as decimal strings"
    elif origin is typing.Literal:
        assert value in args or (path in placeholders and value == ""), f"{path}: {value!r} not in {args}"
    elif origin is typing.Union:
        if str in args and isinstance(value, str):
            return  # enum-with-str-fallback or ExpandableField id
        if any(isinstance(a, typing.ForwardRef) for a in args):
            assert isinstance(value, dict) and "object" in value, f"{path}: expanded object expected"
            return
        literal_args = [a for a in args if typing.get_origin(a) is typing.Literal]
        assert any(value in typing.get_args(a) for a in literal_args), f"{path}: {value!r} fits none of {args}"
    elif origin in (list, list):
        assert isinstance(value, list), f"{path}: not a list"
        for i, item in enumerate(value):
            check_value(item, args[0], f"{path}[{i}]", placeholders)
    elif _origin_is(ann, ListObject):
        assert isinstance(value, dict), f"{path}: list object expected"
        assert value.get("object") == "list", path
        assert isinstance(value.get("data"), list), path
        assert isinstance(value.get("has_more"), bool), path
        assert isinstance(value.get("url"), str) and value["url"].startswith("/v1/"), path
    elif _untyped(ann):
        assert isinstance(value, dict), f"{path}: dict expected"
    elif inspect.isclass(ann) and issubclass(ann, StripeObject):
        assert isinstance(value, dict), f"{path}: nested object dict expected"
        fields = declared_fields(ann)
        assert set(value) == set(fields), (
            f"{path}: nested keys differ; missing {sorted(set(fields) - set(value))}, "
            f"unknown {sorted(set(value) - set(fields))}"
        )
        for k, a in fields.items():
            check_value(value[k], a, f"{path}.{k}", placeholders)
    else:  # pragma: no cover - a new kind of annotation in a future SDK
        pytest.fail(f"{path}: unhandled annotation {ann!r}")


def test_every_required_object_has_a_template():
    assert set(NAMES) == EXPECTED_NAMES
    for name in NAMES:
        assert getattr(so, f"{name}_template") is so.TEMPLATES[name]


def test_sdk_version_matches_module():
    assert so.SDK_VERSION == stripe.VERSION
    assert so.API_VERSION == stripe.api_version


@pytest.mark.parametrize("name", NAMES)
def test_sdk_file_is_where_the_class_lives(name):
    cls = sdk_class(name)
    src = pathlib.Path(inspect.getsourcefile(cls)).resolve()
    assert src.as_posix().endswith(so.SDK_FILES[name])


@pytest.mark.parametrize("name", NAMES)
def test_base_classes_declare_no_public_fields(name):
    """If a base class ever declared a public field, declared_fields() would
    miss it; make sure the classes' own annotations are the whole story."""
    for base in sdk_class(name).__mro__[1:]:
        public = [
            k
            for k, v in inspect.get_annotations(base).items()
            if not k.startswith("_") and typing.get_origin(v) is not typing.ClassVar and k != "OBJECT_NAME"
        ]
        assert not public, f"{base.__name__} declares {public}"


@pytest.mark.parametrize("name", NAMES)
def test_keys_equal_sdk_declared_top_level_attributes(name):
    cls = sdk_class(name)
    fields = declared_fields(cls)
    keys = set(so.TEMPLATES[name]())
    missing, unknown = set(fields) - keys, keys - set(fields)
    assert not missing and not unknown, f"missing {sorted(missing)}, unknown {sorted(unknown)}"
    # sanity: no nested class or method slipped into the comparison
    for k in fields:
        assert not inspect.isclass(cls.__dict__.get(k)), k


@pytest.mark.parametrize("name", NAMES)
def test_object_name_matches_sdk(name):
    cls = sdk_class(name)
    t = so.TEMPLATES[name]()
    assert t["object"] == cls.OBJECT_NAME
    # the name the sandbox puts in "object" is the one the SDK dispatches on
    assert sdk_class_for(t) is cls


@pytest.mark.parametrize("name", NAMES)
def test_values_have_sdk_types(name):
    cls = sdk_class(name)
    placeholders = set(so.MUST_FILL[name])
    t = so.TEMPLATES[name]("x_1")
    for k, ann in declared_fields(cls).items():
        check_value(t[k], ann, k, placeholders)


@pytest.mark.parametrize("name", NAMES)
def test_conventions(name):
    t = so.TEMPLATES[name]("x_1")
    assert t["id"] == "x_1"
    if "livemode" in t:
        assert t["livemode"] is False
    if "metadata" in t:
        assert t["metadata"] == {}
    json.dumps(t)  # plain JSON, nothing the sandbox cannot serialize


@pytest.mark.parametrize("name", NAMES)
def test_each_call_returns_a_fresh_object(name):
    a = so.TEMPLATES[name]()
    pristine = copy.deepcopy(a)
    for v in a.values():
        if isinstance(v, dict):
            v["mutated"] = True
        elif isinstance(v, list):
            v.append("mutated")
    a["id"] = "changed"
    assert so.TEMPLATES[name]() == pristine


@pytest.mark.parametrize("name", NAMES)
def test_construct_from_accepts_template(name):
    cls = sdk_class(name)
    t = so.TEMPLATES[name]("x_1")
    obj = cls.construct_from(t, FAKE_KEY)
    assert isinstance(obj, cls)
    assert obj["id"] == "x_1"
    assert obj["object"] == t["object"]
    assert set(obj.to_dict()) == set(t)
    json.dumps(obj.to_dict(for_json=True))
    # non-null nested objects come back as the SDK's nested classes
    for k, ann in declared_fields(cls).items():
        if (
            inspect.isclass(ann)
            and issubclass(ann, StripeObject)
            and not _untyped(ann)
            and not _origin_is(ann, ListObject)
        ):
            assert isinstance(obj[k], ann), k
        if _origin_is(strip_optional(ann), ListObject) and t[k] is not None:
            assert isinstance(obj[k], ListObject), k


@pytest.mark.parametrize("name", sorted(set(NAMES) - {"event"}))
def test_event_carries_template_as_typed_data_object(name):
    cls = sdk_class(name)
    evt = so.event_template("evt_1")
    evt["type"] = "customer.updated"  # any valid type; the SDK dispatches on data.object.object
    evt["data"]["object"] = so.TEMPLATES[name]("x_1")
    parsed = stripe.Event.construct_from(evt, FAKE_KEY)
    assert isinstance(parsed.data.object, cls)


@pytest.mark.parametrize("name", NAMES)
def test_registries_name_real_fields(name):
    t = so.TEMPLATES[name]()
    for path in so.MUST_FILL[name]:
        node = t
        for part in path.split("."):
            assert part in node, path
            node = node[part]
    fields = declared_fields(sdk_class(name))
    src = pathlib.Path(inspect.getsourcefile(sdk_class(name))).read_text()
    for f in so.EXPANDABLE[name]:
        assert f in fields
    for f in so.INCLUDABLE_LISTS.get(name, ()):
        assert _origin_is(strip_optional(fields[f]), ListObject) and t[f] is None
    assert "ExpandableField" in src or not so.EXPANDABLE[name]


def test_list_urls_use_the_id():
    assert so.subscription_template("sub_1")["items"]["url"] == "/v1/subscription_items?subscription=sub_1"
    assert so.invoice_template("in_1")["lines"]["url"] == "/v1/invoices/in_1/lines"


def test_fill_refuses_unknown_fields():
    c = so.fill(so.customer_template("cus_1"), email="a@example.com")
    assert c["email"] == "a@example.com"
    with pytest.raises(KeyError):
        so.fill(so.customer_template("cus_1"), emial="typo@example.com")


def test_test_cards_are_consistent():
    assert {
        "pm_card_visa",
        "pm_card_chargeDeclined",
        "pm_card_authenticationRequired",
        "pm_card_chargeCustomerFail",
        "pm_card_createDispute",
        "pm_card_threeDSecure2Required",
        "pm_card_chargeDeclinedInsufficientFunds",
    } <= set(so.TEST_CARDS)
    for pm, card in so.TEST_CARDS.items():
        assert card["last4"] == card["number"][-4:], pm
        assert card["brand"] == "visa" and card["number"].startswith("4"), pm


def test_module_does_not_import_stripe():
    """The templates are plain data."""
    src = (pathlib.Path(so.__file__)).read_text()
    assert "import stripe" not in src


# --- Nested objects the sandbox fills in ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (so.card_template(brand="visa", last4="4242", exp_month=12, exp_year=2034, funding="credit", country="US"),
         stripe.PaymentMethod.Card),
        (so.redirect_next_action("https://pay.example/x", None), stripe.PaymentIntent.NextAction),
        (so.payment_error(type="card_error", code="card_declined", message="no", decline_code="generic_decline",
                          payment_method=None), stripe.PaymentIntent.LastPaymentError),
    ],
)  # fmt: skip
def test_nested_templates_have_the_sdk_fields(value: dict, annotation: type) -> None:
    check_value(value, annotation, annotation.__qualname__, set())


# --- What the running sandbox answers ---------------------------------------------------------------

CLASS_OF_OBJECT = {
    "payment_intent": "payment_intent",
    "refund": "refund",
    "charge": "charge",
    "customer": "customer",
    "payment_method": "payment_method",
    "setup_intent": "setup_intent",
    "checkout.session": "checkout_session",
    "event": "event",
    "subscription": "subscription",
    "invoice": "invoice",
    "price": "price",
    "product": "product",
}


def assert_stripe_shaped(obj: Any) -> None:
    """Exactly the fields of the SDK class named by the object's `object`, each of the SDK's type."""
    raw = obj.to_dict() if isinstance(obj, StripeObject) else obj
    name = CLASS_OF_OBJECT[raw["object"]]
    fields = declared_fields(sdk_class(name))
    assert set(raw) == set(fields), f"{name}: missing {set(fields) - set(raw)}, unknown {set(raw) - set(fields)}"
    for key, annotation in fields.items():
        check_value(raw[key], annotation, f"{name}.{key}", set())
    if name == "event":
        assert_stripe_shaped(raw["data"]["object"])


@pytest.fixture
def sandbox(app) -> stripe.StripeClient:
    return stripe.StripeClient(
        app.services.sandbox.api_key,
        base_addresses={"api": f"{app.base_url}/sandbox"},
        http_client=stripe.HTTPXClient(),
    )


async def test_every_object_the_sandbox_answers_has_stripes_fields(sandbox: stripe.StripeClient) -> None:
    v1 = sandbox.v1
    customer = await v1.customers.create_async({"email": "a@example.com", "metadata": {"customer_id": "alice"}})
    method = await v1.payment_methods.attach_async("pm_card_visa", {"customer": customer.id})
    listed = await v1.customers.payment_methods.list_async(customer.id)
    paid = await v1.payment_intents.create_async(
        {"amount": 900, "currency": "usd", "customer": customer.id, "payment_method": method.id,
         "off_session": True, "confirm": True}
    )  # fmt: skip
    waiting = await v1.payment_intents.create_async(
        {"amount": 500, "currency": "eur", "payment_method": "pm_card_authenticationRequired", "confirm": True}
    )
    with pytest.raises(stripe.CardError):
        await v1.payment_intents.create_async(
            {"amount": 500, "currency": "eur", "payment_method": "pm_card_chargeDeclined", "confirm": True}
        )
    canceled = await v1.payment_intents.cancel_async(waiting.id)
    refund = await v1.refunds.create_async({"payment_intent": paid.id, "amount": 100})
    pay = await v1.checkout.sessions.create_async(
        {"mode": "payment", "line_items": [{"price_data": {"currency": "usd", "unit_amount": 2000,
         "product_data": {"name": "Pro"}}, "quantity": 1}]}
    )  # fmt: skip
    setup = await v1.checkout.sessions.create_async({"mode": "setup", "customer": customer.id, "currency": "usd"})
    setup_intent = await v1.setup_intents.retrieve_async(setup.setup_intent)
    expired = await v1.checkout.sessions.expire_async(pay.id)
    detached = await v1.payment_methods.detach_async(method.id)
    events = await v1.events.list_async({"limit": 100})
    for obj in (customer, method, *listed.data, paid, waiting, canceled, refund, pay, setup, setup_intent, expired,
                detached, *events.data):  # fmt: skip
        assert_stripe_shaped(obj)
    kinds = {event.type for event in events.data}
    assert {"customer.created", "payment_intent.payment_failed", "charge.refunded", "checkout.session.expired",
            "payment_method.detached", "setup_intent.created"} <= kinds  # fmt: skip


async def test_a_parameter_stripe_does_not_have_is_refused(sandbox: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await sandbox.v1.payment_intents.create_async(
            {"amount": 500, "currency": "usd", "payment_method_types": ["card"]}
        )  # type: ignore[typeddict-unknown-key]
    assert refused.value.code == "parameter_unknown" and "payment_method_types" in str(refused.value)


async def test_the_sandboxs_billing_objects_have_stripes_fields(sandbox: stripe.StripeClient) -> None:
    v1 = sandbox.v1
    product = await v1.products.create_async({"id": "prod_shape", "name": "Plan"})
    price = await v1.prices.create_async(
        {"product": product.id, "currency": "usd", "unit_amount": 2900, "lookup_key": "plan",
         "recurring": {"interval": "month"}}
    )  # fmt: skip
    customer = await v1.customers.create_async({"metadata": {"customer_id": "alice"}})
    sub = await v1.subscriptions.create_async(
        {"customer": customer.id, "items": [{"price": price.id}], "default_payment_method": "pm_card_visa",
         "expand": ["latest_invoice.payments"]}
    )  # fmt: skip
    invoice = await v1.invoices.retrieve_async(sub.to_dict()["latest_invoice"]["id"])
    listed = await v1.prices.list_async({"lookup_keys": ["plan"]})
    canceled = await v1.subscriptions.cancel_async(sub.id)
    events = await v1.events.list_async({"limit": 100})
    for obj in (product, price, *listed.data, invoice, canceled, *events.data):
        assert_stripe_shaped(json.loads(json.dumps(obj.to_dict(), default=str)))  # decimals as sent: strings
    kinds = {event.type for event in events.data}
    assert {"customer.subscription.created", "invoice.paid", "customer.subscription.deleted"} <= kinds
