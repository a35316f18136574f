"""The operator's product catalog: prices and what each product grants, read from TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from server.errors import CatalogError, UnknownCurrency, UnknownProduct
from server.money import MAX_AMOUNT_MINOR, format_amount, normalize_currency


class Grant(BaseModel):
    """A feature a product unlocks for a number of days, or credits of a metered feature
    (`credits`, optionally expiring after `days`; `low_balance_threshold`: the merchant hears
    `credits.low_balance` when a customer's balance of the feature falls below it). A recurring
    product's grants hold for each paid period instead (no `days`): its credits are that period's
    allowance, expiring at the period's end."""

    feature: str = Field(min_length=1, max_length=64)
    days: int | None = Field(default=None, gt=0, le=3660)
    credits: int | None = Field(default=None, strict=True, gt=0, le=10**12)
    low_balance_threshold: int | None = Field(default=None, strict=True, gt=0, le=10**12)

    @model_validator(mode="after")
    def _time_or_credits(self) -> Grant:
        if self.low_balance_threshold is not None and self.credits is None:
            raise ValueError(f"low_balance_threshold of {self.feature!r} needs credits: only credits have a balance")
        return self

    @property
    def metered(self) -> bool:
        return self.credits is not None


Interval = Literal["week", "month", "year"]


class Product(BaseModel):
    """A one-off product (its grants last `days`), or a recurring one (`interval`, every `interval_count`
    of them, after an optional free trial of `trial_days`): its grants hold for each paid period."""

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    amount_minor: int = Field(strict=True, gt=0, le=MAX_AMOUNT_MINOR)
    currency: str
    grants: list[Grant] = Field(min_length=1)
    interval: Interval | None = None
    interval_count: int = Field(default=1, strict=True, gt=0, le=52)
    trial_days: int | None = Field(default=None, strict=True, gt=0, le=730)

    @model_validator(mode="after")
    def _periods_or_days(self) -> Product:
        for grant in self.grants:
            if self.recurring and grant.days is not None:
                raise ValueError(
                    f"recurring product {self.id!r}: grant of {grant.feature!r} holds for each paid period; "
                    "remove its days"
                )
            if not self.recurring and grant.credits is None and grant.days is None:
                raise ValueError(f"grant of {grant.feature!r} needs days (time-boxed) or credits (metered)")
        if not self.recurring and (self.trial_days is not None or self.interval_count != 1):
            raise ValueError(f"product {self.id!r}: trial_days and interval_count need an interval")
        return self

    @property
    def recurring(self) -> bool:
        return self.interval is not None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        try:
            return normalize_currency(value)
        except UnknownCurrency as error:
            raise ValueError(error.message) from None

    @field_validator("grants")
    @classmethod
    def _one_grant_per_feature(cls, grants: list[Grant]) -> list[Grant]:
        features = [grant.feature for grant in grants]
        if len(set(features)) != len(features):
            raise ValueError("a product grants each feature once")
        return grants

    @property
    def price_display(self) -> str:
        return format_amount(self.amount_minor, self.currency)

    def grants_feature(self, feature: str) -> bool:
        return any(grant.feature == feature for grant in self.grants)


class Catalog:
    def __init__(self, products: list[Product]) -> None:
        self._products = {product.id: product for product in products}
        if len(self._products) != len(products):
            raise CatalogError("catalog has two products with the same id")
        self._one_kind_per_feature()
        self._thresholds = self._low_balance_thresholds()

    def get(self, product_id: str) -> Product:
        try:
            return self._products[product_id]
        except KeyError:
            known = ", ".join(sorted(self._products)) or "none"
            shown = product_id if len(product_id) <= 64 else product_id[:64] + "…"
            raise UnknownProduct(f"Unknown product_id {shown!r}. Catalog products: {known}.") from None

    def _one_kind_per_feature(self) -> None:
        metered = {g.feature for p in self for g in p.grants if g.metered}
        timed = {g.feature for p in self for g in p.grants if not g.metered}
        if metered & timed:
            raise CatalogError(f"features both metered and time-boxed: {', '.join(sorted(metered & timed))}")

    def _low_balance_thresholds(self) -> dict[str, int]:
        thresholds: dict[str, int] = {}
        for grant in (g for p in self for g in p.grants if g.low_balance_threshold is not None):
            if thresholds.setdefault(grant.feature, grant.low_balance_threshold) != grant.low_balance_threshold:
                raise CatalogError(f"products give {grant.feature!r} different low_balance_threshold values")
        return thresholds

    def low_balance_threshold(self, feature: str) -> int | None:
        """Below how many remaining credits of the feature the merchant is told (None: never)."""
        return self._thresholds.get(feature)

    def granting(self, feature: str) -> list[Product]:
        return [product for product in self._products.values() if product.grants_feature(feature)]

    def is_metered(self, feature: str) -> bool:
        return any(grant.metered for product in self for grant in product.grants if grant.feature == feature)

    def __iter__(self):
        return iter(self._products.values())


def load_catalog(path: Path) -> Catalog:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return Catalog([Product.model_validate(item) for item in raw.get("products", [])])
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as error:
        raise CatalogError(f"cannot load catalog {path}: {error}") from error
