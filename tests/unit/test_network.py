"""Network, proxy, DNS and TLS failures are told apart from credential failures (``phi3ft.network``).

The real azure-identity / azure-core stack runs against loopback only: a closed port, a proxy that answers
``403`` to ``CONNECT``, a CA bundle path that does not exist. DNS is the one failure built by hand (a real
look-up would leave the machine).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from phi3ft.errors import DnsError, NetworkError, PrerequisiteError, ProxyError, TlsError
from phi3ft.network import classify_transport_failure, credential_hint
from phi3ft.targets.azureml.sdk._core import AzureSession, build_credential, call, credential_error

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SUB = "00000000-1111-2222-3333-444444444444"
CLEARED = (
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "AZURE_AUTHORITY_HOST", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "AZURE_PASSWORD", "IDENTITY_ENDPOINT", "MSI_ENDPOINT",
)  # fmt: skip


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture
def refusing_proxy() -> Iterator[int]:
    """A proxy on loopback that refuses every tunnel (``CONNECT`` -> 403)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=2)
    server.close()


@pytest.fixture
def sp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A service principal in the environment (as for ``--auth env``), no proxy, no CA override."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-a-real-secret")
    return monkeypatch


def token_error(auth: str = "env") -> BaseException:
    session = AzureSession(build_credential(auth), SUB, "rg", auth=auth)
    with pytest.raises((NetworkError, PrerequisiteError)) as info:
        session.identity()
    return info.value


def assert_not_a_login_hint(err: BaseException) -> None:
    hint = getattr(err, "hint", "") or ""
    assert "az login" not in hint and "set AZURE_" not in hint.lower(), hint


# ---- real SDK stack on loopback -------------------------------------------------------------------------
def test_proxy_on_a_closed_port_is_a_proxy_error_not_a_login_problem(sp_env: pytest.MonkeyPatch) -> None:
    port = closed_port()
    sp_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    err = token_error()
    assert isinstance(err, ProxyError)
    assert err.message.startswith(f"Could not connect to the proxy http://127.0.0.1:{port} (HTTPS_PROXY)")
    assert "Connection refused" in err.message
    assert err.hint and "unset HTTPS_PROXY" in err.hint
    assert_not_a_login_hint(err)


def test_refusing_proxy_names_the_status_and_the_hosts_to_allow(
    sp_env: pytest.MonkeyPatch, refusing_proxy: int
) -> None:
    sp_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{refusing_proxy}")
    err = token_error()
    assert isinstance(err, ProxyError)
    assert "refused the tunnel while trying to obtain an Azure token: 403 Forbidden" in err.message
    assert err.hint and "login.microsoftonline.com" in err.hint
    assert_not_a_login_hint(err)


