"""A local, Stripe-compatible payment provider: the default, so nobody needs an account to try paywarden.

It serves the subset of Stripe's HTTP API that the Stripe adapter uses (payment intents:
create, confirm, retrieve, cancel), picks outcomes by Stripe's test payment methods, shows a
hosted page where a person pays or declines, and delivers Stripe-signed webhooks until they
are acknowledged. Its state lives in PostgreSQL, schema `sandbox`.
"""

SANDBOX_API_KEY = "sk_test_sandbox"
