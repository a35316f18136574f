"""Asking the person, from inside a tool call, on both MCP protocol versions: a yes/no form (approving a
charge) and a page to open (paying, authenticating, saving a card) — URL-mode elicitation, so the link
reaches the person without the model having to relay it.

Protocol 2026-07-28: the tool answers with an InputRequiredResult and the client calls it again with
the answers; what earlier rounds learnt rides the sealed request_state (the SDK seals and checks it).
An answer counts only for the question that state says was asked last round — the rule the SDK's own
resolvers follow. Protocol 2025-11-25: the question is a request to the client in the middle of the
call (`ctx.elicit`, `ctx.elicit_url`), which needs a back channel (stdio, in-process, stateful HTTP);
over stateless HTTP nobody can be asked. A client that declared no elicitation is never asked.

Nothing here waits for the person to pay: "accept" means they agreed to open the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Protocol, Self, TypeVar

from mcp.server.elicitation import render_elicitation_schema
from mcp.server.mcpserver import AcceptedElicitation
from mcp.types import ElicitRequest, ElicitRequestFormParams, ElicitRequestURLParams, ElicitResult, InputRequiredResult
from mcp.types.version import is_version_at_least
from pydantic import BaseModel, Field

from server.payments import PageShown
from tools.context import ToolContext

ROUNDS_SINCE = "2026-07-28"
_SHOWN: dict[str, PageShown] = {"accept": "accepted", "decline": "declined", "cancel": "cancelled"}


class Approval(BaseModel):
    """What the person is asked when a charge needs their approval."""

    approve: bool = Field(description="Approve this charge?")


class _PageResult(Protocol):
    def after_page(self, shown: PageShown) -> Self: ...


_WithAPage = TypeVar("_WithAPage", bound=_PageResult)


class Conversation:
    """One tool call's questions to the person. Each question returns the answer, or an InputRequiredResult
    the tool must return as it is (protocol 2026-07-28: the client asks, then calls the tool again)."""

    def __init__(self, ctx: ToolContext) -> None:
        self._ctx = ctx
        capabilities = ctx.client_capabilities
        self._elicitation = capabilities.elicitation if capabilities is not None else None
        version = ctx.protocol_version
        self._rounds = _Rounds(ctx) if version and is_version_at_least(version, ROUNDS_SINCE) else None

    @property
    def carried(self) -> dict[str, Any]:
        """What this call remembers from its earlier rounds (protocol 2026-07-28; empty otherwise)."""
        return self._rounds.data if self._rounds else {}

    async def approval(self, question: str) -> bool | InputRequiredResult | None:
        """True (yes), False (no, declined or cancelled), None (nobody can be asked)."""
        if not self._can_ask_form():
            return None
        if self._rounds is not None:
            form = ElicitRequest(
                params=ElicitRequestFormParams(message=question, requested_schema=render_elicitation_schema(Approval))
            )
            answer = self._rounds.ask("approval", form)
            if answer is None:
                return self._rounds.input_required()
            return answer.action == "accept" and (answer.content or {}).get("approve") is True
        result = await self._ctx.elicit(question, Approval)
        return isinstance(result, AcceptedElicitation) and result.data.approve

    async def page(self, message: str, url: str, elicitation_id: str) -> PageShown | InputRequiredResult:
        """Send the person a page to open; what they did with it (accepted only means they opened it)."""
        if self._elicitation is None or self._elicitation.url is None:
            return "not_sent"
        if self._rounds is not None:
            answer = self._rounds.ask("page", ElicitRequest(params=ElicitRequestURLParams(message=message, url=url)))
            if answer is None:
                return self._rounds.input_required()
            return _SHOWN[answer.action]
        if not self._ctx.session.can_send_request:
            return "not_sent"
        return _SHOWN[(await self._ctx.elicit_url(message, url, elicitation_id)).action]

    async def with_the_page(
        self, result: _WithAPage, url: str | None, message: str, elicitation_id: str
    ) -> _WithAPage | InputRequiredResult:
        """`result` once the page at `url` (None: no page is needed now) was sent to the person, saying what they
        did with it; a later round that finds no page needed still tells what they did with last round's."""
        if not url:
            answered = self.page_answered_last_round()
            return result.after_page(answered) if answered else result
        shown = await self.page(message, url, elicitation_id)
        return shown if isinstance(shown, InputRequiredResult) else result.after_page(shown)

    def page_answered_last_round(self) -> PageShown | None:
        """The person's answer to a page sent last round, whatever the call needs now (the payment may have
        settled meanwhile, so the page is not asked about again)."""
        answer = self._rounds.answered("page") if self._rounds else None
        return _SHOWN[answer.action] if answer else None

    def _can_ask_form(self) -> bool:
        """The SDK's rule: a bare elicitation capability means form; URL-only does not. On 2025-11-25 the
        question needs a back channel (none over stateless HTTP)."""
        elicitation = self._elicitation
        if elicitation is None or (elicitation.form is None and elicitation.url is not None):
            return False
        return self._rounds is not None or self._ctx.session.can_send_request


class _Rounds:
    """Per-call state of a tool-driven 2026-07-28 multi-round flow.

    Round one has no request_state (the client always echoes it on a retry); the SDK verified and
    unsealed it before the tool runs. `input_responses` alone proves nothing (a client may send answers
    on round one): an answer is taken only when the state says that exact question was asked last round.
    Recorded answers and `data` ride the state to later rounds, so nothing is asked or done twice.
    """

    VERSION = 1

    def __init__(self, ctx: ToolContext) -> None:
        state = _parsed(ctx.request_state)
        self.outcomes: dict[str, dict[str, Any]] = state.get("outcomes", {})
        self.data: dict[str, Any] = state.get("data", {})
        self._asked: dict[str, str] = state.get("asked", {})
        self._answers = ctx.input_responses or {}
        self._pending: dict[str, ElicitRequest] = {}

    def ask(self, key: str, request: ElicitRequest) -> ElicitResult | None:
        """The person's answer to `request`, or None when it must be asked now."""
        digest = _digest(request)
        recorded = self.outcomes.get(key)
        if recorded is not None and recorded.get("q") == digest:
            return ElicitResult(action=recorded["action"], content=recorded.get("content"))
        answer = self._answers.get(key)
        if isinstance(answer, ElicitResult) and self._asked.get(key) == digest:
            self.outcomes[key] = {"action": answer.action, "content": answer.content, "q": digest}
            return answer
        self._pending[key] = request
        return None

    def answered(self, key: str) -> ElicitResult | None:
        """The answer to whatever was asked under `key` last round, if it came."""
        answer = self._answers.get(key)
        return answer if isinstance(answer, ElicitResult) and key in self._asked else None

    def input_required(self) -> InputRequiredResult:
        state = {
            "v": self.VERSION,
            "outcomes": self.outcomes,
            "asked": {key: _digest(request) for key, request in self._pending.items()},
            "data": self.data,
        }
        return InputRequiredResult(input_requests=dict(self._pending), request_state=json.dumps(state))


def _parsed(request_state: str | None) -> dict[str, Any]:
    try:
        state = json.loads(request_state) if request_state else {}
    except ValueError:
        return {}
    return state if isinstance(state, dict) and state.get("v") == _Rounds.VERSION else {}


def _digest(request: ElicitRequest) -> str:
    rendered = json.dumps(request.params.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(rendered.encode()).digest()[:16]).decode().rstrip("=")
