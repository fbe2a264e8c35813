"""``phi3ft doctor``: what this machine would use, and the fix for each thing that is missing.

Versions (Python, phi3ft, the Azure SDKs), the optional native speed-up, where each model's tokenizer would
load from, which credential the chain picks (and how long it took), proxy and CA settings, and, when a
job.yaml or the ledger names an Azure project, whether ARM and the workspace answer. Read-only: it never
creates, registers or downloads anything. Exit 0 when nothing is missing, 4 when a prerequisite is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from phi3ft.cli.check import AuthOpt
from phi3ft.cli.options import JsonOpt

if TYPE_CHECKING:
    from phi3ft.catalog import ModelProfile
    from phi3ft.cli.context import AppContext

#: The lowest Python phi3ft supports (pyproject ``requires-python``).
MIN_PYTHON = (3, 10)
SDK_PACKAGES = (
    "azure-ai-ml",
    "azure-identity",
    "azure-core",
    "azure-mgmt-resource",
    "azure-mgmt-authorization",
)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE")
SYMBOLS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "info": "info"}


@dataclass
class Finding:
    """One line of the report. ``status``: ok | warn | fail (a missing prerequisite: exit 4) | info."""

    id: str
    status: str
    title: str
    detail: str
    fix: str | None = None
    data: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# ---- local facts ------------------------------------------------------------------------------------------
def python_finding(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Finding:
    text = ".".join(str(p) for p in version)
    if tuple(version[:2]) < MIN_PYTHON:
        need = ".".join(str(p) for p in MIN_PYTHON)
        return Finding(
            "python",
            "fail",
            "Python",
            f"{text} at {sys.executable}; phi3ft needs {need} or newer",
            f"Install Python {need}+ and reinstall phi3ft into it: python3 -m pip install phi3ft",
        )
    return Finding("python", "ok", "Python", f"{text} at {sys.executable}")


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions_findings() -> list[Finding]:
    from phi3ft import __version__

    found = [Finding("phi3ft", "ok", "phi3ft", f"{__version__} from {Path(__file__).resolve().parents[1]}")]
    missing = []
    parts = []
    for name in SDK_PACKAGES:
        version = _dist_version(name)
        parts.append(f"{name} {version or 'missing'}")
        if version is None:
            missing.append(name)
    if missing:
        found.append(
            Finding(
                "sdk",
                "fail",
                "Azure SDK",
                ", ".join(parts),
                f"Install them: python3 -m pip install {' '.join(missing)} (they come with phi3ft itself)",
            )
        )
    else:
        found.append(Finding("sdk", "ok", "Azure SDK", ", ".join(parts)))
    return found


#: The native code validate runs on: both are required dependencies with compiled wheels. phi3ft itself no
#: longer ships a C extension (``phi3ft.data._speedups`` was removed with the single rule engine).
NATIVE_PACKAGES = ("orjson", "tokenizers", "tiktoken")


def _stale_extension() -> Path | None:
    """A ``phi3ft.data._speedups`` binary left by an older build (nothing imports it any more)."""
    import phi3ft.data

    folder = Path(phi3ft.data.__file__).parent
    found = sorted(folder.glob("_speedups*.so")) + sorted(folder.glob("_speedups*.pyd"))
    return found[0] if found else None


def speedups_finding(env: Mapping[str, str]) -> Finding:
    """Which native speed-ups validate runs on (orjson, tokenizers, tiktoken) and whether they load."""
    import importlib

    loaded, missing = [], []
    for name in NATIVE_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
        else:
            loaded.append(f"{name} {_dist_version(name) or '?'}")
    if missing:
        return Finding(
            "speedups",
            "fail",
            "Native speed-ups",
            f"cannot import {', '.join(missing)} (loaded: {', '.join(loaded) or 'none'})",
            f"Reinstall them: python3 -m pip install --force-reinstall {' '.join(missing)}",
        )
    stale = _stale_extension()
    if stale is not None:
        return Finding(
            "speedups",
            "warn",
            "Native speed-ups",
            f"{', '.join(loaded)} loaded; {stale} is left from an older phi3ft build and is never used",
            f"Delete it: rm {stale}",
        )
    return Finding(
        "speedups",
        "ok",
        "Native speed-ups",
        f"{', '.join(loaded)} loaded (phi3ft ships no C extension of its own)",
    )


def _tokenizer_file_in(path: Path, profile: ModelProfile) -> Path | None:
    """The file :func:`phi3ft.data.tokens.load_tokenizer` would load from ``path`` (not loading it)."""
    from phi3ft.data.tokens import RANK_FILES

    if path.is_file():
        return path
    if not path.is_dir():
        return None
    if (path / "tokenizer.json").is_file():
        return path / "tokenizer.json"
    rank = RANK_FILES.get(profile.tokenizer_kind)
    if rank is None:
        return None
    for candidate in [path / rank, *sorted(path.glob("*.tiktoken"))]:
        if candidate.is_file():
            return candidate
    return None


def tokenizer_source(
    profile: ModelProfile, tokenizer: Path | None, env: Mapping[str, str]
) -> tuple[str, Path | None]:
    """``(origin, file)`` in load_tokenizer's order, or ``("none", None)``; never loads or downloads."""
    import glob

    from phi3ft.data.tokens import hub_cache_dirs

    if tokenizer is not None:
        return "--tokenizer", _tokenizer_file_in(tokenizer, profile)
    if env.get("PHI3FT_TOKENIZER_DIR"):
        found = _tokenizer_file_in(Path(env["PHI3FT_TOKENIZER_DIR"]), profile)
        if found is not None:
            return "PHI3FT_TOKENIZER_DIR", found
    folder = "models--" + profile.hf_repo.replace("/", "--")
    for cache in hub_cache_dirs(env):
        for snap in sorted(glob.glob(str(cache / folder / "snapshots" / "*")), reverse=True):
            found = _tokenizer_file_in(Path(snap), profile)
            if found is not None:
                return "hub-cache", found
    return "none", None


