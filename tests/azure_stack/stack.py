"""``AzureStack``: certificates + Azurite + fake Azure + CONNECT proxy, started and stopped as one."""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import aml, arm, compute, dataplane
from .azurite import Azurite, account_key
from .certs import CertFiles, generate
from .credential import FakeCredential, decode_jwt
from .faults import Faults
from .server import ConnectProxy, FakeHttpsServer
from .state import (
    RESOURCE_GROUP,
    SP_CLIENT_ID,
    SP_CLIENT_SECRET,
    STORAGE_POOL,
    SUBSCRIPTION_ID,
    TENANT_ID,
    State,
)
from .web import DROP, HttpError, Request, Response, RouteTable, arm_error

FAKE_HOSTS = (
    "management.azure.com",
    "login.microsoftonline.com",
    "*.api.azureml.ms",
    "*.experiments.azureml.net",
    "*.models.ai.azure.com",
)
BLOB_HOSTS = ("*.blob.core.windows.net",)

#: Variables removed from a process under test (a preset value would bypass or redirect the stack).
REMOVED_ENV = (
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "AZUREML_CURRENT_CLOUD",
    "ARM_CLOUD_METADATA_URL",
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "MSI_ENDPOINT",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZUREML_DEV_URL_MFE",
)


@dataclass
class RequestRecord:
    host: str
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    route: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    oid: str | None = None
    fault: str | None = None
    at: float = field(default_factory=time.monotonic)  # when the request arrived (time.monotonic())

    def __str__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query.items() if k != "sig")
        return (
            f"{self.at % 1000:8.3f} {self.status or '---'} {self.method} https://{self.host}{self.path}"
            f"{'?' + q if q else ''} [{self.route}]"
        )


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[RequestRecord] = []

    def append(self, rec: RequestRecord) -> None:
        with self._lock:
            self.records.append(rec)

    def clear(self) -> None:
        with self._lock:
            self.records.clear()

    def __iter__(self) -> Iterator[RequestRecord]:
        with self._lock:
            return iter(list(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def find(self, route: str | None = None, method: str | None = None, host: str | None = None,
             path_contains: str | None = None, status: int | None = None) -> list[RequestRecord]:  # fmt: skip
        import fnmatch

        out = []
        for r in self:
            if route and not fnmatch.fnmatchcase(r.route, route):
                continue
            if method and r.method != method.upper():
                continue
            if host and not fnmatch.fnmatch(r.host, host):
                continue
            if path_contains and path_contains.lower() not in r.path.lower():
                continue
            if status is not None and r.status != status:
                continue
            out.append(r)
        return out

    def format(self, last: int | None = None) -> str:
        recs = list(self)
        return "\n".join(str(r) for r in (recs[-last:] if last else recs))


class AzureStack:
    """The offline Azure stack. Use ``start()``/``stop()`` or ``with AzureStack() as stack``.

    ``azurite=False`` runs without blob storage (uploads, SAS and log files then fail).
    """

    def __init__(self, *, azurite: bool = True, workdir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="phi3ft-azure-stack-"))
        self.use_azurite = azurite
        self.azurite: Azurite | None = None
        self.certs: CertFiles | None = None
        self.state = State()
        self.faults = Faults(self.state)
        self.requests = RequestLog()
        self.unrouted: list[RequestRecord] = []
        self.server_errors: list[str] = []
        self.table = RouteTable()
        arm.register(self.table, self.state)
        aml.register(self.table, self.state)
        dataplane.register(self.table, self.state)
        compute.register(self.table, self.state)
        self._server: FakeHttpsServer | None = None
        self._proxy: ConnectProxy | None = None
        self._threads: list[threading.Thread] = []
        self.startup_seconds = 0.0
        self.credential = FakeCredential(oid=self.state.user_oid, tenant_id=TENANT_ID)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> AzureStack:
        t0 = time.monotonic()
        try:
            self.certs = generate(self.workdir / "certs")
            if self.use_azurite:
                self.azurite = Azurite(accounts={n: account_key(n) for n in STORAGE_POOL}, cert=self.certs.leaf_pem,
                                       key=self.certs.leaf_key_pem, ca=self.certs.ca_pem, workdir=self.workdir)  # fmt: skip
                self.azurite.start()
                self.state.azurite = self.azurite
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.certs.leaf_pem, self.certs.leaf_key_pem)
            self._server = FakeHttpsServer(ctx, self.dispatch)
            fake_addr = ("127.0.0.1", int(self._server.server_address[1]))
            table = [(h, lambda: fake_addr) for h in FAKE_HOSTS]
            if self.azurite is not None:
                az = self.azurite
                table += [(h, lambda: ("127.0.0.1", az.port)) for h in BLOB_HOSTS]
            self._proxy = ConnectProxy(table)
            for srv in (self._server, self._proxy):
                th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
                th.start()
                self._threads.append(th)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        for srv in (self._proxy, self._server):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        self._proxy = self._server = None
        for th in self._threads:
            th.join(timeout=5)
        self._threads.clear()
        if self.azurite is not None:
            self.azurite.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> AzureStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Default seed, no faults, empty logs (Azurite blobs are kept; workspaces get fresh containers)."""
        self.state.reset()
        self.faults.clear()
        self.requests.clear()
        self.unrouted.clear()
        self.server_errors.clear()
        if self._proxy is not None:
            with self._proxy.log.lock:
                self._proxy.log.escapes.clear()
                self._proxy.log.connects.clear()

    # --- environment -------------------------------------------------------------------------

    @property
    def proxy_url(self) -> str:
        assert self._proxy is not None, "stack not started"
        return f"http://127.0.0.1:{self._proxy.port}"

    @property
    def env_overrides(self) -> dict[str, str]:
        assert self.certs is not None, "stack not started"
        ca = str(self.certs.ca_pem)
        return {
            "HTTPS_PROXY": self.proxy_url,
            "HTTP_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "http_proxy": self.proxy_url,
            "REQUESTS_CA_BUNDLE": ca,
            "CURL_CA_BUNDLE": ca,
            "SSL_CERT_FILE": ca,
            "HF_HUB_OFFLINE": "1",
            "AZURE_TENANT_ID": TENANT_ID,
            "AZURE_CLIENT_ID": SP_CLIENT_ID,
            "AZURE_CLIENT_SECRET": SP_CLIENT_SECRET,
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION_ID,
            "AZURE_RESOURCE_GROUP": RESOURCE_GROUP,
        }

    @property
    def env(self) -> dict[str, str]:
        """A complete environment for a subprocess: this process's, minus REMOVED_ENV, plus the overrides."""
        out = {k: v for k, v in os.environ.items() if k not in REMOVED_ENV}
        out.update(self.env_overrides)
        return out

    def apply_env(self, monkeypatch: Any) -> None:
        for var in REMOVED_ENV:
            monkeypatch.delenv(var, raising=False)
        for k, v in self.env_overrides.items():
            monkeypatch.setenv(k, v)

    # --- assertions and introspection ---------------------------------------------------------

    @property
    def escapes(self) -> list[Any]:
        return list(self._proxy.log.escapes) if self._proxy else []

    @property
    def connects(self) -> list[tuple[str, int]]:
        """CONNECTs the proxy served, in order (blob traffic to Azurite shows up only here)."""
        return list(self._proxy.log.connects) if self._proxy else []

    def assert_no_escapes(self) -> None:
        escapes = self.escapes
        if escapes:
            lines = "\n".join(f"  {e.method} {e.host}:{e.port}  ({e.line})" for e in escapes)
            raise AssertionError(f"requests tried to leave the offline Azure stack:\n{lines}")

    def assert_all_routed(self) -> None:
        if self.unrouted:
            raise AssertionError(
                "requests the fake has no route for:\n" + "\n".join(str(r) for r in self.unrouted)
            )

    def assert_no_server_errors(self) -> None:
        if self.server_errors:
            raise AssertionError("the fake raised:\n" + "\n".join(self.server_errors))

    def routes(self) -> list[str]:
        return self.table.names()

    def blob_bytes(self, account: str, container: str, name: str) -> bytes:
        assert self.azurite is not None
        return self.azurite.get_blob(account, container, name)

    def describe(self) -> str:
        return (
            "\n".join(f"export {k}={v}" for k, v in self.env_overrides.items())
            + "\n"
            + "".join(f"unset {v}\n" for v in REMOVED_ENV)
        )

    # --- dispatch ----------------------------------------------------------------------------

    def dispatch(self, req: Request) -> Response | object:
        rec = RequestRecord(req.host, req.method, req.path, dict(req.query), _body_for_log(req),
                            headers={k: v for k, v in req.headers.items() if k != "authorization"})  # fmt: skip
        self.requests.append(rec)
        match = self.table.match(req.method, req.host, req.path)
        if match is None:
            rec.status, rec.route = 404, "<unrouted>"
            self.unrouted.append(rec)
            return arm_error(404, "NoRouteFound", f"The offline Azure stack has no route for {req.method} "
                             f"https://{req.host}{req.path} (see tests/azure_stack/README.md to add one).")  # fmt: skip
        route, params = match
        req.params, req.route = params, route.name
        rec.route = route.name
        holds = []
        for fault in self.faults.match(req):
            if fault.hold:
                holds.append(fault)
                continue
            if fault.latency:
                time.sleep(fault.latency)
            if fault.drop:
                rec.status, rec.fault = 0, "drop"
                return DROP
            if fault.status:
                rec.status, rec.fault = fault.status, f"status {fault.status}"
                return _fault_response(fault)
        if route.auth:
            token = req.bearer
            if not token:
                rec.status = 401
                return arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                                 headers={"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/'
                                          f'{TENANT_ID}", error="invalid_token"'})  # fmt: skip
            claims = decode_jwt(token)
            if not claims.get("oid"):
                rec.status = 401
                return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
            rec.oid = claims["oid"]
        try:
            with self.state.lock:
                resp = route.handler(req)
        except HttpError as e:
            resp = e.response()
        except Exception:  # a bug in the fake: answer 500 and keep it for assert_no_server_errors
            tb = traceback.format_exc()
            self.server_errors.append(f"{req.method} {req.host}{req.path}\n{tb}")
            resp = arm_error(500, "InternalServerError", "The fake raised; see stack.server_errors.")
        rec.status = resp.status
        for fault in holds:  # applied; the client never sees the answer
            rec.fault = "hold"
            fault.held.set()
            fault.released.wait(fault.hold_timeout)
            return DROP
        return resp


def _body_for_log(req: Request) -> Any:
    if not req.body:
        return None
    ctype = req.headers.get("content-type", "")
    if "json" in ctype:
        try:
            return req.json()
        except HttpError:
            pass
    if "x-www-form-urlencoded" in ctype:
        import urllib.parse

        return {k: ("***" if "secret" in k else v) for k, v in urllib.parse.parse_qsl(req.body.decode())}
    return req.body if len(req.body) < 4096 else req.body[:4096]


def _fault_response(fault: Any) -> Response:
    status = int(fault.status)
    code = fault.code or {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                          503: "ServiceUnavailable", 504: "GatewayTimeout"}.get(status, "InjectedFault")  # fmt: skip
    message = fault.message or {429: "The request was throttled (injected fault).",
                                503: "The service is temporarily unavailable (injected fault)."}.get(
        status, f"Injected fault {status}.")  # fmt: skip
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = (
            str(int(fault.retry_after)) if float(fault.retry_after).is_integer() else str(fault.retry_after)
        )
    response = arm_error(status, code, message, headers=headers)
    if getattr(fault, "inner_code", None):
        response.body["error"]["innerError"] = {"code": fault.inner_code, "innerError": None}
    return response
