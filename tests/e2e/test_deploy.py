"""deploy / keys / invoke / eval end to end: the real azure-ai-ml generated client (raw body), the SDK's
delete poller and plain ``requests`` for inference, over HTTPS through the proxy to the offline stack."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import RESOURCE_GROUP, SUBSCRIPTION_ID

from phi3ft.errors import PrerequisiteError
from phi3ft.evaluation import evaluate, load_eval_examples
from phi3ft.state import StateStore
from phi3ft.steps import describe
from phi3ft.targets.azureml.endpoints import ModelRef, deploy_endpoint, deploy_steps, invoke
from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

pytestmark = pytest.mark.e2e

HUB, PROJECT, MODEL = "hub-phi3ft", "proj-phi3ft", "phi4-ft"


def seed(stack: Any) -> Any:
    ws = stack.state.add_project(PROJECT, HUB)
    base = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"
    stack.state.models[(ws.key, MODEL.lower())] = {
        "1": stack.state.model_version_body(ws, MODEL, "1", {"properties": {"baseModelId": base}})
    }
    return ws


def connect(stack: Any) -> AzureMLBackend:
    return AzureMLBackend.connect(
        subscription_id=SUBSCRIPTION_ID,
        resource_group=RESOURCE_GROUP,
        hub=HUB,
        project=PROJECT,
        credential=stack.credential,
        sleep=lambda s: None,
    )


def deploy(backend: AzureMLBackend, store: StateStore, name: str = "phi4-ft-ep", **kw: Any) -> Any:
    return deploy_endpoint(
        backend,
        store,
        ModelRef(MODEL, "1", created_by_phi3ft=True),
        endpoint_name=name,
        sleep=lambda s: None,
        schedule=itertools.repeat(0.0),
        **kw,
    )


def test_deploy_sends_content_safety_and_auth_mode(stack: Any, tmp_path: Path) -> None:
    ws = seed(stack)
    backend, store = connect(stack), StateStore(tmp_path)
    result = deploy(backend, store)
    assert (
        result.model_id
        == f"azureml://locations/eastus2/workspaces/{ws.workspace_id}/models/{MODEL}/versions/1"
    )
    assert result.endpoint.provisioning_state == "Succeeded"
    assert result.endpoint.scoring_uri == "https://phi4-ft-ep.eastus2.models.ai.azure.com"
    ep = stack.state.endpoint("phi4-ft-ep")
    assert (ep.content_safety, ep.auth_mode, ep.provisioning_state) == ("Enabled", "Key", "Succeeded")
    put = stack.requests.find(route="serverless_endpoints.create_or_update")
    assert len(put) == 1
    props = put[0].body["properties"]
    assert props["contentSafety"] == {"contentSafetyStatus": "Enabled"} and props["authMode"] == "Key"
    assert put[0].body["sku"] == {"name": "Consumption"} and put[0].body["location"] == "eastus2"
    assert store.get("endpoint", "phi4-ft-ep")["created_by_phi3ft"] is True  # type: ignore[index]

    # re-run: re-attach, no second PUT
    again = deploy(backend, store)
    assert not again.created and len(stack.requests.find(route="serverless_endpoints.create_or_update")) == 1


@pytest.mark.parametrize("wait", [True, False], ids=["wait", "detach"])
def test_deploy_runs_exactly_the_steps_its_dry_run_prints(stack: Any, tmp_path: Path, wait: bool) -> None:
    seed(stack)
    backend, store = connect(stack), StateStore(tmp_path)
    planned = describe(
        deploy_steps(ModelRef(MODEL, "1", created_by_phi3ft=True), endpoint_name="ep-plan", wait=wait)
    )
    ran: list[Any] = []
    deploy(backend, store, name="ep-plan", wait=wait, ran=ran)
    assert [a.to_dict() for a in ran] == [a.to_dict() for a in planned]
    assert [a.kind for a in ran] == ["resolve_model", "ensure_endpoint"] + (["wait_endpoint"] if wait else [])
    # a re-run re-attaches through the same steps (no second PUT)
    again: list[Any] = []
    deploy(backend, store, name="ep-plan", wait=wait, ran=again)
    assert [a.kind for a in again] == [a.kind for a in planned]
    assert len(stack.requests.find(route="serverless_endpoints.create_or_update")) == 1


def test_deploy_without_content_safety_and_aad(stack: Any, tmp_path: Path) -> None:
    seed(stack)
    deploy(connect(stack), StateStore(tmp_path), content_safety=False, auth_mode="key-and-aad")
    ep = stack.state.endpoint("phi4-ft-ep")
    assert (ep.content_safety, ep.auth_mode) == ("Disabled", "KeyAndAAD")


def test_name_taken_in_region_is_a_clear_error(stack: Any, tmp_path: Path) -> None:
    seed(stack)
    stack.state.taken_endpoint_names.add("phi4-ft-ep")
    with pytest.raises(PrerequisiteError, match="not available") as exc:
        deploy(connect(stack), StateStore(tmp_path))
    assert "--endpoint-name" in (exc.value.hint or "")


def test_invoke_and_eval_over_https(stack: Any, tmp_path: Path) -> None:
    seed(stack)
    backend = connect(stack)
    deploy(backend, StateStore(tmp_path))
    client = backend.chat_client("phi4-ft-ep")
    answer = invoke(client, "Can I play PC games on my Xbox?")
    assert answer.content == "(fake phi4-ft-ep) You said: Can I play PC games on my Xbox?"
    call = stack.requests.find(route="inference.chat_completions")[-1]
    assert (
        call.status == 200
    )  # the stack accepted "Authorization: Bearer <key>" (it redacts the header in its log)
    assert call.host == "phi4-ft-ep.eastus2.models.ai.azure.com"

    stack.state.inference_reply = "Restart the console."
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": ref}]}
        for i, ref in enumerate(["Restart the console.", "restart the console", "Unplug it."])
    ]
    data = tmp_path / "val.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    stack.faults.throttle("inference.chat_completions", retry_after=0, times=2)
    report = evaluate(client, load_eval_examples(data), concurrency=2)
    assert report.errors == 0 and report.retries == 2
    assert report.exact_match == pytest.approx(2 / 3)
    assert report.perplexity is None and "returned no log-probabilities" in report.perplexity_note


def test_wrong_header_form_is_401_with_hint(stack: Any, tmp_path: Path) -> None:
    seed(stack)
    backend = connect(stack)
    deploy(backend, StateStore(tmp_path))
    client = backend.chat_client("phi4-ft-ep")
    client._key = "wrong"  # simulate a rotated key
    with pytest.raises(PrerequisiteError, match="refused the key") as exc:
        invoke(client, "hi")
    assert "--auth-header" in (exc.value.hint or "")


def test_perplexity_when_the_endpoint_returns_logprobs(stack: Any, tmp_path: Path) -> None:
    seed(stack)
    backend = connect(stack)
    deploy(backend, StateStore(tmp_path))
    stack.state.inference_reply = "Restart the console."
    stack.state.inference_logprobs = True  # stack knob: answer `logprobs: true` with per-token values
    data = tmp_path / "val.jsonl"
    row = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "Restart the console."},
        ]
    }
    data.write_text(json.dumps(row) + "\n")
    report = evaluate(backend.chat_client("phi4-ft-ep"), load_eval_examples(data))
    assert report.perplexity == pytest.approx(2.718281828**0.25)
    assert "3 generated tokens" in report.perplexity_note
    assert stack.requests.find(route="inference.chat_completions")[-1].body["logprobs"] is True