def tokenizer_findings(
    profiles: list[ModelProfile], tokenizer: Path | None, env: Mapping[str, str]
) -> list[Finding]:
    from phi3ft.data.tokens import RANK_FILES, hub_cache_dirs

    offline = bool(env.get("HF_HUB_OFFLINE", "") not in ("", "0"))
    found = []
    for profile in profiles:
        origin, path = tokenizer_source(profile, tokenizer, env)
        title = f"Tokenizer {profile.name}"
        if path is not None:
            found.append(
                Finding(
                    f"tokenizer:{profile.name}",
                    "ok",
                    title,
                    f"{origin}: {path}",
                    data={"origin": origin, "path": str(path)},
                )
            )
            continue
        files = "tokenizer.json" + (
            f" (or {RANK_FILES[profile.tokenizer_kind]})" if profile.tokenizer_kind in RANK_FILES else ""
        )
        cache = hub_cache_dirs(env)[0] / ("models--" + profile.hf_repo.replace("/", "--"))
        if origin == "--tokenizer":
            detail = f"--tokenizer {tokenizer} holds no {files}"
        else:
            detail = f"no {files} in PHI3FT_TOKENIZER_DIR or the hub cache ({cache}); " + (
                "HF_HUB_OFFLINE is set, so nothing is downloaded"
                if offline
                else "it would be downloaded on first use"
            )
        found.append(
            Finding(
                f"tokenizer:{profile.name}",
                "warn",
                title,
                detail,
                f"Put {files} of {profile.hf_repo} in a folder and export PHI3FT_TOKENIZER_DIR=FOLDER "
                f'(or pass --tokenizer FOLDER); see README "Offline tokenizers"',
                data={"origin": "download" if not offline else "none", "path": None},
            )
        )
    return found


def network_findings(env: Mapping[str, str]) -> list[Finding]:
    from phi3ft.network import _without_credentials

    found = []
    proxies = {v: _without_credentials(env[v]) for v in PROXY_VARIABLES if env.get(v)}
    if proxies:
        found.append(
            Finding("proxy", "info", "Proxy", ", ".join(f"{k}={v}" for k, v in proxies.items()), data=proxies)
        )
    else:
        found.append(Finding("proxy", "info", "Proxy", "none (HTTPS_PROXY is not set): direct connections"))
    for var in CA_VARIABLES:
        value = env.get(var)
        if not value:
            continue
        path = Path(value)
        exists = path.is_dir() if var == "SSL_CERT_DIR" else path.is_file()
        if exists:
            found.append(Finding(f"ca:{var}", "ok", "CA bundle", f"{var}={value}"))
        else:
            found.append(
                Finding(
                    f"ca:{var}",
                    "fail",
                    "CA bundle",
                    f"{var}={value} does not exist, so every TLS connection fails",
                    f"Point {var} at your organisation's CA bundle (PEM), or unset it: unset {var}",
                )
            )
    if not any(env.get(v) for v in CA_VARIABLES):
        found.append(
            Finding("ca", "info", "CA bundle", "default (certifi's bundle; REQUESTS_CA_BUNDLE is not set)")
        )
    return found


