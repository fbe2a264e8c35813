"""Azurite (blob only, HTTPS with the test leaf) as a child process, plus a direct admin client.

The admin client talks path-style to ``https://127.0.0.1:{port}/{account}`` with proxies disabled,
so the fake server can create containers and write log blobs while the test process has
``HTTPS_PROXY`` pointing at the stack's proxy.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AZURITE_DIR = REPO / ".tools" / "azurite"
AZURITE_BIN = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
AZURITE_VERSION = "3.37.0"


class AzuriteMissing(RuntimeError):
    pass


def account_key(name: str) -> str:
    """Deterministic base64 key per account name (Azurite accepts any base64 key)."""
    return base64.b64encode(hashlib.sha512(f"phi3ft-azurite-{name}".encode()).digest()).decode()


def _die_with_parent() -> None:
    """Linux: SIGTERM Azurite when the Python process that started it dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary() -> Path:
    explicit = os.environ.get("PHI3FT_AZURITE_BIN")
    if explicit:
        return Path(explicit)
    if AZURITE_BIN.exists():
        return AZURITE_BIN
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    raise AzuriteMissing(
        f"Azurite is not installed ({AZURITE_BIN} is missing). Run `bash scripts/install-azurite.sh` "
        "(scripts/test.sh does it), or set PHI3FT_ALLOW_NO_AZURITE=1 to skip the e2e tests locally."
    )


class Azurite:
    def __init__(self, *, accounts: dict[str, str], cert: Path, key: Path, ca: Path, workdir: Path) -> None:
        self.accounts, self.cert, self.key, self.ca, self.workdir = accounts, cert, key, ca, workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "azurite.log"

    def start(self, timeout: float = 30.0) -> None:
        binary = find_binary()
        self.port = free_port()
        env = {
            **os.environ,
            "AZURITE_ACCOUNTS": ";".join(f"{n}:{k}" for n, k in self.accounts.items()),
        }
        for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            env.pop(var, None)
        cmd = [
            str(binary),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",  # azure-storage-blob sends an x-ms-version newer than Azurite knows
            "--disableTelemetry",
            "--loose",
            "--oauth", "basic",
            "--cert", str(self.cert),
            "--key", str(self.key),
        ]  # fmt: skip
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        atexit.register(self.stop)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Azurite exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Azurite did not open port {self.port} within {timeout} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    # -- admin client (direct, no proxy) -------------------------------------------------------

    def service(self, account: str) -> Any:
        from azure.core.pipeline.transport import RequestsTransport
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            f"https://127.0.0.1:{self.port}/{account}",
            credential={"account_name": account, "account_key": self.accounts[account]},
            transport=RequestsTransport(use_env_settings=False, connection_verify=str(self.ca)),
            retry_total=2,
        )

    def ensure_container(self, account: str, container: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.service(account).create_container(container)

    def put_blob(self, account: str, container: str, name: str, data: bytes) -> None:
        self.ensure_container(account, container)
        self.service(account).get_blob_client(container, name).upload_blob(data, overwrite=True)

    def get_blob(self, account: str, container: str, name: str) -> bytes:
        return bytes(self.service(account).get_blob_client(container, name).download_blob().readall())

    def list_blobs(self, account: str, container: str) -> list[str]:
        return [b.name for b in self.service(account).get_container_client(container).list_blobs()]

    def container_sas(self, account: str, container: str, *, hours: int = 1, read_only: bool = False) -> str:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        perm = (
            ContainerSasPermissions(read=True, list=True)
            if read_only
            else ContainerSasPermissions(read=True, write=True, create=True, add=True, list=True, delete=True)
        )
        return generate_container_sas(
            account,
            container,
            account_key=self.accounts[account],
            permission=perm,
            expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours),
            start=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5),
        )
