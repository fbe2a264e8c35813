"""The plan service: actions, findings, tokens and cost, with a stub validator (the real one runs in CLI tests)."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from phi3ft.config import data_asset_ref, load_job_config, split_asset_refs
from phi3ft.errors import ExitCode
from phi3ft.plan import build_plan

TODAY = date(2026, 11, 25)

BASE = """\
azure:
  subscription_id: 11111111-2222-3333-4444-555555555555
  resource_group: rg-test
  location: eastus2
  hub:
    name: hub-test
  project:
    name: proj-test
model:
  name: phi-4-mini-instruct
data:
  train: train.jsonl
  validation: val.jsonl
"""


class StubReport:
    def __init__(
        self, *, valid: bool = True, exact: bool = True, total: int = 1000, examples: int = 10
    ) -> None:
        self.valid = valid
        self.data: dict[str, Any] = {
            "valid": valid,
            "files": [{"role": "train", "records": examples}, {"role": "validation", "records": 3}],
            "summary": {"errors": 0 if valid else 1, "warnings": 0},
            "tokenizer": {
                "name": "stub" if exact else None,
                "exact": exact,
                "reason": None if exact else "offline",
            },
            "stats": {
                "examples": examples,
                "tokens": {"exact": exact, "total": total, "assistant": total // 2},
            },
            "issues": []
            if valid
            else [
                {"rule": "T03", "severity": "error", "file": "train.jsonl", "line": 4, "message": "too long"}
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        return self.data


def stub(report: StubReport, calls: list[dict[str, Any]] | None = None) -> Any:
    def validate(train: Path, validation: Path | None, **kwargs: Any) -> StubReport:
        if calls is not None:
            calls.append({"train": train, "validation": validation, **kwargs})
        return report

    return validate


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    (tmp_path / "val.jsonl").write_text('{"messages": [1]}\n', encoding="utf-8")
    return tmp_path


def plan_for(folder: Path, text: str, report: StubReport | None = None, **kwargs: Any) -> Any:
    path = folder / "job.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    cfg = load_job_config(path, env={})
    return build_plan(cfg, today=TODAY, validate=stub(report or StubReport()), **kwargs)


def kinds(plan: Any) -> list[str]:
    return [a.kind for a in plan.actions]


def codes(plan: Any) -> set[str]:
    return {f.code for f in plan.findings}


def test_serverless_plan_actions_in_order(folder: Path) -> None:
    plan = plan_for(folder, BASE)
    assert plan.exit_code == ExitCode.OK
    # what submit runs, in its order (the registry model is resolved before the job is submitted) ...
    assert kinds(plan) == [
        "ensure_hub",
        "ensure_project",
        "upload_data",
        "upload_data",
        "resolve_model",
        "submit_job",
    ]
    # ... then what follows it and submit does not run (numbered on)
    assert [(a.step, a.kind) for a in plan.then] == [
        (7, "register_model"),
        (8, "deploy_endpoint"),
        (9, "smoke_test"),
    ]
    hub = plan.actions[0]
    assert "create if missing" in hub.summary and "phi3ft check" in hub.params["existence"]
    assert plan.actions[4].params["model_name"] == "Phi-4-mini-instruct"
    submit = plan.actions[5].params
    assert submit["model_id"] == "azureml://registries/azureml/models/Phi-4-mini-instruct/labels/latest"
    assert submit["hyperparameters"] == {
        "learning_rate": "0.00002",
        "num_train_epochs": "1",
        "per_device_train_batch_size": "1",
    }
    upload = plan.actions[2].params
    assert upload["asset_name"] == "phi3ft-train"
    assert upload["asset_version"] == upload["sha256"][:16]
    deploy = plan.then[1].params
    assert deploy["content_safety"] is True and deploy["auth_mode"] == "key"
    data = plan.to_dict()
    assert data["status"] == "ok" and data["exit_code"] == 0 and data["azure_calls"] is False


def test_validator_gets_model_tokenizer_and_epochs(folder: Path) -> None:
    calls: list[dict[str, Any]] = []
    path = folder / "job.yaml"
    path.write_text(BASE + "hyperparameters:\n  epochs: 3\n", encoding="utf-8")
    build_plan(
        load_job_config(path, env={}),
        today=TODAY,
        tokenizer=Path("/tok"),
        env={"X": "1"},
        validate=stub(StubReport(), calls),
    )
    assert calls[0]["model"] == "phi-4-mini-instruct"
    assert calls[0]["tokenizer"] == Path("/tok")
    assert calls[0]["epochs"] == 3
    assert calls[0]["validation"] == folder / "val.jsonl"


def test_billed_tokens_and_no_cost_without_prices(folder: Path) -> None:
    plan = plan_for(folder, BASE + "hyperparameters:\n  epochs: 3\n", StubReport(total=1234))
    assert plan.tokens["billed"] == 3702 and plan.tokens["exact"] is True
    assert plan.cost is None
    assert "no-prices" in codes(plan)


def test_cost_only_from_given_prices(folder: Path) -> None:
    text = (
        BASE
        + "hyperparameters:\n  epochs: 2\npricing:\n  currency: EUR\n  training_per_1k_tokens: 0.5\n  hosting_per_hour: 0.1\n"
    )
    plan = plan_for(folder, text, StubReport(total=10_000))
    assert plan.cost == {
        "currency": "EUR",
        "estimate": True,
        "exact_tokens": True,
        "training": 10.0,
        "training_per_1k_tokens": 0.5,
        "hosting_per_hour": 0.1,
        "hosting_per_day": 2.4,
        "hosting_per_month": 73.0,
    }
    assert "no-prices" not in codes(plan)


def test_estimated_tokens_are_labelled_and_still_ok(folder: Path) -> None:
    plan = plan_for(folder, BASE, StubReport(exact=False))
    assert plan.exit_code == ExitCode.OK
    assert plan.tokens["exact"] is False
    assert "tokens-estimated" in codes(plan)


def test_invalid_data_is_exit_3(folder: Path) -> None:
    plan = plan_for(folder, BASE, StubReport(valid=False))
    assert plan.exit_code == ExitCode.INVALID
    assert plan.to_dict()["validation"]["issues"][0]["rule"] == "T03"


def test_retired_model_blocks_and_names_replacement(folder: Path) -> None:
    plan = plan_for(folder, BASE.replace("phi-4-mini-instruct", "phi-3-mini-4k-instruct"))
    assert plan.exit_code == ExitCode.PREREQ
    (blocker,) = plan.blockers
    assert blocker.code == "model-retired"
    assert "retired on 2025-08-30" in blocker.message and "phi-4-mini-instruct" in blocker.message
    assert "backend: local" in (blocker.hint or "") and "azureml-compute" in (blocker.hint or "")
    assert blocker.line == 10


def test_deprecated_model_warns_before_retirement(folder: Path) -> None:
    path = folder / "job.yaml"
    path.write_text(BASE.replace("phi-4-mini-instruct", "phi-3.5-mini-instruct"), encoding="utf-8")
    plan = build_plan(load_job_config(path, env={}), today=date(2025, 7, 15), validate=stub(StubReport()))
    assert plan.exit_code == ExitCode.OK
    assert "model-deprecated" in codes(plan)


def test_phi3_small_is_not_serverless(folder: Path) -> None:
    path = folder / "job.yaml"
    path.write_text(BASE.replace("phi-4-mini-instruct", "phi-3-small-8k-instruct"), encoding="utf-8")
    plan = build_plan(load_job_config(path, env={}), today=date(2025, 1, 1), validate=stub(StubReport()))
    assert [b.code for b in plan.blockers] == ["model-not-serverless"]


def test_region_outside_a_verified_list_is_a_blocker(folder: Path) -> None:
    """Phi-4-mini's regions are verified (Microsoft Learn, 2026-02): submit cannot succeed elsewhere."""
    plan = plan_for(folder, BASE.replace("location: eastus2", "location: westeurope"))
    assert plan.exit_code == ExitCode.PREREQ
    assert [b.code for b in plan.blockers] == ["region-no-finetune"]
    blocker = plan.blockers[0]
    assert blocker.message == (
        "westeurope does not offer serverless fine-tuning of Phi-4-mini-instruct (offered in eastus2, eastus, "
        "northcentralus, southcentralus, westus, westus3; verified: Microsoft Learn, Azure AI Foundry: "
        "fine-tune Phi models, region availability (2026-02), as of 2026-02-01)"
    )
    assert blocker.hint and blocker.hint.startswith("Set azure.location: eastus2") and blocker.line == 4
    assert "region-no-deploy" in {w.code for w in plan.warnings}


