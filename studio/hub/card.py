"""The model card: YAML metadata the Hub renders, and a body that says what was trained, how, and how well.

:func:`render_card` returns editable markdown (the UI shows it in a text box; what the user leaves there is what is
pushed). Everything comes from the run directory: ``config.yaml`` (hyperparameters), ``events.jsonl`` (losses,
probe answers, eval events), ``environment.json`` (versions, GPU), the adapter files and the evaluation results.
The token never reaches this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.config import DEMO_MODEL, RunConfig
from studio.formatting import format_bytes, format_value, plural
from studio.hub.card_data import METRIC_NAMES, card_metadata
from studio.hub.facts import RunFacts, default_repo_name, is_hub_id, is_number, load_facts, summarise_eval

LOSS_CURVE = "loss_curve.png"
CARD_TEMPLATE = "---\n{{ card_data }}\n---\n\n{{ body }}"
"""``ModelCard.from_template``'s layout: the metadata ``ModelCardData`` writes, then the body built below."""


# ------------------------------------------------------------------------------------------------- loss curve
def loss_curve_png(facts: RunFacts) -> bytes | None:
    """The training (and eval) loss curve as PNG bytes, or None when no loss was logged."""
    from studio.hub.chart import line_chart_png

    series = {"train loss": facts.losses()}
    if facts.eval_losses():
        series["eval loss"] = facts.eval_losses()
    if not series["train loss"] and "eval loss" not in series:
        return None
    return line_chart_png(series)