# ---- Azure ------------------------------------------------------------------------------------------------
def credential_finding(app_ctx: AppContext, mode: str) -> Finding:
    """Which credential the chain for ``mode`` picks, who it is and how long the token took."""
    from phi3ft.targets.azureml.checks import probe_credential

    started = time.perf_counter()
    probe = probe_credential(mode, app_ctx.credential_factory)
    elapsed = time.perf_counter() - started
    error = probe.error
    if error is not None or probe.identity is None:
        message = error.message if error is not None else "no identity"
        hint = error.hint if error is not None else None
        return Finding(
            "credential",
            "fail",
            "Credential",
            f"--auth {mode}: {message} ({elapsed:.1f} s)",
            hint or "Run `az login`, then re-run `phi3ft doctor`.",
            data={"auth": mode, "elapsed_s": round(elapsed, 3)},
        )
    who = probe.identity
    name = who.display_name or who.object_id or "unknown"
    return Finding(
        "credential",
        "ok",
        "Credential",
        f"--auth {mode}: {probe.credential} as {who.kind} {name} (tenant {who.tenant_id}) in {elapsed:.1f} s",
        data={
            "auth": mode,
            "credential": probe.credential,
            "kind": who.kind,
            "elapsed_s": round(elapsed, 3),
        },
    )


def _azure_target(app_ctx: AppContext, config: Path | None) -> tuple[Any, str | None, str]:
    """(JobConfig or AzureTarget or None, project name, where it came from)."""
    from phi3ft.config import load_job_config

    path = config if config is not None else app_ctx.cwd / "job.yaml"
    if config is not None and not config.is_absolute():
        path = app_ctx.cwd / config
    if config is not None or path.is_file():
        cfg = load_job_config(path, env=app_ctx.env, check_files=False)
        if cfg.azure is None:
            return None, None, str(path)
        return cfg, cfg.azure.project.name, str(path)
    from phi3ft.connect import AzureTarget
    from phi3ft.records import JobRecord, get_record
    from phi3ft.state import StateStore

    store = StateStore(app_ctx.state_dir)
    name = store.last_job
    record = get_record(store, JobRecord, name) if name else None
    if record and not record.runs_locally and record.subscription_id:
        target = AzureTarget.from_record(record)
        return target, target.project, f"the ledger record of job {name}"
    return None, None, ""


def azure_findings(app_ctx: AppContext, config: Path | None, auth: str | None) -> list[Finding]:
    from phi3ft.connect import is_placeholder_subscription, open_backend
    from phi3ft.errors import Phi3ftError

    target, project, source = _azure_target(app_ctx, config)
    if target is None:
        return [
            Finding(
                "arm",
                "info",
                "Azure project",
                "no job.yaml here and no job in the ledger: ARM and workspace not asked",
                "Run it next to your job.yaml, or pass --config job.yaml",
            )
        ]
    azure = getattr(target, "azure", target)
    if is_placeholder_subscription(getattr(azure, "subscription_id", None)):
        return [
            Finding(
                "arm",
                "fail",
                "Azure project",
                f"{source} has the placeholder subscription",
                "export AZURE_SUBSCRIPTION_ID=$(az account show --query id -o tsv)",
            )
        ]
    found = []
    try:
        backend = open_backend(app_ctx, target, auth=auth)
        started = time.perf_counter()
        rg = backend.get_resource_group()
        elapsed = time.perf_counter() - started
    except Phi3ftError as exc:
        return [Finding("arm", "fail", "ARM", f"{source}: {exc.message}", exc.hint)]
    group = getattr(azure, "resource_group", None)
    if rg is None:
        found.append(
            Finding(
                "arm",
                "fail",
                "ARM",
                f"answers ({elapsed:.1f} s), but resource group {group} does not exist",
                f"Create it: az group create --name {group} --location "
                f"{getattr(azure, 'location', None) or 'eastus2'}",
            )
        )
        return found
    found.append(
        Finding("arm", "ok", "ARM", f"answers ({elapsed:.1f} s): resource group {group} in {rg.location}")
    )
    if not project:
        return found
    try:
        started = time.perf_counter()
        ws = backend.find_workspace(project)
        elapsed = time.perf_counter() - started
    except Phi3ftError as exc:
        found.append(Finding("workspace", "fail", "Workspace", f"project {project}: {exc.message}", exc.hint))
        return found
    if ws is None:
        found.append(
            Finding(
                "workspace",
                "warn",
                "Workspace",
                f"project {project} does not exist yet ({source})",
                "`phi3ft submit` creates it; `phi3ft check` says whether you may",
            )
        )
    else:
        found.append(Finding("workspace", "ok", "Workspace", f"project {project} answers ({elapsed:.1f} s)"))
    return found