@pytest.mark.parametrize("region", ["eastus", "northcentralus", "southcentralus", "westus", "westus3"])
def test_phi4_family_fine_tunes_in_the_six_documented_regions(folder: Path, region: str) -> None:
    for model in ("phi-4-mini-instruct", "phi-4", "phi-4-multimodal-instruct"):
        text = BASE.replace("location: eastus2", f"location: {region}").replace("phi-4-mini-instruct", model)
        plan = plan_for(folder, text)
        assert plan.exit_code == ExitCode.OK, (model, [b.message for b in plan.blockers])
        assert not {"region-no-finetune", "region-no-deploy"} & codes(plan)


def test_swedencentral_deploys_but_does_not_fine_tune(folder: Path) -> None:
    plan = plan_for(folder, BASE.replace("location: eastus2", "location: swedencentral"))
    assert [b.code for b in plan.blockers] == ["region-no-finetune"]
    assert "region-no-deploy" not in codes(plan)


def test_region_outside_an_unverified_list_is_a_warning_naming_its_source(folder: Path) -> None:
    text = BASE.replace("location: eastus2", "location: westeurope").replace(
        "phi-4-mini-instruct", "phi-3.5-mini-instruct"
    )
    path = folder / "job.yaml"
    path.write_text(text, encoding="utf-8")
    plan = build_plan(load_job_config(path, env={}), today=date(2025, 1, 1), validate=stub(StubReport()))
    assert plan.exit_code == ExitCode.OK
    warning = next(f for f in plan.warnings if f.code == "region-no-finetune")
    assert (
        "unverified: Microsoft Learn, Phi-3 fine-tuning and region availability pages, as of 2025-06-30"
        in (warning.message)
    )


