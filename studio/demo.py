"""The offline demo base model ``studio/demo-tiny``: a tiny Llama model and BPE tokenizer built from ``assets/``.

The Hub is out of reach offline, so :func:`studio.modeling.sources.resolve_model_path` maps :data:`~studio.config.DEMO_MODEL` to a
local folder that :func:`ensure_demo_model` builds once (about a second) and reuses afterwards. The folder
loads with ``AutoTokenizer``/``AutoModelForCausalLM`` like any other. The build is deterministic (same
tokenizer, same weights) and safe when several processes ask at once (``torchrun``): one builds under a file
lock into a temporary folder that is renamed into place with a completion marker written last.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from studio.config import DEMO_MODEL
from studio.errors import ModelError
from studio.paths import ASSETS, cache_root, file_lock

BUILD_NAME = "demo-tiny-v3"  # v3: every Linear dimension a multiple of 64 (bitsandbytes' CPU 4-bit packing)
MARKER = "studio-demo-complete.json"
BOS, EOS, PAD, IM_START = "<|endoftext|>", "<|im_end|>", "<pad>", "<|im_start|>"
SPECIAL_TOKENS = (BOS, EOS, PAD, IM_START)  # ids 0, 1, 2, 3
VOCAB_SIZE = 2048
MAX_LENGTH = 2048
CORPUS_DATASETS = ("linear_equations.csv", "word_problems.jsonl", "python_assistant.jsonl", "chat.jsonl")
# Qwen2's pre-tokenizer split: single digits, words with one leading non-letter, punctuation runs, spaces.
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT_TEMPLATE = (
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
MODEL_SHAPE = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4,
               "num_key_value_heads": 2}


def assets_dir() -> Path:
    """The bundled ``assets/`` folder of the repository."""
    return ASSETS


def demo_model_dir() -> Path:
    """The folder the demo model is (or will be) built in."""
    return cache_root() / BUILD_NAME


def ensure_demo_model() -> Path:
    """Build the demo model folder once and return it; later calls (from any process) reuse it.

    Raises:
        ModelError: the folder can't be written or the bundled assets are missing.
    """
    folder = demo_model_dir()
    if (folder / MARKER).is_file():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(folder.parent / f".{folder.name}.lock"):
            if not (folder / MARKER).is_file():  # another process may have finished while we waited
                _build_atomically(folder)
    except OSError as err:
        raise ModelError(f"Could not build the demo model in {folder}: {err}. "
                         "Set STUDIO_CACHE_DIR to a writable folder.") from err
    return folder


def _build_atomically(folder: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        info = _build(tmp)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")  # written last
        os.chmod(tmp, 0o755)
        if folder.exists():  # a half-built folder from a crashed older build, without a marker
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(out: Path) -> dict:
    """Train the tokenizer, initialise the model and save both into ``out``; returns build info."""
    import torch

    from studio.imports import ml_libs

    ml_libs()
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in
           (("bos_token_id", BOS), ("eos_token_id", EOS), ("pad_token_id", PAD))}
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=MAX_LENGTH, tie_word_embeddings=False,
                         **MODEL_SHAPE, **ids)
    with torch.random.fork_rng(devices=[]):  # seed without disturbing the caller's RNG
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    # a random model picks stray bytes of multi-byte characters, which decode to "\ufffd": never generate them
    broken = [i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i])]
    model.generation_config = GenerationConfig(**ids, suppress_tokens=broken or None)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    return {"name": DEMO_MODEL, "build": BUILD_NAME, "parameters": params, "vocab_size": len(tokenizer), **ids}


def build_tokenizer():
    """Train the byte-level BPE tokenizer on the bundled text and wrap it for ``transformers``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)  # no BOS/EOS added on encode
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(SPECIAL_TOKENS), min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, extra_special_tokens=[IM_START],
        model_max_length=MAX_LENGTH,
        chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False,
    )


def _corpus() -> Iterator[str]:
    """The tokenizer's training text: ``assets/corpus/*.txt`` then the bundled datasets, in a fixed order."""
    root = assets_dir()
    corpus = sorted((root / "corpus").glob("*.txt"))
    datasets = [root / "datasets" / name for name in CORPUS_DATASETS]
    missing = [str(p) for p in datasets if not p.is_file()] + ([] if corpus else [str(root / "corpus")])
    if missing:
        raise ModelError(f"Demo model assets are missing: {', '.join(missing)}. "
                         "Run `python scripts/make_datasets.py` or reinstall from the repository.")
    for path in corpus:
        yield path.read_text(encoding="utf-8")
    for path in datasets:
        with path.open(encoding="utf-8", newline="") as f:
            if path.suffix == ".csv":
                for row in csv.DictReader(f):
                    yield "\n".join(row.values())
            else:
                for line in f:
                    yield "\n".join(_strings(json.loads(line)))


def _strings(value) -> Iterator[str]:
    """Every string inside a JSON value (chat messages become ``role`` and ``content`` lines)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
