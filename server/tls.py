"""One TLS client context per process, for every outgoing HTTP client (webhook deliveries, the sandbox's own
deliveries): building one loads the whole CA bundle (tens of milliseconds of CPU), and each client would
otherwise build its own."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR), built once."""
    return httpx.create_ssl_context()
