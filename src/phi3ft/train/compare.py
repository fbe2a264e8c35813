"""The local side of ``phi3ft eval --baseline``: the base model and the trained adapter, generating on this
machine (CPU or GPU) behind the same ``complete()`` the serverless chat client offers, so
:func:`phi3ft.baseline.compare` scores both exactly as it scores two endpoints.

One model in memory: the fine-tuned client generates with the LoRA adapter, the base client with the
adapter disabled (``PeftModel.disable_adapter()``), so the base is the very weights training started
from. Generation is greedy at temperature 0 (eval's default), capped at ``max_tokens``, and stops at the
chat template's end-of-turn token. torch, transformers and peft are imported when a client is built.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from phi3ft.errors import PrerequisiteError
from phi3ft.evaluation import ChatResult

#: End-of-turn and end-of-text markers of the catalog templates (whichever the tokenizer knows).
STOP_TOKENS = ("<|end|>", "<|endoftext|>", "<|im_end|>", "</s>")


class LocalChatClient:
    """``complete(messages, ...)`` by generation with a transformers causal LM."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        template: str,
        *,
        device: Any,
        adapter: bool,
        lock: threading.Lock,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        from phi3ft.data.tokens import chat_format

        self.model = model
        self.tokenizer = tokenizer
        self.format = chat_format(template)
        self.device = device
        self.adapter = adapter
        self.lock = lock  # one model: one generation at a time, whichever client asks
        self.clock = clock
        ids = {tokenizer.token_to_id(t) for t in STOP_TOKENS}
        eos = getattr(model.config, "eos_token_id", None)
        ids |= set(eos if isinstance(eos, list) else [eos])
        self.stop_ids = sorted(i for i in ids if isinstance(i, int))
        pad = getattr(model.config, "pad_token_id", None)
        self.pad_id = pad if isinstance(pad, int) else (self.stop_ids[0] if self.stop_ids else 0)

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
        import torch

        prompt = self.format.render(
            [{"role": str(m.get("role")), "content": str(m.get("content") or "")} for m in messages],
            add_generation_prompt=True,
        )
        ids = list(self.tokenizer.encode(prompt, add_special_tokens=False).ids)
        sample = bool(temperature) and float(temperature or 0.0) > 0.0
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(max_tokens or 256),
            "do_sample": sample,
            "output_scores": True,
            "return_dict_in_generate": True,
            "eos_token_id": self.stop_ids or None,
            "pad_token_id": self.pad_id,
        }
        if sample:
            kwargs["temperature"] = float(temperature or 1.0)
            if top_p is not None:
                kwargs["top_p"] = float(top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with self.lock:
            start = self.clock()
            context = contextlib.nullcontext() if self.adapter else self.model.disable_adapter()
            with context, torch.no_grad():
                input_ids = torch.tensor([ids], device=self.device)
                out = self.model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
                )
            latency = self.clock() - start
        new = [int(t) for t in out.sequences[0][len(ids) :]]
        finish = "length"
        kept = new
        for i, token in enumerate(new):
            if token in self.stop_ids:
                kept, finish = new[:i], "stop"
                break
        lps: list[float] | None = None
        if logprobs and kept:
            lps = [
                float(torch.log_softmax(out.scores[i][0].float(), dim=-1)[token])
                for i, token in enumerate(kept)
            ]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return ChatResult(
            content=text.strip(),
            finish_reason=finish,
            prompt_tokens=len(ids),
            completion_tokens=len(kept),
            latency_s=latency,
            token_logprobs=lps,
        )


def load_pair(
    *,
    base_model: str,
    adapter_dir: Path,
    template: str,
    tokenizer_path: Path | None = None,
    device: str = "auto",
) -> tuple[LocalChatClient, LocalChatClient]:
    """(fine-tuned, base) clients over one model: ``base_model`` (a folder or hub id) with the adapter."""
    from phi3ft.train.trainer import _hub_cache, _offline_hint, _pick_device, require_train_extra

    require_train_extra()
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from phi3ft.hub import hub_unreachable
    from phi3ft.train.data import load_tokenizer

    if not (adapter_dir / "adapter_config.json").is_file():
        raise PrerequisiteError(
            f"No trained adapter at {adapter_dir}.",
            "Wait for the local job to finish (`phi3ft watch`), then run `phi3ft eval --baseline` again.",
        )
    dev, use_bf16 = _pick_device(device)
    why = None if Path(base_model).is_dir() else hub_unreachable(base_model, "config.json")
    try:
        base: Any = AutoModelForCausalLM.from_pretrained(
            base_model,
            dtype=torch.bfloat16 if use_bf16 else torch.float32,
            cache_dir=_hub_cache(),
            local_files_only=why is not None,
        )
    except OSError as exc:
        detail = f"{why}, and the hub cache has no copy" if why else str(exc).splitlines()[0]
        raise PrerequisiteError(
            f"cannot load base model {base_model}: {detail}", _offline_hint(base_model, tokenizer=False)
        ) from None
    model: Any = PeftModel.from_pretrained(base, str(adapter_dir)).to(dev)
    model.eval()
    tok_source = (
        adapter_dir if (adapter_dir / "tokenizer.json").is_file() else (tokenizer_path or Path(base_model))
    )
    tokenizer = load_tokenizer(tok_source)
    lock = threading.Lock()
    return (
        LocalChatClient(model, tokenizer, template, device=dev, adapter=True, lock=lock),
        LocalChatClient(model, tokenizer, template, device=dev, adapter=False, lock=lock),
    )
