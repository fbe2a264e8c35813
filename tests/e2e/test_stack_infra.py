"""The stack itself: fault injection against azure-core's retry policy, the hermetic proxy, the fake
Entra ID behind azure-identity's real credential classes, concurrency, reset, the standalone runner."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import textwrap
import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from tests.azure_stack import RESOURCE_GROUP, SP_CLIENT_ID, SUBSCRIPTION_ID, TENANT_ID, USER_OID, decode_jwt
from tests.azure_stack.stack import AzureStack

pytestmark = pytest.mark.e2e


def rc(stack: AzureStack, **kw: object):  # type: ignore[no-untyped-def]
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(stack.credential, SUBSCRIPTION_ID, **kw)


def test_429_retry_after_is_honoured_by_azure_core(stack: AzureStack) -> None:
    fault = stack.faults.throttle("resource_groups.get", retry_after=2, times=1)
    t0 = time.monotonic()
    assert rc(stack).resource_groups.get(RESOURCE_GROUP).name == RESOURCE_GROUP
    elapsed = time.monotonic() - t0
    assert fault.hits == 1
    assert [r.status for r in stack.requests.find(route="resource_groups.get")] == [429, 200]
    assert 2.0 <= elapsed < 5, elapsed  # slept Retry-After seconds, not its own backoff


def test_5xx_retried_then_exhausted(stack: AzureStack) -> None:
    stack.faults.error("providers.get", status=503, times=2)
    client = rc(stack, retry_backoff_factor=0.01)
    assert client.providers.get("Microsoft.Network").registration_state == "Registered"
    assert [r.status for r in stack.requests.find(route="providers.get")] == [503, 503, 200]
    stack.faults.error("providers.get", status=500, times=None)
    with pytest.raises(HttpResponseError) as ei:
        rc(stack, retry_backoff_factor=0.01, retry_total=2).providers.get("Microsoft.Network")
    assert ei.value.status_code == 500 and ei.value.error.code == "InternalServerError"


def test_dropped_connection_and_latency(stack: AzureStack) -> None:
    stack.faults.drop("resource_groups.get", times=1)
    stack.faults.slow("resource_groups.get", seconds=0.3, skip=1, times=1)
    t0 = time.monotonic()
    assert rc(stack, retry_backoff_factor=0.01).resource_groups.get(RESOURCE_GROUP).name == RESOURCE_GROUP
    assert time.monotonic() - t0 >= 0.3
    recs = stack.requests.find(route="resource_groups.get")
    assert [r.fault for r in recs] == ["drop", None]


def test_proxy_refuses_unknown_hosts(stack: AzureStack) -> None:
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get("https://example.com/", timeout=5)
    assert [e.host for e in stack.escapes] == ["example.com"]
    with pytest.raises(AssertionError, match=r"example\.com"):
        stack.assert_no_escapes()
    # plain http (e.g. the managed-identity address) is refused too
    r = requests.get("http://169.254.169.254/metadata/identity/oauth2/token", timeout=5)
    assert r.status_code == 403
    assert stack.escapes[-1].host == "169.254.169.254"
    stack.reset()  # clears the escapes so the fixture's own check passes


def test_environment_credential_against_fake_entra(stack: AzureStack) -> None:
    from azure.identity import ClientSecretCredential, DefaultAzureCredential, EnvironmentCredential

    cred = EnvironmentCredential()
    token = cred.get_token("https://management.azure.com/.default").token
    claims = decode_jwt(token)
    assert claims["oid"] == USER_OID and claims["tid"] == TENANT_ID and claims["appid"] == SP_CLIENT_ID
    assert claims["aud"] == "https://management.azure.com"
    from azure.mgmt.resource.resources import ResourceManagementClient

    dac = DefaultAzureCredential(exclude_managed_identity_credential=True, exclude_cli_credential=True,
                                 exclude_powershell_credential=True, exclude_developer_cli_credential=True,
                                 exclude_visual_studio_code_credential=True, exclude_shared_token_cache_credential=True)  # fmt: skip
    assert (
        ResourceManagementClient(dac, SUBSCRIPTION_ID).resource_groups.get(RESOURCE_GROUP).name
        == RESOURCE_GROUP
    )

    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        ClientSecretCredential(TENANT_ID, SP_CLIENT_ID, "wrong").get_token(
            "https://management.azure.com/.default"
        )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        ClientSecretCredential(TENANT_ID, "00000000-0000-0000-0000-000000000000", "x").get_token(
            "https://management.azure.com/.default"
        )
    with pytest.raises(ClientAuthenticationError):
        ClientSecretCredential("11111111-0000-0000-0000-000000000000", SP_CLIENT_ID, "x").get_token(
            "https://management.azure.com/.default"
        )


def test_missing_token_is_401(stack: AzureStack) -> None:
    r = requests.get(f"https://management.azure.com/subscriptions/{SUBSCRIPTION_ID}/resourcegroups/{RESOURCE_GROUP}",
                     params={"api-version": "2025-04-01"}, timeout=5)  # fmt: skip
    assert r.status_code == 401 and r.json()["error"]["code"] == "AuthenticationFailed"


def test_concurrent_requests(stack: AzureStack) -> None:
    client = rc(stack)
    stack.faults.slow("providers.get", seconds=0.5, times=None)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        states = list(
            pool.map(lambda ns: client.providers.get(ns).registration_state, ["Microsoft.Network"] * 8)
        )
    assert states == ["Registered"] * 8
    assert time.monotonic() - t0 < 2.5  # served in parallel, not 8 x 0.5 s


def test_reset_restores_the_default_seed(stack: AzureStack) -> None:
    stack.state.add_project("p1", "h1")
    stack.state.set_provider("Microsoft.Network", "NotRegistered")
    stack.faults.error("*", status=500, times=None)
    stack.reset()
    assert stack.state.workspace("p1") is None
    assert stack.state.provider_state("Microsoft.Network") == "Registered"
    assert rc(stack).providers.get("Microsoft.Network").registration_state == "Registered"


def test_subprocess_env_reaches_the_stack(stack: AzureStack) -> None:
    """A child process with ``stack.env`` uses the real credential chain against the fake Entra ID."""
    code = textwrap.dedent(f"""
        from azure.identity import EnvironmentCredential
        from azure.mgmt.resource.resources import ResourceManagementClient
        c = ResourceManagementClient(EnvironmentCredential(), "{SUBSCRIPTION_ID}")
        print(c.resource_groups.get("{RESOURCE_GROUP}").location)
    """)
    env = stack.env
    assert "NO_PROXY" not in env and env["HF_HUB_OFFLINE"] == "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "eastus2"
    assert stack.requests.find(route="entra.token")


@pytest.mark.slow
def test_standalone_runner_prints_exports(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.Popen([sys.executable, "-m", "tests.azure_stack", "--seed-project"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("# ready"):
                break
        exports = dict(
            line[len("export ") :].strip().split("=", 1) for line in lines if line.startswith("export ")
        )
        assert exports["HTTPS_PROXY"].startswith("http://127.0.0.1:")
        assert os.path.exists(exports["REQUESTS_CA_BUNDLE"])
        r = requests.get("https://eastus2.api.azureml.ms/discovery", proxies={"https": exports["HTTPS_PROXY"]},
                         verify=exports["REQUESTS_CA_BUNDLE"], timeout=10)  # fmt: skip
        assert r.json()["api"] == "https://eastus2.api.azureml.ms"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_clean_teardown_leaves_no_process_or_port() -> None:
    import socket

    s = AzureStack().start()
    assert s.azurite is not None and s.azurite.proc is not None
    pid, ports = s.azurite.proc.pid, [s.azurite.port, s._proxy.port, s._server.server_address[1]]  # type: ignore[union-attr]
    workdir = s.workdir
    s.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(port))) != 0, port
    assert not workdir.exists()


def test_missing_azurite_fails_loudly_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from tests.azure_stack import azurite, pytest_plugin

    monkeypatch.delenv("PHI3FT_AZURITE_BIN", raising=False)
    monkeypatch.setattr(azurite, "AZURITE_BIN", azurite.Path("/nonexistent/azurite-blob"))
    monkeypatch.setattr(azurite.shutil, "which", lambda name: None)
    monkeypatch.delenv("PHI3FT_ALLOW_NO_AZURITE", raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"install-azurite\.sh"):
        pytest_plugin._azurite_or_skip()
    monkeypatch.setenv("PHI3FT_ALLOW_NO_AZURITE", "1")
    with pytest.raises(pytest.skip.Exception, match="PHI3FT_ALLOW_NO_AZURITE"):
        pytest_plugin._azurite_or_skip()
