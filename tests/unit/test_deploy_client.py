"""ChatClient (plain requests to the inference URL): header forms, 429/5xx retries with Retry-After, error
mapping, response parsing; and the REST body that carries contentSafety/authMode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from phi3ft.errors import AzureError, NotFoundError, PrerequisiteError, UsageError
from phi3ft.targets.azureml.sdk.endpoints import (
    ChatClient,
    EndpointKeys,
    endpoint_body,
    endpoint_from_rest,
    fine_tuned_model_id,
    parse_model_id,
)


class Resp:
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self._body = body
        self.headers = headers or {}
        self.text = json.dumps(body) if body is not None else ""

    def json(self) -> Any:
        if self._body is None:
            raise ValueError("no body")
        return self._body


OK = {
    "choices": [
        {
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
            "logprobs": {"content": [{"token": "hi", "logprob": -0.5}]},
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    "model": "m",
}


class Session:
    def __init__(self, responses: list[Resp]) -> None:
        self.responses = responses
        self.posts: list[dict[str, Any]] = []

    def post(self, url: str, data: bytes, headers: dict[str, str], timeout: Any) -> Resp:
        self.posts.append({"url": url, "body": json.loads(data), "headers": headers})
        return self.responses.pop(0)


def client(responses: list[Resp], **kw: Any) -> tuple[ChatClient, Session, list[float]]:
    session, slept = Session(responses), []
    c = ChatClient(
        "https://ep.eastus2.models.ai.azure.com/",
        "secret-key",
        endpoint_name="ep",
        sleep=slept.append,
        session_factory=lambda: session,
        **kw,
    )
    return c, session, slept


def test_success_headers_and_parsing() -> None:
    c, session, _ = client([Resp(200, OK)])
    r = c.complete([{"role": "user", "content": "q"}], max_tokens=5, temperature=0.0, logprobs=True)
    assert (r.content, r.prompt_tokens, r.completion_tokens, r.token_logprobs) == ("hi", 3, 1, [-0.5])
    post = session.posts[0]
    assert post["url"] == "https://ep.eastus2.models.ai.azure.com/v1/chat/completions"
    assert post["headers"]["Authorization"] == "Bearer secret-key"
    assert post["body"] == {
        "messages": [{"role": "user", "content": "q"}],
        "max_tokens": 5,
        "temperature": 0.0,
        "logprobs": True,
    }
    assert "secret-key" not in repr(c)


@pytest.mark.parametrize(
    ("form", "header", "value"),
    [("raw", "Authorization", "secret-key"), ("api-key", "api-key", "secret-key")],
)
def test_header_forms(form: str, header: str, value: str) -> None:
    c, session, _ = client([Resp(200, OK)], auth_header=form, path="chat/completions")
    c.complete([{"role": "user", "content": "q"}])
    assert session.posts[0]["headers"][header] == value
    assert session.posts[0]["url"].endswith(".azure.com/chat/completions")
    with pytest.raises(UsageError):
        ChatClient("https://x", "k", auth_header="basic")


def test_429_retries_honour_retry_after_then_backoff() -> None:
    c, _, slept = client(
        [
            Resp(429, {}, {"Retry-After": "7"}),
            Resp(503, {}),
            Resp(429, {}, {"Retry-After": "0"}),
            Resp(200, OK),
        ]
    )
    r = c.complete([{"role": "user", "content": "q"}])
    assert r.retries == 3 and slept == [7.0, 2.0, 0.0]


def test_429_gives_up_after_max_retries() -> None:
    c, _, slept = client([Resp(429, {"error": {"message": "slow down"}})] * 3, max_retries=2)
    with pytest.raises(AzureError, match=r"kept throttling.*2 retries.*slow down") as exc:
        c.complete([{"role": "user", "content": "q"}])
    assert "--concurrency" in (exc.value.hint or "") and len(slept) == 2


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [
        (401, PrerequisiteError, "refused the key"),
        (404, NotFoundError, "has no route"),
        (400, AzureError, "rejected the request"),
    ],
)
def test_error_mapping(status: int, error: type[Exception], match: str) -> None:
    c, _, _ = client([Resp(status, {"error": {"message": "nope"}})])
    with pytest.raises(error, match=match) as exc:
        c.complete([{"role": "user", "content": "q"}])
    assert "secret-key" not in str(exc.value)
    if status == 400:
        assert exc.value.status_code == 400  # type: ignore[attr-defined]


def test_rest_body_and_ids() -> None:
    body = endpoint_body(
        location="eastus2", model_id="m", content_safety=False, auth_mode="KeyAndAAD", tags={"a": "b"}
    )
    assert body["properties"] == {
        "modelSettings": {"modelId": "m"},
        "authMode": "KeyAndAAD",
        "contentSafety": {"contentSafetyStatus": "Disabled"},
    }
    assert body["sku"] == {"name": "Consumption"} and body["tags"] == {"a": "b"}
    with pytest.raises(UsageError):
        endpoint_body(location="x", model_id="m", content_safety=True, auth_mode="Token")
    mid = fine_tuned_model_id("eastus2", "guid", "ft", "1")
    assert mid == "azureml://locations/eastus2/workspaces/guid/models/ft/versions/1"
    assert parse_model_id(mid) == ("ft", "1") and parse_model_id("nothing") is None
    info = endpoint_from_rest(
        {
            "name": "ep",
            "location": "eastus2",
            "properties": {
                "provisioningState": "Creating",
                "modelSettings": {"modelId": mid},
                "inferenceEndpoint": {"uri": "https://ep"},
                "contentSafety": {"contentSafetyStatus": "Enabled"},
                "authMode": "Key",
                "endpointState": "Creating",
            },
        }
    )
    assert (info.provisioning_state, info.scoring_uri, info.content_safety) == (
        "Creating",
        "https://ep",
        "Enabled",
    )
    keys = EndpointKeys(primary="p-secret", secondary="s-secret")
    assert "secret" not in repr(keys) and "secret" not in str(keys)