# ---- the command ------------------------------------------------------------------------------------------
def _profiles(model: str | None, cfg_model: str | None) -> list[ModelProfile]:
    from phi3ft import catalog
    from phi3ft.errors import UsageError

    name = model or cfg_model
    if name is None:
        return list(catalog.PROFILES)
    try:
        return [catalog.get_profile(name)]
    except KeyError:
        raise UsageError(f"unknown model '{name}'", "List the models with `phi3ft models`.") from None


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the root app."""

    @app.command("doctor")
    def doctor(
        ctx: typer.Context,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                "-c",
                help="job.yaml naming the Azure project (default: ./job.yaml, else "
                "the last job in the ledger).",
                dir_okay=False,
                show_default=False,
            ),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                "-m",
                help="Only this model's tokenizer (default: job.yaml's model, else every catalog model).",
                show_default=False,
            ),
        ] = None,
        tokenizer: Annotated[
            Path | None,
            typer.Option(
                "--tokenizer",
                help="Where you would pass --tokenizer: is a tokenizer there?",
                show_default=False,
            ),
        ] = None,
        offline: Annotated[
            bool,
            typer.Option("--offline", help="Skip the credential, ARM and workspace (no network at all)."),
        ] = False,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Diagnose this machine: versions, speed-up, tokenizers, credential, proxy/CA, ARM and workspace.

        Each finding comes with its fix. Read-only: nothing is created, registered or downloaded. Exit 0
        when nothing is missing (warnings allowed), 4 when a prerequisite is missing.
        """
        from phi3ft.errors import ExitCode

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        env = app_ctx.env
        cfg_model = None
        cfg_auth = None
        path = config if config is not None else app_ctx.cwd / "job.yaml"
        if config is not None or path.is_file():
            from phi3ft.config import load_job_config

            cfg = load_job_config(
                path if path.is_absolute() else app_ctx.cwd / path, env=env, check_files=False
            )
            cfg_model = cfg.model.name
            cfg_auth = str(cfg.azure.auth) if cfg.azure is not None and cfg.azure.auth else None
        findings = [python_finding(), *versions_findings(), speedups_finding(env)]
        findings += tokenizer_findings(_profiles(model, cfg_model), tokenizer, env)
        findings += network_findings(env)
        if not offline:
            findings.append(credential_finding(app_ctx, auth or cfg_auth or "auto"))
            findings += azure_findings(app_ctx, config, auth)
        failed = [f for f in findings if f.status == "fail"]
        code = ExitCode.PREREQ if failed else ExitCode.OK
        if json:
            out.emit_json(
                {"ok": not failed, "exit_code": int(code), "findings": [f.to_dict() for f in findings]}
            )
        else:
            _render(out, findings)
        if failed:
            out.hint(
                f"{len(failed)} prerequisite(s) missing: apply the fix under each FAIL, then re-run `phi3ft doctor`."
            )
            raise typer.Exit(int(code))


def _render(out: Any, findings: list[Finding]) -> None:
    lines = []
    for f in findings:
        lines.append(f"{SYMBOLS[f.status]}  {f.title}: {f.detail}")
        if f.fix and f.status in ("fail", "warn"):
            lines.append(f"      fix: {f.fix}")
    out.stdout.write("\n".join(lines) + "\n")
    out.stdout.flush()


__all__ = ["Finding"]
