"""A test-only fault hook: die by SIGKILL at a named point, to prove crash recovery for real.

Set PAYWARDEN_TEST_CRASH_AT=before_provider (payment recorded, provider not yet called) or
after_provider (the provider charged, our record not yet updated). Unset in production.
"""

from __future__ import annotations

import os
import signal


def crash_if_asked(point: str, configured: str | None) -> None:
    if configured == point:
        os.kill(os.getpid(), signal.SIGKILL)