def test_placeholder_subscription_is_an_offline_preview(folder: Path) -> None:
    plan = plan_for(
        folder, BASE.replace("11111111-2222-3333-4444-555555555555", "00000000-0000-0000-0000-000000000000")
    )
    assert plan.exit_code == ExitCode.OK
    warning = next(f for f in plan.warnings if f.code == "placeholder-subscription")
    assert "offline preview" in warning.message and warning.line == 2
    assert warning.hint and "AZURE_SUBSCRIPTION_ID" in warning.hint
    assert "placeholder-subscription" not in codes(plan_for(folder, BASE))


def test_local_backend_trains_phi3_without_blockers(folder: Path) -> None:
    text = "backend: local\nmodel:\n  name: phi-3-mini-4k-instruct\ndata:\n  train: train.jsonl\n"
    plan = plan_for(folder, text)
    assert plan.exit_code == ExitCode.OK
    # one honest step: the detached trainer loads the base model and trains (nothing follows it)
    assert kinds(plan) == ["train_local"]
    assert plan.actions[0].params["base_model"] == "microsoft/Phi-3-mini-4k-instruct"
    assert plan.then == []
    assert "model-retired-in-azure" in codes(plan)
    assert not plan.blockers


def test_azureml_compute_plan(folder: Path) -> None:
    text = BASE.replace("model:", "backend: azureml-compute\ncompute:\n  cluster_name: gpu-a100\nmodel:")
    plan = plan_for(folder, text.replace("phi-4-mini-instruct", "phi-3-medium-4k-instruct"))
    assert plan.exit_code == ExitCode.OK
    # submit's order: the cluster and environment after the uploads, right before the job
    assert kinds(plan) == [
        "ensure_hub",
        "ensure_project",
        "upload_data",
        "upload_data",
        "ensure_compute",
        "ensure_environment",
        "submit_job",
    ]
    assert plan.actions[4].params["vm_size"] == "Standard_NC24ads_A100_v4"
    assert [a.kind for a in plan.then] == ["register_model"]


def test_split_plan(folder: Path) -> None:
    text = BASE.replace("  validation: val.jsonl\n", "  split:\n    fraction: 0.2\n    seed: 7\n")
    plan = plan_for(folder, text, StubReport(total=1000))
    assert kinds(plan)[2:5] == ["split_data", "upload_data", "upload_data"]
    assert plan.tokens["billed"] == 800
    targets = [a.target for a in plan.actions if a.kind == "upload_data"]
    assert targets[0].startswith("phi3ft-train-split-train:")


def test_warnings_for_ignored_blocks_and_safety_off(folder: Path) -> None:
    text = (
        BASE
        + "training:\n  epochs: 2\ncompute:\n  max_nodes: 1\ndeploy:\n  content_safety: false\nhyperparameters:\n  epochs: 12\n"
    )
    plan = plan_for(folder, text)
    assert {"training-ignored", "compute-ignored", "content-safety-off", "many-epochs"} <= codes(plan)
    assert plan.exit_code == ExitCode.OK


def test_missing_subscription_warns(folder: Path) -> None:
    plan = plan_for(folder, BASE.replace("  subscription_id: 11111111-2222-3333-4444-555555555555\n", ""))
    assert "no-subscription" in codes(plan)


def test_asset_refs_are_content_addressed() -> None:
    assert data_asset_ref("train", Path("My Data.jsonl"), "ab" * 32) == ("phi3ft-my-data", "abababababababab")
    refs = split_asset_refs(Path("train.jsonl"), "cd" * 32, 0.1, 42)
    assert refs == split_asset_refs(Path("train.jsonl"), "cd" * 32, 0.1, 42)
    assert refs != split_asset_refs(Path("train.jsonl"), "cd" * 32, 0.1, 43)


def test_no_validation_file_means_default_split_like_submit(folder: Path) -> None:
    plan = plan_for(folder, BASE.replace("  validation: val.jsonl\n", ""), StubReport(total=1000))
    assert "default-split" in codes(plan)
    assert "split_data" in kinds(plan)
    assert plan.tokens["billed"] == 900
    assert plan.data["split"] == {"fraction": 0.1, "seed": 42}
