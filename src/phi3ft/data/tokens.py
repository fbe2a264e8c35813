"""Tokenizers and chat templates for Phi models: load, render, count, and mark trainable tokens.

Three facts drive this module (docs/architecture.md, "Tokens and chat templates"):

* **Render, then encode without special-token additions.** Counts are for the conversation rendered with the
  target's chat template and encoded with ``add_special_tokens=False`` by the ``tokenizer.json`` pipeline
  itself (``tokenizers``; transformers 5's ``AutoTokenizer`` on a Phi-3 folder rebuilds that pipeline and
  drops the space prefix after role tokens, so its ``apply_chat_template(tokenize=True)`` ids differ).
* **Added tokens are split points.** HF tokenizers cut the text at every added token before normalising, and
  tokens marked ``rstrip``/``lstrip`` swallow the Unicode whitespace next to them. So a rendered conversation
  is the concatenation of independently-encodable *chunks*, one per message (``<|user|>\\n{content}<|end|>\\n``
  for Phi-3), plus a prefix/suffix special token. ``count(render(conv)) == sum(count(chunk))`` exactly; the
  validator uses this to encode each *distinct* message once (``tests/unit/test_data_tokens.py`` proves it).
* **Tokenizer source.** ``--tokenizer PATH``, then ``PHI3FT_TOKENIZER_DIR``, then the Hugging Face hub cache
  (``$HF_HUB_CACHE`` or ``$HF_HOME/hub``), then a hub download only when ``HF_HUB_OFFLINE`` is unset and
  ``huggingface_hub`` is importable. Phi-4 / Phi-4-mini also load from a ``.tiktoken`` rank file with an
  HF-exact added-token splitter (the official ``tokenizer.json`` is preferred when present).

Public API (stable; the trainer reuses it for loss masking):

* :func:`load_tokenizer` -> :class:`Encoder` (raises :class:`TokenizerUnavailable` with a reason)
* :func:`chat_format` -> :class:`ChatFormat` (``render``, ``chunks``, ``pieces``)
* :func:`encode_conversation` -> :class:`EncodedConversation` (``ids``, ``trainable``)
* :func:`count_conversation` -> :class:`ConversationCount`
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from phi3ft.catalog import ModelProfile

#: Unicode White_Space (what HF ``AddedToken`` lstrip/rstrip remove; Rust ``char::is_whitespace``).
#: Python's ``str.isspace`` differs (it also accepts U+001C..U+001F), so the set is spelled out.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
#: The Split regex of HF's cl100k-based tokenizer.json (Phi-4); tiktoken's own cl100k regex is equivalent.
CL100K_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


class TokenizerUnavailable(Exception):
    """No tokenizer could be loaded; ``str(exc)`` says why and where phi3ft looked."""


# ---------------------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------------------
class Encoder(Protocol):
    """What phi3ft needs from a tokenizer. Implementations never add BOS/EOS by themselves."""

    name: str
    source: str

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def count_batch(self, texts: Sequence[str]) -> list[int]: ...

    def token_id(self, text: str) -> int | None:
        """The id of an added token, or None when ``text`` is not a single added token."""
        ...


class HFEncoder:
    """A ``tokenizers.Tokenizer`` loaded from ``tokenizer.json`` (never contacts the hub)."""

    def __init__(self, path: Path, name: str) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self.name = name
        self.source = str(path)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch_fast(list(texts), add_special_tokens=False)]

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        # encode_batch_fast parallelises over the batch (Rayon) and skips offsets; len() avoids id lists.
        return [len(e) for e in self._tok.encode_batch_fast(list(texts), add_special_tokens=False)]

    def token_id(self, text: str) -> int | None:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return ids[0] if len(ids) == 1 and self._tok.token_to_id(text) == ids[0] else None


@dataclass(frozen=True)
class AddedToken:
    content: str
    id: int
    lstrip: bool = False
    rstrip: bool = False


class TiktokenEncoder:
    """tiktoken BPE ranks plus HF-style added-token handling (the special tokens are added by hand).

    Plain ``tiktoken.encode(allowed_special="all")`` over-counts when whitespace touches a special token; this
    splits on the added tokens (leftmost-longest), drops the whitespace they strip, and encodes each piece
    with ``encode_ordinary``.
    """

    def __init__(self, ranks_file: Path, pattern: str, added: Sequence[AddedToken], name: str) -> None:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        ranks = load_tiktoken_bpe(str(ranks_file))
        self._enc = tiktoken.Encoding(
            name=f"phi3ft-{ranks_file.stem}", pat_str=pattern, mergeable_ranks=ranks, special_tokens={}
        )
        self._added = {t.content: t for t in added}
        alternatives = sorted(self._added, key=len, reverse=True)  # longest first = leftmost-longest
        self._split = re.compile("|".join(re.escape(a) for a in alternatives)) if alternatives else None
        self.name = name
        self.source = str(ranks_file)

    def _pieces(self, text: str) -> list[str | AddedToken]:
        if self._split is None:
            return [text]
        out: list[str | AddedToken] = []
        pos = 0
        strip_next = False
        for m in self._split.finditer(text):
            tok = self._added[m.group(0)]
            seg = text[pos : m.start()]
            if strip_next:
                seg = seg.lstrip(WHITESPACE)
            if tok.lstrip:
                seg = seg.rstrip(WHITESPACE)
            if seg:
                out.append(seg)
            out.append(tok)
            strip_next = tok.rstrip
            pos = m.end()
        seg = text[pos:]
        if strip_next:
            seg = seg.lstrip(WHITESPACE)
        if seg:
            out.append(seg)
        return out

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        pieces = [self._pieces(t) for t in texts]
        plain = [p for ps in pieces for p in ps if isinstance(p, str)]
        encoded = iter(self._enc.encode_ordinary_batch(plain, num_threads=2) if plain else [])
        result: list[list[int]] = []
        for ps in pieces:
            ids: list[int] = []
            for p in ps:
                if isinstance(p, str):
                    ids.extend(next(encoded))
                else:
                    ids.append(p.id)
            result.append(ids)
        return result

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encode_batch(texts)]

    def token_id(self, text: str) -> int | None:
        tok = self._added.get(text)
        return tok.id if tok else None


# Built-in added-token tables, used when no tokenizer_config.json sits next to the rank file.
_PHI4_MINI_ADDED = (
    AddedToken("<|endoftext|>", 199999),
    AddedToken("<|endofprompt|>", 200018),
    *(
        AddedToken(t, i, rstrip=True)
        for t, i in (
            ("<|assistant|>", 200019),
            ("<|end|>", 200020),
            ("<|user|>", 200021),
            ("<|system|>", 200022),
            ("<|tool|>", 200023),
            ("<|/tool|>", 200024),
            ("<|tool_call|>", 200025),
            ("<|/tool_call|>", 200026),
            ("<|tool_response|>", 200027),
            ("<|tag|>", 200028),
        )
    ),
)
_PHI4_NAMED = {
    100257: "<|endoftext|>",
    100258: "<|fim_prefix|>",
    100259: "<|fim_middle|>",
    100260: "<|fim_suffix|>",
    100264: "<|im_start|>",
    100265: "<|im_end|>",
    100266: "<|im_sep|>",
    100276: "<|endofprompt|>",
}


def _phi4_added() -> tuple[AddedToken, ...]:
    out, dummy = [], 0
    for i in range(100256, 100352):
        name = _PHI4_NAMED.get(i)
        if name is None:
            name, dummy = f"<|dummy_{dummy}|>", dummy + 1
        out.append(AddedToken(name, i, lstrip=True, rstrip=True))
    return tuple(out)


_PHI4_ADDED = _phi4_added()
#: Phi-3-small (custom Phi3SmallTokenizer on cl100k): specials do not strip whitespace.
_PHI3_SMALL_ADDED = (
    AddedToken("<|endoftext|>", 100257),
    AddedToken("<|system|>", 100261),
    AddedToken("<|user|>", 100262),
    AddedToken("<|assistant|>", 100263),
    AddedToken("<|end|>", 100266),
    AddedToken("<|endofprompt|>", 100276),
)


def _added_from_config(config: Path) -> list[AddedToken] | None:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    table = data.get("added_tokens_decoder")
    if not isinstance(table, dict) or not table:
        return None
    return [
        AddedToken(str(v["content"]), int(k), bool(v.get("lstrip")), bool(v.get("rstrip")))
        for k, v in table.items()
        if isinstance(v, dict) and "content" in v
    ]


# ---------------------------------------------------------------------------------------------------------
# Tokenizer resolution
# ---------------------------------------------------------------------------------------------------------
RANK_FILES = {"tiktoken-o200k": "o200k_base.tiktoken", "tiktoken-cl100k": "cl100k_base.tiktoken"}


def _tiktoken_from(ranks: Path, profile: ModelProfile, configs: Sequence[Path]) -> TiktokenEncoder:
    added: Sequence[AddedToken] | None = None
    for cfg in configs:
        if cfg.is_file():
            added = _added_from_config(cfg)
            if added:
                break
    default: Sequence[AddedToken]
    if profile.template == "phi3-small":
        pattern, default = CL100K_PATTERN, _PHI3_SMALL_ADDED
    elif profile.tokenizer_kind == "tiktoken-o200k":
        pattern, default = O200K_PATTERN, _PHI4_MINI_ADDED
    else:
        pattern, default = CL100K_PATTERN, _PHI4_ADDED
    return TiktokenEncoder(ranks, pattern, added or default, name=profile.hf_repo)


def _from_path(path: Path, profile: ModelProfile) -> Encoder | None:
    """Load from a tokenizer.json / .tiktoken file, or a folder holding one (searched one level deep)."""
    if path.is_file():
        if path.suffix == ".tiktoken":
            return _tiktoken_from(path, profile, [path.parent / "tokenizer_config.json"])
        return HFEncoder(path, profile.hf_repo)
    if not path.is_dir():
        return None
    if (path / "tokenizer.json").is_file():
        return HFEncoder(path / "tokenizer.json", profile.hf_repo)
    rank_name = RANK_FILES.get(profile.tokenizer_kind)
    if rank_name is None:
        return None
    candidates = [path / rank_name, *sorted(path.glob("*.tiktoken"))]
    for ranks in candidates:
        if ranks.is_file():
            # Prefer the model's own tokenizer_config.json (exact added-token flags) when one is near.
            leaf = profile.hf_repo.split("/")[-1].lower()
            configs = [path / "tokenizer_config.json", path / leaf / "tokenizer_config.json"]
            return _tiktoken_from(ranks, profile, configs)
    return None


def hub_cache_dirs(env: Mapping[str, str]) -> list[Path]:
    """Where ``huggingface_hub`` keeps snapshots: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ~/.cache."""
    if env.get("HF_HUB_CACHE"):
        return [Path(env["HF_HUB_CACHE"])]
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return [Path(home) / "hub"]


def _from_hub_cache(profile: ModelProfile, env: Mapping[str, str]) -> Encoder | None:
    folder = "models--" + profile.hf_repo.replace("/", "--")
    for cache in hub_cache_dirs(env):
        for snap in sorted(glob.glob(str(cache / folder / "snapshots" / "*")), reverse=True):
            enc = _from_path(Path(snap), profile)
            if enc is not None:
                return enc
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _download(profile: ModelProfile, env: Mapping[str, str]) -> tuple[Encoder | None, str]:
    """``(encoder, "")`` after a hub download, else ``(None, why not)``; fails fast without a network.

    huggingface_hub retries a failed request with back-off (~24 s, 8 connection attempts, offline), so
    :func:`phi3ft.hub.hub_unreachable` goes first: ``HF_HUB_OFFLINE``, or one HEAD request without
    retries; only when the hub answers is the file downloaded. ``HF_ENDPOINT``, the proxy variables and
    the cache folder come from ``env``.
    """
    from phi3ft.hub import hub_endpoint, hub_unreachable, offline_flag

    if offline_flag(env):
        return None, "download skipped: HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None, "download skipped: huggingface_hub is not installed"
    why = hub_unreachable(profile.hf_repo, "tokenizer.json", env)
    if why is not None:
        return None, f"download failed: {why}"
    try:
        path = hf_hub_download(
            profile.hf_repo,
            "tokenizer.json",
            cache_dir=hub_cache_dirs(env)[0],
            endpoint=hub_endpoint(env),
        )
    except Exception as exc:  # gated repo, disk...: the caller reports "skipped" with the reason
        return None, f"download failed: {type(exc).__name__}: {_one_line(exc)}"
    return HFEncoder(Path(path), profile.hf_repo), ""


@dataclass
class LoadedTokenizer:
    encoder: Encoder
    origin: str  # "--tokenizer" | "PHI3FT_TOKENIZER_DIR" | "hub-cache" | "download"


def load_tokenizer(
    profile: ModelProfile, path: Path | None = None, env: Mapping[str, str] | None = None
) -> LoadedTokenizer:
    """Find and load the tokenizer for ``profile``; raise :class:`TokenizerUnavailable` with the reason.

    Order: ``path`` (an explicit ``--tokenizer``: a missing or unusable path is an error, not a fallback),
    ``PHI3FT_TOKENIZER_DIR``, the HF hub cache, then a download (only when ``HF_HUB_OFFLINE`` is unset and
    ``huggingface_hub`` is importable).
    """
    env = os.environ if env is None else env
    looked: list[str] = []
    if path is not None:
        if not path.exists():
            raise TokenizerUnavailable(f"--tokenizer {path} does not exist")
        enc = _from_path(path, profile)
        if enc is None:
            raise TokenizerUnavailable(
                f"--tokenizer {path} holds no tokenizer.json"
                + (
                    f" or {RANK_FILES[profile.tokenizer_kind]}"
                    if profile.tokenizer_kind in RANK_FILES
                    else ""
                )
            )
        return LoadedTokenizer(enc, "--tokenizer")
    env_dir = env.get("PHI3FT_TOKENIZER_DIR")
    if env_dir:
        enc = _from_path(Path(env_dir), profile)
        if enc is not None:
            return LoadedTokenizer(enc, "PHI3FT_TOKENIZER_DIR")
        looked.append(f"PHI3FT_TOKENIZER_DIR={env_dir}")
    enc = _from_hub_cache(profile, env)
    if enc is not None:
        return LoadedTokenizer(enc, "hub-cache")
    looked.append(f"hub cache {hub_cache_dirs(env)[0]}")
    enc, why = _download(profile, env)
    if enc is not None:
        return LoadedTokenizer(enc, "download")
    looked.append(why)
    raise TokenizerUnavailable(f"no tokenizer for {profile.hf_repo}; looked in: " + "; ".join(looked))


# ---------------------------------------------------------------------------------------------------------
# Chat formats
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChatFormat:
    """One chat template, expressed as per-message chunks so counts are additive.

    ``render(messages)`` is the exact string the HF template produces (``add_generation_prompt=False``).
    ``chunk(role, content)`` is the piece one message contributes; ``prefix``/``suffix`` are emitted once.
    ``header[role]`` is the untrained start of a chunk (the role marker); the rest of an assistant chunk is
    trainable, and so is ``suffix`` (the eos that teaches the model to stop).
    """

    family: str
    prefix: str
    suffix: str
    header: Mapping[str, str]
    footer: Mapping[str, str]
    dropped_roles: frozenset[str] = frozenset()
    #: Phi-3-medium/original: ``<|assistant|>\\n`` closes the *user* chunk, so the assistant chunk starts
    #: with content whose leading whitespace that rstrip token swallows.
    strip_leading: frozenset[str] = frozenset()
    special_texts: tuple[str, ...] = field(default_factory=tuple)
    generation_prompt: str = ""

    def chunk(self, role: str, content: str) -> str | None:
        if role in self.dropped_roles or role not in self.header:
            return None
        if role in self.strip_leading:
            content = content.lstrip(WHITESPACE)
        return self.header[role] + content + self.footer[role]

    def chunks(self, messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
        """``(role, chunk_text)`` for each rendered message (dropped roles are left out)."""
        out = []
        for m in messages:
            text = self.chunk(str(m["role"]), str(m["content"]))
            if text is not None:
                out.append((str(m["role"]), text))
        return out

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = False) -> str:
        """The full rendered conversation, as ``apply_chat_template(..., tokenize=False)`` would give."""
        body = []
        for m in messages:
            role, content = str(m["role"]), str(m["content"])
            if role in self.dropped_roles or role not in self.header:
                continue
            body.append(self.header[role] + content + self.footer[role])
        end = self.generation_prompt if add_generation_prompt else self.suffix
        return self.prefix + "".join(body) + end

    @property
    def drops_system(self) -> bool:
        return "system" in self.dropped_roles

    def end_marker(self, role: str) -> str:
        """The end-of-turn token that opens ``footer[role]`` (``<|end|>``, ``<|im_end|>``): the footer up
        to its first whitespace (Phi-3-medium's user footer also opens the assistant turn after it)."""
        footer = self.footer.get(role, "")
        for i, ch in enumerate(footer):
            if ch in WHITESPACE:
                return footer[:i]
        return footer

    def pieces(self, messages: Sequence[Mapping[str, Any]]) -> list[RenderedPiece]:
        """``render(messages)`` cut into the prefix, one piece per rendered message and the suffix, each with
        the character spans of the message content and its end-of-turn marker inside the piece (the trainer
        masks its loss with them). ``"".join(p.text for p in pieces) == render(messages)``; content is kept
        as given (``render`` does not apply ``strip_leading``; the rstrip token swallows that whitespace)."""
        out: list[RenderedPiece] = []
        if self.prefix:
            out.append(RenderedPiece("", self.prefix, None))
        for index, m in enumerate(messages):
            role, content = str(m["role"]), str(m["content"])
            if role in self.dropped_roles or role not in self.header:
                continue
            header = self.header[role]
            start, stop = len(header), len(header) + len(content)
            marker = self.end_marker(role)
            out.append(
                RenderedPiece(
                    role,
                    header + content + self.footer[role],
                    index,
                    (start, stop),
                    (stop, stop + len(marker)),
                )
            )
        if self.suffix:
            out.append(RenderedPiece("", self.suffix, None))
        return out


@dataclass(frozen=True)
class RenderedPiece:
    """One piece of a rendered conversation (:meth:`ChatFormat.pieces`).

    ``role`` and ``index`` (position in the input messages) are ``""``/``None`` for the prefix and suffix;
    ``content`` and ``end`` are ``(start, stop)`` character offsets inside ``text`` of the message content and
    of its end-of-turn marker (``(0, 0)`` for the prefix and suffix).
    """

    role: str
    text: str
    index: int | None
    content: tuple[int, int] = (0, 0)
    end: tuple[int, int] = (0, 0)


_PHI3_SPECIALS: tuple[str, ...] = (
    "<|end|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|endoftext|>",
    "<s>",
    "</s>",
)
_PHI3_SPECIALS += tuple(f"<|placeholder{i}|>" for i in range(1, 7))


def chat_format(template: str) -> ChatFormat:
    """The :class:`ChatFormat` for a catalog template family (templates: docs/architecture.md)."""
    roles = ("system", "user", "assistant")
    if template == "phi3":
        return ChatFormat(
            "phi3",
            "",
            "<|endoftext|>",
            {r: f"<|{r}|>\n" for r in roles},
            dict.fromkeys(roles, "<|end|>\n"),
            special_texts=_PHI3_SPECIALS,
            generation_prompt="<|assistant|>\n",
        )
    if template in ("phi3-medium", "phi3-original"):
        return ChatFormat(
            template,
            "<s>" if template == "phi3-original" else "",
            "",
            {"user": "<|user|>\n", "assistant": ""},
            {"user": "<|end|>\n<|assistant|>\n", "assistant": "<|end|>\n"},
            dropped_roles=frozenset({"system"}),
            strip_leading=frozenset({"assistant"}),
            special_texts=_PHI3_SPECIALS,
        )
    if template == "phi3-small":
        return ChatFormat(
            "phi3-small",
            "<|endoftext|>",
            "<|endoftext|>",
            {r: f"<|{r}|>\n" for r in roles},
            dict.fromkeys(roles, "<|end|>\n"),
            special_texts=("<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>"),
            generation_prompt="<|assistant|>\n",
        )
    if template == "phi4-mini":
        return ChatFormat(
            "phi4-mini",
            "",
            "<|endoftext|>",
            {r: f"<|{r}|>" for r in roles},
            dict.fromkeys(roles, "<|end|>"),
            special_texts=(
                "<|end|>",
                "<|user|>",
                "<|assistant|>",
                "<|system|>",
                "<|endoftext|>",
                "<|endofprompt|>",
                "<|tool|>",
                "<|/tool|>",
                "<|tool_call|>",
                "<|/tool_call|>",
                "<|tool_response|>",
                "<|tag|>",
            ),
            generation_prompt="<|assistant|>",
        )
    if template == "phi4":
        return ChatFormat(
            "phi4",
            "",
            "",
            {r: f"<|im_start|>{r}<|im_sep|>" for r in roles},
            dict.fromkeys(roles, "<|im_end|>"),
            special_texts=("<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>", "<|dummy_"),
            generation_prompt="<|im_start|>assistant<|im_sep|>",
        )
    raise ValueError(f"unknown chat template family {template!r}")


# ---------------------------------------------------------------------------------------------------------
# Conversation-level helpers
# ---------------------------------------------------------------------------------------------------------
@dataclass
class EncodedConversation:
    """Token ids of one rendered conversation and, per id, whether it is trained on (assistant output)."""

    ids: list[int]
    trainable: list[bool]


@dataclass
class ConversationCount:
    total: int
    assistant: int  # trainable tokens
    per_role: dict[str, int]
    first_assistant_at: int | None  # index of the first trainable token, None if there is none


def _is_trained(message: Mapping[str, Any]) -> bool:
    return message.get("role") == "assistant" and message.get("weight", 1) != 0


def encode_conversation(
    messages: Sequence[Mapping[str, Any]], fmt: ChatFormat, encoder: Encoder
) -> EncodedConversation:
    """Encode one conversation chunk by chunk and mark trainable ids (for loss masking).

    Trainable: every assistant chunk minus its role header, unless the message has ``weight: 0``, plus the
    format's suffix (eos). ``ids`` equals ``encoder.encode(fmt.render(messages))`` exactly (additivity).
    """
    kept = [m for m in messages if fmt.chunk(str(m["role"]), str(m["content"])) is not None]
    texts = [fmt.prefix] if fmt.prefix else []
    texts += [fmt.chunk(str(m["role"]), str(m["content"])) or "" for m in kept]
    headers = [fmt.header[str(m["role"])] for m in kept]
    header_lens = [
        n if h else 0 for h, n in zip(headers, _header_counts(fmt, encoder, headers), strict=False)
    ]
    if fmt.suffix:
        texts.append(fmt.suffix)
    encoded = encoder.encode_batch(texts)
    ids: list[int] = []
    trainable: list[bool] = []
    pos = 0
    if fmt.prefix:
        ids += encoded[0]
        trainable += [False] * len(encoded[0])
        pos = 1
    for m, hl in zip(kept, header_lens, strict=False):
        chunk_ids = encoded[pos]
        pos += 1
        ids += chunk_ids
        train = _is_trained(m)
        trainable += [False] * hl + [train] * (len(chunk_ids) - hl)
    if fmt.suffix:
        ids += encoded[pos]
        trainable += [True] * len(encoded[pos])
    return EncodedConversation(ids, trainable)


def _header_counts(fmt: ChatFormat, encoder: Encoder, headers: Sequence[str]) -> list[int]:
    uniq = sorted({h for h in headers if h})
    counts = dict(zip(uniq, encoder.count_batch(uniq), strict=False)) if uniq else {}
    return [counts.get(h, 0) for h in headers]


def count_conversation(
    messages: Sequence[Mapping[str, Any]], fmt: ChatFormat, encoder: Encoder
) -> ConversationCount:
    """Token counts for one conversation (total, trainable, per role, where training starts)."""
    enc = encode_conversation(messages, fmt, encoder)
    per_role: dict[str, int] = {}
    kept = [m for m in messages if fmt.chunk(str(m["role"]), str(m["content"])) is not None]
    chunk_counts = encoder.count_batch([fmt.chunk(str(m["role"]), str(m["content"])) or "" for m in kept])
    for m, n in zip(kept, chunk_counts, strict=False):
        per_role[str(m["role"])] = per_role.get(str(m["role"]), 0) + n
    first = next((i for i, t in enumerate(enc.trainable) if t), None)
    return ConversationCount(len(enc.ids), sum(enc.trainable), per_role, first)


def self_test(encoder: Encoder, fmt: ChatFormat) -> list[str]:
    """Each control token of the template must be one added token (retired rule T07). Returns the failures."""
    failures = []
    markers = [
        t for t in fmt.special_texts if t.endswith("|>") and "placeholder" not in t and "tool" not in t
    ]
    if fmt.family.startswith("phi3"):
        markers = ["<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>"]
    for text in markers:
        if encoder.token_id(text) is None:
            failures.append(text)
    return failures