# ------------------------------------------------------------------------------------------------- the card
def hyperparameters(cfg: RunConfig) -> list[tuple[str, Any]]:
    m, lo, t = cfg.model, cfg.lora, cfg.train
    method = getattr(t, "method", "sft") or "sft"
    rows: list[tuple[str, Any]] = [("Training method", method.upper())]
    if method != "sft":
        from studio.evaluate_pairs import beta_of

        rows += [("Beta", beta_of(cfg))]
        if getattr(t, "start_from", None):
            rows += [("Continued from run", Path(str(t.start_from)).name)]
    rows += [
        ("Method", "QLoRA (4-bit base)" if m.quantization == "4bit" else
         "LoRA (8-bit base)" if m.quantization == "8bit" else "LoRA"),
        ("LoRA rank r", lo.r), ("LoRA alpha", lo.alpha), ("LoRA dropout", lo.dropout),
        ("Target modules", lo.target_modules), ("rsLoRA", lo.use_rslora), ("DoRA", lo.use_dora),
    ]
    if m.quantization == "4bit":
        rows += [("4-bit type", m.bnb_4bit_quant_type), ("Double quantization", m.double_quant)]
    rows += [
        ("Compute dtype", m.compute_dtype), ("Learning rate", t.learning_rate), ("LR schedule", t.lr_scheduler),
        ("Warmup ratio", t.warmup_ratio),
        ("Max steps" if t.max_steps > 0 else "Epochs", t.max_steps if t.max_steps > 0 else t.epochs),
        ("Batch size per device", t.batch_size), ("Gradient accumulation", t.grad_accum),
        ("Effective batch size", t.batch_size * t.grad_accum), ("Max sequence length", t.max_length),
        ("Packing", t.packing), ("Loss on", t.loss_on), ("Optimizer", t.optim), ("Weight decay", t.weight_decay),
        ("Max grad norm", t.max_grad_norm), ("Gradient checkpointing", t.gradient_checkpointing), ("Seed", t.seed),
    ]
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    def cell(v: Any) -> str:
        return format_value(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _quote(text: str, limit: int = 600) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[:limit].rstrip() + " …"
    return "\n".join("> " + line if line else ">" for line in text.splitlines() or [""])


def _inline(text: str) -> str:
    """Text for an inline code span: newlines shown as \\n, backticks dropped."""
    return text.replace("\n", "\\n").replace("`", "'")


def _data_lines(facts: RunFacts) -> list[str]:
    cfg = facts.config
    started = facts.last("started") or {}
    lines = []
    for s in cfg.data.sources:
        name = (f"[{s.path}](https://huggingface.co/datasets/{s.path})" if is_hub_id(s.path)
                else f"`{Path(s.path).name}` (a local file)")
        extra = f", config `{s.name}`" if s.name else ""
        lines.append(f"- {name}, split `{s.split}`{extra}" + (f", weight {s.weight}" if s.weight != 1.0 else ""))
    if started.get("train_rows"):
        lines.append(f"- {started['train_rows']} training rows, {started.get('eval_rows', 0)} held out for evaluation")
    if facts.preference:
        from studio.prompt_format import load

        saved = load(facts.run_dir)
        shape = saved.format if saved is not None else cfg.data.format
        what = "answers labelled desirable or not" if shape == "kto" else "a chosen and a rejected answer per prompt"
        return lines + [f"- Row format `{shape}` ({what}); chat template: {cfg.model.chat_template}"]
    fmt = f"- Row format `{cfg.data.format}`"
    if cfg.data.template:
        fmt += f", template `{_inline(cfg.data.template)}`"
    if cfg.data.response_template:
        fmt += f", answer starts after `{_inline(cfg.data.response_template.strip())}`"
    lines.append(fmt + f"; chat template: {cfg.model.chat_template}")
    return lines


def prompt_code(facts: RunFacts) -> str:
    """Python lines that build ``inputs`` in the format the run trained on (its saved prompt format; older runs:
    the chat template whenever the run had one)."""
    from studio.prompt_format import load

    fmt = load(facts.run_dir)
    chat = fmt.uses_chat if fmt is not None else facts.config.model.chat_template != "none"
    if chat:
        system = fmt.default_system_prompt if fmt is not None else None
        first = f'{{"role": "system", "content": {_py(system)}}},\n            ' if system else ""
        return (f'messages = [{first}{{"role": "user", "content": "Your question here"}}]\n'
                'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,\n'
                '                                       return_tensors="pt", return_dict=True).to(model.device)')
    if fmt is None:
        return 'inputs = tokenizer("Your prompt here", return_tensors="pt").to(model.device)'
    from studio.hub.gguf_template import SYSTEM_MARK, text_pieces

    pieces = text_pieces(fmt)
    system = fmt.default_system_prompt or ""
    before = pieces.user_pre.replace(SYSTEM_MARK, system)
    after = (pieces.user_post + pieces.generation).replace(SYSTEM_MARK, system)
    expr = " + ".join([*([_py(before)] if before else []), "question", *([_py(after)] if after else [])])
    return ('question = "Your question here"\n'
            f"prompt = {expr}  # the format this model was trained on\n"
            'inputs = tokenizer(prompt, return_tensors="pt").to(model.device)')


def _py(text: str | None) -> str:
    import json

    return json.dumps(text or "", ensure_ascii=False)


def _usage(facts: RunFacts, repo: str, merged: bool, gguf: dict[str, Any] | None = None) -> str:
    quant = facts.config.model.quantization == "4bit"
    prompt = prompt_code(facts)
    if gguf:
        file = gguf["file"]
        load = (f'tokenizer = AutoTokenizer.from_pretrained("{repo}", gguf_file="{file}")\n'
                f'model = AutoModelForCausalLM.from_pretrained("{repo}", gguf_file="{file}")')
        imports = "from transformers import AutoModelForCausalLM, AutoTokenizer"
    elif merged:
        load = (f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
                f'model = AutoModelForCausalLM.from_pretrained("{repo}", dtype="auto", device_map="auto")')
        imports = "from transformers import AutoModelForCausalLM, AutoTokenizer"
    else:
        load = (f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
                f'model = AutoPeftModelForCausalLM.from_pretrained("{repo}", dtype="auto", device_map="auto"'
                + (",\n    quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="
                   f'"{facts.config.model.bnb_4bit_quant_type}"))' if quant else ")"))
        imports = ("from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer"
                   + (", BitsAndBytesConfig" if quant else ""))
    code = (f"{imports}\n\n{load}\n{prompt}\n"
            "output = model.generate(**inputs, max_new_tokens=256, do_sample=False)\n"
            'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))')
    note = ""
    if not merged and not facts.base_on_hub:
        note = ("\nThe base model is not on the Hub, so `AutoPeftModelForCausalLM` can't fetch it: load the base "
                f"yourself and attach the adapter with `PeftModel.from_pretrained(base, \"{repo}\")`.\n")
    if not merged and quant:
        note += "\nDrop `quantization_config` to load the base in 16-bit instead of 4-bit (as trained).\n"
    if gguf:
        note = ""
    return f"```python\n{code}\n```\n{note}"


def _gguf_section(gguf: dict[str, Any], repo: str, has_repo: bool) -> list[str]:
    from studio.hub.modelfile import commands

    name = repo.split("/")[-1].lower()
    cmd = commands(gguf["file"], repo if has_repo else None, name)
    mark = "⏳" if gguf.get("pending") else "✅" if gguf.get("passed") else "⚠️"
    size = f", {format_bytes(int(gguf['size']))}" if gguf.get("size") else ""
    lines = ["## GGUF (llama.cpp, Ollama)", "",
             f"`{gguf['file']}` ({gguf['outtype']}{size}), converted with llama.cpp's "
             "converter; the chat template and end-of-sequence token the model was trained with are embedded in it.",
             "", f"**Parity check:** {mark} {gguf['summary']}.", ""]
    lines += [f"- {line}" for line in gguf.get("lines") or []]
    if gguf.get("passed") is False:
        lines += ["", "**This export failed its check: do not rely on it.**"]
    lines += ["", "The check reloads the GGUF with transformers' GGUF loader, renders each probe prompt in the trained "
              "format, answers greedily and compares the tokens with the merged model; the GGUF's embedded template "
              "must give the trained prompt byte for byte.", ""]
    if "ollama_hub" in cmd:
        lines += ["Run it from the Hub:", "", "```sh", cmd["ollama_hub"], cmd["llama_cli_hub"], "```", ""]
    lines += ["Or from this folder (the `Modelfile` carries the trained prompt format and stop tokens):", "", "```sh",
              cmd["ollama_create"], cmd["ollama_run"], cmd["llama_cli"], "```", ""]
    if gguf.get("stages"):
        lines += ["Export stages: " + "; ".join(gguf["stages"]) + "."]
    return lines


def _environment_lines(env: dict[str, Any]) -> list[str]:
    lines = []
    packages = env.get("packages") or {}
    if isinstance(packages, dict):
        found = [f"{k} {v}" for k, v in packages.items() if v]
        if found:
            lines.append("- " + ", ".join(found))
    if env.get("python"):
        lines.append(f"- Python {env['python']}" + (f" on {env['platform']}" if env.get("platform") else ""))
    gpu = env.get("gpu")
    if isinstance(gpu, dict) and gpu.get("name"):
        count = f"{gpu.get('count')} × " if gpu.get("count", 1) not in (None, 1) else ""
        mem = f", {gpu['memory_gb']} GB" if gpu.get("memory_gb") else ""
        cuda = f", CUDA {gpu['cuda']}" if gpu.get("cuda") else ""
        lines.append(f"- GPU: {count}{gpu['name']}{mem}{cuda}")
    elif env.get("device"):
        lines.append(f"- Device: {env['device']}" + (f", {env['cpu_count']} CPU cores" if env.get("cpu_count") else ""))
    if env.get("world_size", 1) not in (None, 1):
        lines.append(f"- Processes: {env['world_size']}")
    return lines


def render_card(run_dir: str | Path, *, repo_id: str | None = None, merged: bool = False,
                license: str | None = None, eval_results: Any = None, facts: RunFacts | None = None,
                gguf: dict[str, Any] | None = None) -> str:
    """The model card (README.md) for a run, as editable markdown with a YAML header.

    Args:
        run_dir: the run directory (config.yaml, events.jsonl, adapter/ ...).
        repo_id: where it will be pushed (used in the usage snippet and the title); the run name otherwise.
        merged: describe a merged model (library transformers) instead of an adapter (library peft).
        license: overrides the licence read from the base model's card.
        eval_results: an ``EvalReport`` (or its dict) from ``studio.evaluate``; default: the run's
            ``eval_results.json``, else the last eval event.

    Raises:
        HubError: ``run_dir`` is not a run directory.
    """
    facts = facts or load_facts(run_dir, eval_results)
    cfg = facts.config
    meta = card_metadata(facts, merged=merged, repo_id=repo_id, license=license)
    if gguf:
        meta.library_name = "gguf"
        meta.tags = [t for t in meta.tags if t != "merged-lora"] + ["gguf", "llama.cpp", "ollama"]
    repo = repo_id or f"your-name/{default_repo_name(facts, 'gguf' if gguf else 'merged' if merged else None)}"
    title = repo.split("/")[-1]
    base = facts.base_id
    base_link = (f"[{base}](https://huggingface.co/{base})" if facts.base_on_hub else
                 f"`{base}` (the offline demo model, not on the Hub)" if base == DEMO_MODEL else f"`{Path(base).name}`")
    what = ("a GGUF of the merged model (the LoRA adapter folded into the base weights)" if gguf else
            "a merged model: the LoRA adapter folded into the base weights" if merged else "a LoRA adapter")
    parts = [f"# {title}", "",
             f"This is {what} for {base_link}, fine-tuned with {facts.method_words()} ("
             f"{'QLoRA on a 4-bit base' if facts.method == 'qlora' else 'LoRA'}) in Fine-Tune Studio."]
    if merged and cfg.model.quantization != "none":
        parts += ["", f"Training used a {cfg.model.quantization} base; the merge reloaded the base in 16-bit and "
                  "merged there (merging into quantized weights would round the LoRA update away)."]
    parts += ["", "## Training data", "", *_data_lines(facts)]
    finished = facts.last("finished") or facts.last("stopped") or {}
    summary = []
    if finished.get("step"):
        summary.append(f"{finished['step']} optimizer steps")
    if is_number(finished.get("runtime_s")):
        summary.append(f"{finished['runtime_s'] / 60:.1f} minutes")
    losses = facts.losses()
    if losses:
        summary.append(f"training loss {losses[0][1]:.4g} → {losses[-1][1]:.4g}")
    parts += ["", "## Training", ""]
    if summary:
        parts += ["Ran " + ", ".join(summary) + ".", ""]
    parts += [_table(("Setting", "Value"), hyperparameters(cfg))]
    if losses or facts.eval_losses():
        parts += ["", "### Loss curve", "", f"![Training loss]({LOSS_CURVE})"]
    evals = summarise_eval(facts)
    if evals.metrics:
        rows = [(METRIC_NAMES.get(k, k.replace("_", " ")), b, t) for k, (b, t) in evals.metrics.items()]
        pairs = evals.kind == "preference"
        where = f" ({plural(evals.rows, 'pair' if pairs else 'row')})" if evals.rows else ""
        parts += ["", "## Evaluation", "", f"On the held-out split{where}:", ""]
        if pairs:
            parts += ["Preference accuracy is the share of held-out pairs where the model gives the chosen answer a "
                      "higher log-probability (summed over its tokens) than the rejected one; the reward accuracy "
                      "compares the fine-tuned model's margin with the base model's (DPO's implicit reward), "
                      f"beta {facts.beta:g}." if facts.beta else "", ""]
        parts += [_table(("Metric", "Base model", "Fine-tuned"), rows)]
    if evals.samples:
        parts += ["", "## Sample answers", ""]
        for i, s in enumerate(evals.samples, 1):
            parts += [f"**Prompt {i}**", "", _quote(s["prompt"]), ""]
            if "base" in s:
                parts += ["*Base model:*", "", _quote(s["base"]), ""]
            if "tuned" in s:
                parts += ["*Fine-tuned:*", "", _quote(s["tuned"]), ""]
            if "reference" in s:
                parts += ["*Reference:*", "", _quote(s["reference"]), ""]
        parts.pop()
    if gguf:
        parts += ["", *_gguf_section(gguf, repo, repo_id is not None)]
    parts += ["", "## Usage", "", _usage(facts, repo, merged, gguf)]
    env = _environment_lines(facts.environment)
    if env:
        parts += ["## Environment", "", *env]
    from huggingface_hub import ModelCard

    body = "\n".join(parts).rstrip() + "\n"
    return str(ModelCard.from_template(meta, template_str=CARD_TEMPLATE, body=body))
