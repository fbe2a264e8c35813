"""What the e2e tests share: a fake clock, the Contributor role submit needs, chat rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.azure_stack.state import RESOURCE_GROUP, ROLE_CONTRIBUTOR, SUBSCRIPTION_ID, USER_OID

#: The test resource group's ARM scope.
RG_SCOPE = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}"


class FakeTime:
    """``clock`` and ``sleep`` for an AppContext: sleeping advances the clock at once.

    ``interrupt_after`` = N raises KeyboardInterrupt on the N+1-th sleep (a Ctrl+C during a wait).
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.interrupt_after: int | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.interrupt_after is not None and self.sleeps > self.interrupt_after:
            raise KeyboardInterrupt
        self.now += seconds


def grant_contributor(stack: Any) -> None:
    """Contributor on the resource group: submit creates the hub (a storage account and a key vault)."""
    stack.state.add_role_assignment(RG_SCOPE, ROLE_CONTRIBUTOR, USER_OID)


def chat_rows(
    n: int, user: Callable[[int], str], answer: Callable[[int], str], system: str | None = None
) -> str:
    """``n`` JSONL conversations: an optional system message, ``user(i)``, then ``answer(i)``."""
    lines = []
    for i in range(n):
        head = [{"role": "system", "content": system}] if system is not None else []
        messages = [*head, {"role": "user", "content": user(i)}, {"role": "assistant", "content": answer(i)}]
        lines.append(json.dumps({"messages": messages}) + "\n")
    return "".join(lines)