def test_missing_ca_bundle_is_a_tls_error_naming_the_variable(
    sp_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    sp_env.setenv("REQUESTS_CA_BUNDLE", str(missing))
    sp_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")  # never reached: the bundle fails first
    err = token_error()
    assert isinstance(err, TlsError)
    assert f"the CA bundle {missing} does not exist (REQUESTS_CA_BUNDLE)" in err.message
    assert err.hint and err.hint.startswith("Point REQUESTS_CA_BUNDLE at an existing PEM bundle")
    assert_not_a_login_hint(err)


def test_closed_port_endpoint_is_a_network_error(sp_env: pytest.MonkeyPatch) -> None:
    from azure.core import PipelineClient
    from azure.core.pipeline import policies
    from azure.core.rest import HttpRequest

    port = closed_port()
    client = PipelineClient(
        base_url=f"https://127.0.0.1:{port}", policies=[policies.RetryPolicy(retry_total=0)]
    )
    with pytest.raises(NetworkError) as info:
        call(
            "read resource group rg",
            lambda: client.send_request(HttpRequest("GET", f"https://127.0.0.1:{port}/")),
        )
    err = info.value
    assert type(err) is NetworkError
    assert err.message.startswith(
        f"Could not connect to 127.0.0.1:{port} while trying to read resource group rg"
    )
    assert err.hint and err.hint.startswith("Check the network, firewall or VPN")


def test_check_cli_with_auth_env_and_a_refusing_proxy(
    sp_env: pytest.MonkeyPatch, refusing_proxy: int, run_cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sp_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{refusing_proxy}")
    job = tmp_path / "job.yaml"
    job.write_text(
        f"azure: {{subscription_id: {SUB}, resource_group: rg, location: eastus2, hub: {{name: hub-x}}, "
        "project: {name: proj-x}}\nmodel: {name: phi-4-mini-instruct}\ndata: {train: train.jsonl}\n"
    )
    code, out, err = run_cli("check", "-c", str(job), "--auth", "env", "--json")
    assert code == 4, err
    import json

    cred = json.loads(out)["checks"][0]
    assert cred["status"] == "fail"
    assert "refused the tunnel" in cred["detail"] and "403 Forbidden" in cred["detail"]
    assert "az login" not in cred["fix"] and "Set AZURE_" not in cred["fix"]


def test_check_cli_with_a_missing_ca_bundle(sp_env: pytest.MonkeyPatch, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sp_env.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    sp_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    job = tmp_path / "job.yaml"
    job.write_text(
        f"azure: {{subscription_id: {SUB}, resource_group: rg, location: eastus2, hub: {{name: hub-x}}, "
        "project: {name: proj-x}}\nmodel: {name: phi-4-mini-instruct}\ndata: {train: train.jsonl}\n"
    )
    code, out, err = run_cli("check", "-c", str(job), "--auth", "env")
    assert code == 4, err
    text = " ".join(out.split())
    # Table cells may wrap the long tmp path (xdist's popen-gwN folders): compare without white space.
    assert "missing.pemdoesnotexist(REQUESTS_CA_BUNDLE)" in "".join(out.split())
    assert "az login" not in text


# ---- classification rules ---------------------------------------------------------------------------------
def test_dns_failure_is_a_dns_error() -> None:
    inner = socket.gaierror(-2, "Name or service not known")
    request_error = ServiceRequestError(
        "HTTPSConnection(host='login.microsoftonline.com', port=443): Failed to resolve "
        "'login.microsoftonline.com' ([Errno -2] Name or service not known)",
        error=inner,
    )
    auth_error = ClientAuthenticationError(f"Authentication failed: {request_error}")
    auth_error.__cause__ = request_error
    err = credential_error("obtain an Azure token", auth_error, "env")
    assert isinstance(err, DnsError)
    assert (
        err.message
        == "Could not resolve login.microsoftonline.com while trying to obtain an Azure token (DNS)"
    )
    assert err.hint and "offline" in err.hint


def test_untrusted_certificate_is_a_tls_error_and_never_suggests_turning_verification_off() -> None:
    exc = ServiceRequestError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
    )
    err = classify_transport_failure(exc, {"REQUESTS_CA_BUNDLE": "/etc/ca.pem"})
    assert isinstance(err, TlsError)
    assert "not trusted by REQUESTS_CA_BUNDLE=/etc/ca.pem" in err.message
    assert err.hint and "never turns certificate verification off" in err.hint


def test_proxy_credentials_are_not_repeated() -> None:
    exc = ServiceRequestError(
        "('Unable to connect to proxy', OSError('Tunnel connection failed: 407 Proxy Auth'))"
    )
    err = classify_transport_failure(exc, {"HTTPS_PROXY": "http://me:s3cret@proxy.corp:8080"})
    assert isinstance(err, ProxyError)
    assert "s3cret" not in err.message and "http://proxy.corp:8080" in err.message


def test_a_refused_secret_is_a_credential_error_with_the_auth_env_fix() -> None:
    exc = ClientAuthenticationError("Authentication failed: AADSTS7000215: Invalid client secret provided.")
    env_set = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": "x"}
    assert classify_transport_failure(exc, env_set) is None
    err = credential_error("obtain an Azure token", exc, "env")
    assert isinstance(err, PrerequisiteError) and not isinstance(err, NetworkError)


@pytest.mark.parametrize(
    ("auth", "env", "expected", "absent"),
    [
        ("env", {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": "x"},
         "check those values", "Set AZURE_"),
        ("env", {"AZURE_TENANT_ID": TENANT}, "Set AZURE_CLIENT_ID, AZURE_CLIENT_SECRET", "az ad app"),
        ("cli", {}, "Run `az login`", "AZURE_CLIENT_SECRET"),
        ("auto", {}, "Run `az login`", "check those values"),
    ],
)  # fmt: skip
def test_credential_hint_depends_on_the_auth_mode_and_what_is_set(
    auth: str, env: dict[str, str], expected: str, absent: str
) -> None:
    hint = credential_hint(auth, env)
    assert expected in hint and absent not in hint


def test_an_unavailable_credential_chain_is_not_a_network_error() -> None:
    """DefaultAzureCredential's text of credentials that are simply not set up (no az, no IMDS) stays a
    credential problem with the login fix."""
    text = (
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        "Attempted credentials:\n\tEnvironmentCredential: EnvironmentCredential authentication unavailable. "
        "Environment variables are not fully configured.\n\tManagedIdentityCredential: ManagedIdentityCredential "
        "authentication unavailable, no response from the IMDS endpoint.\n\tAzureCliCredential: Timed out "
        "waiting for Azure CLI\n"
    )
    err = credential_error("obtain an Azure token", ClientAuthenticationError(text), "auto")
    assert type(err) is PrerequisiteError
    assert err.hint and "az login" in err.hint
