"""The serverless-endpoint contract (``phi3ft.targets.azureml.sdk.endpoints.EndpointOps``), one set of tests
run against the adapter on the offline stack and the in-memory fake the deploy/eval/delete unit tests use.

What the services rely on: ``create_endpoint`` returns at once (no wait) with the name and model; it then
reads ``Creating`` and settles ``Succeeded`` with a scoring URI; ``get_endpoint``/``list_endpoints`` see it;
``get_endpoint_keys`` gives a primary key; ``delete_endpoint`` is ``True`` once, then ``False`` (idempotent);
an absent endpoint is ``None`` from ``get_endpoint`` and ``NotFoundError`` from ``get_endpoint_keys`` and
``chat_client``.
"""

from __future__ import annotations

import pytest
from tests.contract.backends import EndpointHarness

from phi3ft.errors import NotFoundError
from phi3ft.targets.base import EndpointInfo

PROVISIONING = {"Creating", "Updating", "Succeeded", "Failed", "Canceled", "Deleting"}


def test_an_absent_endpoint_is_none_not_found_and_not_deleted(endpoints: EndpointHarness) -> None:
    backend = endpoints.backend
    assert backend.get_endpoint("contract-absent") is None
    assert backend.delete_endpoint("contract-absent") is False
    with pytest.raises(NotFoundError):
        backend.get_endpoint_keys("contract-absent")
    with pytest.raises(NotFoundError):
        backend.chat_client("contract-absent")
    assert "contract-absent" not in {e.name for e in backend.list_endpoints()}


def test_endpoint_create_get_list_keys_delete(endpoints: EndpointHarness) -> None:
    backend, name = endpoints.backend, "contract-ep"
    created = backend.create_endpoint(name, model_id=endpoints.model_id, content_safety=True, auth_mode="Key")
    assert isinstance(created, EndpointInfo)
    assert created.name == name and created.model_id == endpoints.model_id
    assert created.provisioning_state in PROVISIONING

    read = backend.get_endpoint(name)
    assert read is not None and read.name == name and read.provisioning_state in PROVISIONING
    settled = endpoints.settle(name)
    assert settled.provisioning_state == "Succeeded" and settled.scoring_uri
    assert settled.model_id == endpoints.model_id
    assert (settled.content_safety, settled.auth_mode) == ("Enabled", "Key")

    listed = {e.name: e for e in backend.list_endpoints()}
    assert name in listed and listed[name].model_id == endpoints.model_id

    keys = backend.get_endpoint_keys(name)
    assert isinstance(keys.primary, str) and keys.primary
    assert keys.primary not in str(keys) and keys.primary not in repr(keys)  # never shown

    assert backend.delete_endpoint(name) is True
    assert backend.get_endpoint(name) is None
    assert backend.delete_endpoint(name) is False  # idempotent
    assert name not in {e.name for e in backend.list_endpoints()}


def test_content_safety_off_and_aad_auth_are_kept(endpoints: EndpointHarness) -> None:
    backend, name = endpoints.backend, "contract-aad"
    backend.create_endpoint(name, model_id=endpoints.model_id, content_safety=False, auth_mode="AAD")
    settled = endpoints.settle(name)
    assert (settled.content_safety, settled.auth_mode) == ("Disabled", "AAD")
