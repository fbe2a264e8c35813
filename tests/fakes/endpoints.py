"""In-memory fake of the endpoint, model and teardown operations the deploy services use.

It follows the adapter's contracts (``phi3ft.targets.azureml.sdk.endpoints`` and ``workspaces``): absence is
``None``/``False``/``"absent"``, the model DELETE is refused while an endpoint serves it, endpoints go
Creating -> Succeeded after ``creating_polls`` reads, and the chat client retries 429 honouring
``Retry-After`` through the injected sleep. The end-to-end tests (tests/e2e/test_deploy*.py,
test_delete*.py) run the same scenarios through the real SDK against the offline Azure stack, and
tests/contract runs one endpoint-contract suite (and the teardown half of the job contract) over both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phi3ft.errors import AzureError, NotFoundError, PrerequisiteError
from phi3ft.targets.azureml.sdk.endpoints import (
    MODEL_IN_USE_MESSAGE,
    ChatResult,
    EndpointKeys,
    fine_tuned_model_id,
    parse_model_id,
)
from phi3ft.targets.base import EndpointInfo, JobInfo

LOCATION = "eastus2"
WORKSPACE_GUID = "0c0ffee0-0000-4000-8000-000000000042"


@dataclass
class FakeEndpoint:
    name: str
    model_id: str
    content_safety: str
    auth_mode: str
    reads_left: int
    final_state: str = "Succeeded"
    key: str = "k-primary-secret"

    def info(self) -> EndpointInfo:
        state = "Creating" if self.reads_left > 0 else self.final_state
        uri = f"https://{self.name}.{LOCATION}.models.ai.azure.com" if state == "Succeeded" else None
        return EndpointInfo(
            name=self.name,
            provisioning_state=state,
            model_id=self.model_id,
            scoring_uri=uri,
            location=LOCATION,
            content_safety=self.content_safety,
            auth_mode=self.auth_mode,
            extra={"endpoint_state": "Online" if state == "Succeeded" else "Creating"},
        )


class FakeChatClient:
    """Answers from ``answers`` (last user message -> answer, else ``default``), with optional faults.

    ``throttle_first``: that many calls answer 429 (retried after ``retry_after`` s via ``sleep``).
    ``logprobs``: ``"ok"`` returns log-probs, ``"ignore"`` returns none, ``"reject"`` fails with HTTP 400.
    """

    def __init__(
        self,
        answers: Mapping[str, str] | None = None,
        *,
        default: str = "I don't know.",
        throttle_first: int = 0,
        retry_after: float = 1.5,
        logprobs: str = "ignore",
        fail_on: Sequence[str] = (),
        latency: float = 0.01,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self.default = default
        self.throttle_left = throttle_first
        self.retry_after = retry_after
        self.logprobs_mode = logprobs
        self.fail_on = set(fail_on)
        self.latency = latency
        self.slept: list[float] = []
        self.sleep = sleep or self.slept.append
        self.calls: list[dict[str, Any]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        logprobs: bool = False,
    ) -> ChatResult:
        import time

        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self.calls.append({"messages": [dict(m) for m in messages], "logprobs": logprobs})
        try:
            time.sleep(self.latency)  # real time, so concurrency is observable
            retries = 0
            while True:
                with self._lock:
                    throttled = self.throttle_left > 0
                    if throttled:
                        self.throttle_left -= 1
                if not throttled:
                    break
                retries += 1
                self.sleep(self.retry_after)
            prompt = str(messages[-1].get("content", ""))
            if prompt in self.fail_on:
                raise AzureError(f"The endpoint fake failed (HTTP 500 after {retries} retries): boom")
            if logprobs and self.logprobs_mode == "reject":
                error = AzureError(
                    "The endpoint fake rejected the request (HTTP 400): unknown parameter logprobs"
                )
                error.status_code = 400  # type: ignore[attr-defined]
                raise error
            answer = self.answers.get(prompt, self.default)
            tokens = answer.split()
            lps = [-0.5] * len(tokens) if (logprobs and self.logprobs_mode == "ok" and tokens) else None
            return ChatResult(
                content=answer,
                finish_reason="stop",
                prompt_tokens=sum(len(str(m.get("content", "")).split()) for m in messages),
                completion_tokens=len(tokens),
                latency_s=self.latency,
                retries=retries,
                token_logprobs=lps,
            )
        finally:
            with self._lock:
                self._in_flight -= 1


@dataclass
class FakeEndpointBackend:
    """Endpoint, model and teardown operations over dicts; ``calls`` logs every mutating call in order."""

    models: set[tuple[str, str]] = field(default_factory=set)
    endpoints: dict[str, FakeEndpoint] = field(default_factory=dict)
    jobs: dict[str, JobInfo] = field(default_factory=dict)
    data: set[tuple[str, str]] = field(default_factory=set)
    workspaces: dict[str, str] = field(default_factory=dict)  # name -> kind
    computes: set[str] = field(default_factory=set)
    creating_polls: int = 2
    final_state: str = "Succeeded"
    chat: FakeChatClient = field(default_factory=FakeChatClient)
    calls: list[tuple[str, str]] = field(default_factory=list)
    archive_only: bool = False
    project: str = "proj"

    # ---- models ------------------------------------------------------------------------------------
    def fine_tuned_model_id(self, name: str, version: str) -> str:
        return fine_tuned_model_id(LOCATION, WORKSPACE_GUID, name, version)

    def model_exists(self, name: str, version: str) -> bool:
        return (name, version) in self.models

    def delete_model(self, name: str, version: str) -> str:
        self.calls.append(("delete_model", f"{name}:{version}"))
        if (name, version) not in self.models:
            return "absent"
        users = [e.name for e in self.endpoints.values() if parse_model_id(e.model_id) == (name, version)]
        if users:
            raise PrerequisiteError(
                MODEL_IN_USE_MESSAGE.format(model=f"{name}:{version}", endpoints=", ".join(users)),
                f"Delete the endpoint first: `phi3ft delete --endpoint {users[0]}`, then re-run.",
            )
        self.models.discard((name, version))
        return "archived" if self.archive_only else "deleted"

    # ---- endpoints ---------------------------------------------------------------------------------
    def create_endpoint(
        self,
        name: str,
        *,
        model_id: str,
        content_safety: bool = True,
        auth_mode: str = "Key",
        tags: Mapping[str, str] | None = None,
        location: str | None = None,
    ) -> EndpointInfo:
        self.calls.append(("create_endpoint", name))
        ep = FakeEndpoint(
            name,
            model_id,
            "Enabled" if content_safety else "Disabled",
            auth_mode,
            self.creating_polls,
            self.final_state,
        )
        self.endpoints[name] = ep
        return EndpointInfo(name, "Creating", model_id, None, LOCATION, ep.content_safety, auth_mode)

    def get_endpoint(self, name: str) -> EndpointInfo | None:
        ep = self.endpoints.get(name)
        if ep is None:
            return None
        info = ep.info()
        ep.reads_left = max(0, ep.reads_left - 1)
        return info

    def list_endpoints(self) -> list[EndpointInfo]:
        return [ep.info() for ep in self.endpoints.values()]

    def get_endpoint_keys(self, name: str) -> EndpointKeys:
        if name not in self.endpoints:
            raise NotFoundError(f"Serverless endpoint {name} does not exist.")
        return EndpointKeys(primary=self.endpoints[name].key, secondary="k-secondary-secret")

    def delete_endpoint(self, name: str) -> bool:
        self.calls.append(("delete_endpoint", name))
        return self.endpoints.pop(name, None) is not None

    def chat_client(self, endpoint_name: str, **_: Any) -> FakeChatClient:
        if endpoint_name not in self.endpoints:
            raise NotFoundError(
                f"Serverless endpoint {endpoint_name} does not exist in project {self.project}."
            )
        return self.chat

    # ---- jobs, data, workspaces (the teardown steps) ----------------------------------------------
    def find_job(self, name: str) -> JobInfo | None:
        return self.jobs.get(name)

    def cancel_job(self, name: str) -> JobInfo:
        """As the adapter: an absent job raises NotFoundError, a terminal one is returned unchanged."""
        self.calls.append(("cancel_job", name))
        job = self.jobs.get(name)
        if job is None:
            raise NotFoundError(f"Not found while trying to read job {name!r}: job {name} not found")
        if not job.terminal:
            job.status = "Canceled"
        return job

    def archive_data(self, name: str, version: str) -> bool:
        self.calls.append(("archive_data", f"{name}:{version}"))
        if (name, version) not in self.data:
            return False
        self.data.discard((name, version))
        return True

    def delete_compute(self, name: str) -> bool:
        self.calls.append(("delete_compute", name))
        if name not in self.computes:
            return False
        self.computes.discard(name)
        return True

    def delete_workspace(
        self, name: str, *, delete_dependent_resources: bool, permanently_delete: bool = False
    ) -> bool:
        kind = self.workspaces.get(name)
        self.calls.append((f"delete_{kind or 'workspace'}", name))
        if kind is None:
            return False
        if kind == "hub" and "project" in self.workspaces.values():
            raise AzureError(f"Hub {name} still has projects.")
        del self.workspaces[name]
        if kind == "project":
            self.endpoints.clear()
            self.models.clear()
            self.data.clear()
        return True
