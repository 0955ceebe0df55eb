"""One config for the UI, the CLI and the run directory.

``RunConfig`` composes the section dataclasses below. Each field's ``metadata["help"]`` is its one help
text (shown in the UI and the CLI). Validation happens in ``__post_init__`` with messages a person can act
on; :func:`load_config` / :meth:`RunConfig.to_yaml` round-trip through YAML.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from studio.config_fields import Distributed  # noqa: F401
from studio.config_fields import (Attention, BestMetric, Bias, Booster, ChatTemplate, Device, Dtype,  # noqa: F401
                                  Format, LossOn, Method, Optimizer, Precision, PrefLoss, PushKind, Quantization,
                                  QuantType, Scheduler, Tracker, build, check_choices, check_positive, choices_of,
                                  field_help)
from studio.config_fields import setting as _help
from studio.config_methods import (DEFAULT_BETA, LOSS_TYPES, METHOD_SHAPES, check_evaluation,  # noqa: F401
                                   check_method)
from studio.errors import ConfigError
from studio.config_grpo import REWARD_LINES_HELP, rewards_from_lines, rewards_to_lines
from studio.config_values import CHECKPOINTING_SHOWN, checkpointing_word, parse_checkpointing, repo_id_problem

DEMO_MODEL = "studio/demo-tiny"
ASSETS_CONFIGS = Path(__file__).resolve().parent.parent / "assets" / "configs"
"""Ready configs, one per bundled dataset, on the demo model."""

FORMATS, QUANTIZATIONS, QUANT_TYPES, DTYPES, ATTENTIONS, CHAT_TEMPLATES, LOSS_ON, SCHEDULERS, OPTIMIZERS, BOOSTERS, \
    PUSH_KINDS, BIAS = (typing.get_args(t) for t in (Format, Quantization, QuantType, Dtype, Attention, ChatTemplate,
                                                     LossOn, Scheduler, Optimizer, Booster, PushKind, Bias))
METHODS, PREF_LOSSES = typing.get_args(Method), typing.get_args(PrefLoss)
TARGET_MODULES = ("all-linear", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                  "query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
"""Module names offered for LoRA (any other may be typed)."""


def _modules_read(value: Any) -> str | list[str]:
    """A multi-select of module names -> ``all-linear`` (nothing picked, or it among them) or the names."""
    items = [value] if isinstance(value, str) else list(value or [])
    items = [s.strip() for s in items if s and s.strip()]
    return "all-linear" if not items or "all-linear" in items else items


def _modules_show(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@dataclass
class SourceConfig:
    """One dataset source; several are concatenated (weighted) and shuffled."""

    path: str = _help("Hub dataset id, local file (csv/json/jsonl/parquet/txt) or a save_to_disk folder.",
                      label="Hub dataset id or local path")
    split: str = _help("Split to read (Hub ids and save_to_disk folders).", default="train", label="Split")
    name: str | None = _help("Dataset configuration name on the Hub (e.g. 'main' for gsm8k).", default=None,
                             label="Config name (optional)")
    columns: dict[str, str] = _help(
        "Column mapping: role -> column in this source (e.g. {prompt: question, completion: answer}).",
        default_factory=dict,
    )
    weight: float = _help("Sampling weight when mixing sources; 1.0 keeps every row once.", default=1.0,
                          label="Weight", minimum=0.0001)
    revision: str | None = _help("Hub dataset revision (branch, tag or commit); empty: the default branch.",
                                 default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise ConfigError("data.sources[].path must be a non-empty string (a Hub id or a local file)")
        check_positive("data.sources[]", "weight", self.weight)


@dataclass
class DataConfig:
    """What to train on and how each row becomes text."""

    sources: list[SourceConfig] = _help("Datasets to load (list of {path, split, name, columns, weight}).",
                                        default_factory=list)
    format: Format = _help("Row format: auto, text, prompt_completion, instruction, messages, preference "
                           "(prompt/chosen/rejected pairs) or kto (prompt/completion/label).", default="auto",
                           label="Format")
    template: str | None = _help(
        "Named template (see templates.py) or a string with {column} placeholders; empty uses the chat template.",
        default=None, label="Template",
    )
    response_template: str | None = _help(
        "Marker that starts the answer in a text template (e.g. '### Solution:'); loss starts after it.",
        default=None, kind="raw", label="Response template",
    )
    system_prompt: str | None = _help("System message added to chat-formatted rows.", default=None,
                                      label="System prompt")
    eval_fraction: float = _help("Share of rows held out for evaluation (0 to 0.5).", default=0.1, minimum=0,
                                 maximum=0.5, step=0.01, label="Eval fraction")
    max_rows: int | None = _help("Use at most this many rows after mixing (None: all).", default=None,
                                 label="Max rows", minimum=1)
    seed: int = _help("Shuffle and split seed.", default=42, label="Seed")

    def __post_init__(self) -> None:
        self.sources = [s if isinstance(s, SourceConfig) else build(SourceConfig, s, "data.sources[]")
                        for s in self.sources]
        check_choices(self, "data")
        if not 0 <= self.eval_fraction <= 0.5:
            raise ConfigError(f"data.eval_fraction must be between 0 and 0.5, got {self.eval_fraction}")
        if self.max_rows is not None and self.max_rows < 1:
            raise ConfigError(f"data.max_rows must be >= 1 or empty, got {self.max_rows}")


@dataclass
class ModelConfig:
    """The base model and how it is loaded."""

    name_or_path: str = _help("Preset name, Hub model id or local folder.", default=DEMO_MODEL, label="Model",
                              kind="dropdown")
    """A dropdown of the presets (``studio.modeling`` knows them; the Model tab passes them) or any typed id."""
    revision: str | None = _help("Hub revision (branch, tag or commit).", default=None, label="Revision")
    quantization: Quantization = _help(
        "Weight quantization: none, 8bit or 4bit (bitsandbytes). On a CPU, 4-bit saves memory but runs slower than "
        "fp32 (it dequantizes each layer as it computes).", default="none", kind="radio", label="Quantization")
    bnb_4bit_quant_type: QuantType = _help("4-bit data type: nf4 or fp4.", default="nf4", kind="radio",
                                           label="4-bit type")
    double_quant: bool = _help("Quantize the 4-bit quantization constants too (saves ~0.4 bit/param).",
                               default=True, label="Double quantization")
    compute_dtype: Dtype = _help("Compute dtype: auto (bf16 where supported), bf16, fp16 or fp32.", default="auto",
                                 label="Compute dtype")
    attn_implementation: Attention = _help(
        "Attention kernel: auto, flash_attention_2, flex_attention, sdpa or eager.", default="auto",
        label="Attention")
    chat_template: ChatTemplate = _help("Chat template: the model's own, chatml, or none.", default="model",
                                        kind="radio", label="Chat template")
    trust_remote_code: bool = _help("Run code shipped with the model repo (only for repos you trust).",
                                    default=False, label="Trust remote code")

    def __post_init__(self) -> None:
        if not isinstance(self.name_or_path, str) or not self.name_or_path.strip():
            raise ConfigError("model.name_or_path must name a preset, a Hub model id or a local folder")
        check_choices(self, "model")


@dataclass
class LoraConfig:
    """LoRA adapter settings."""

    r: int = _help("LoRA rank.", default=16, kind="number", minimum=1, maximum=1024, label="Rank r")
    alpha: int = _help("LoRA scaling alpha (effective scale alpha/r, or alpha/sqrt(r) with rsLoRA).", default=32,
                       minimum=1, label="Alpha")
    dropout: float = _help("Dropout on the LoRA input (0 to <1).", default=0.05, minimum=0, maximum=0.5, step=0.01,
                          label="Dropout")
    target_modules: Union[str, list[str]] = _help(
        "Modules to adapt: 'all-linear' or a list of module names (q_proj, v_proj, ...).", default="all-linear",
        kind="multi", choices=TARGET_MODULES, read=_modules_read, show=_modules_show, label="Target modules")
    bias: Bias = _help("Train biases: none, all or lora_only.", default="none", kind="radio", label="Bias")
    use_rslora: bool = _help("Rank-stabilised LoRA scaling.", default=False, label="rsLoRA")
    use_dora: bool = _help("Weight-decomposed LoRA (DoRA).", default=False, label="DoRA")

    def __post_init__(self) -> None:
        check_positive("lora", "r", self.r)
        check_positive("lora", "alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        check_choices(self, "lora")
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise ConfigError("lora.target_modules must be 'all-linear' or a non-empty list of module names")


@dataclass
class TrainConfig:
    """Optimisation and run bookkeeping."""

    output_dir: str = _help("Folder where run directories are created.", default="runs")
    method: Method = _help("Training method: sft (supervised), a preference method on paired/labelled answers: "
                           "dpo, orpo, kto or simpo, or grpo (reward tuning on prompts with train.rewards).", default="sft", kind="radio", label="Method")
    beta: float | None = _help("Preference strength (empty: the method's default: dpo/orpo/kto 0.1, simpo 2.0). "
                               "Higher keeps DPO/KTO closer to the reference; ORPO's weight of its odds-ratio term.",
                               default=None, label="Beta", minimum=0.0001)
    loss_type: PrefLoss | None = _help("Loss variant (empty: the method's default): dpo sigmoid, hinge, ipo, robust, "
                                       "...; kto kto or apo_zero_unpaired.", default=None, label="Loss variant")
    simpo_gamma: float = _help("SimPO's target reward margin (gamma).", default=0.5, label="SimPO gamma", minimum=0)
    start_from: str | None = _help("An earlier run folder whose adapter this run continues (e.g. SFT, then DPO); "
                                   "its base model must be this run's.", default=None, label="Continue from run")
    run_name: str | None = _help("Name of the run directory (default: time stamp and model).", default=None,
                                 label="Run name")
    max_steps: int = _help("Stop after this many optimizer steps (-1: run `epochs`).", default=-1,
                           label="Max steps", minimum=-1)
    epochs: float = _help("Passes over the training split (used when max_steps is -1).", default=1.0,
                          label="Epochs", minimum=0)
    learning_rate: float = _help("Peak learning rate.", default=2e-4, label="Learning rate", minimum=0)
    lr_scheduler: Scheduler = _help("Learning-rate schedule.", default="constant", label="LR schedule")
    warmup_ratio: float = _help("Share of steps spent warming up (0 to 1).", default=0.03, label="Warmup ratio",
                                minimum=0, maximum=0.5, step=0.01)
    batch_size: int = _help("Rows per device per step.", default=4, label="Batch size", minimum=1)
    grad_accum: int = _help("Gradient accumulation steps.", default=1, label="Gradient accumulation", minimum=1)
    max_length: int = _help("Truncate rows to this many tokens.", default=1024, label="max_length (tokens)",
                            minimum=16, maximum=8192, step=8)
    packing: bool = _help("Pack several rows into each sequence (bfd), without cross-attention.", default=False,
                          label="Packing")
    loss_on: LossOn = _help("Which tokens carry loss: completion (answers only) or all.", default="completion",
                            kind="radio", label="Loss on")
    gradient_checkpointing: Union[bool, str] = _help(
        "Recompute activations to save memory: auto, true or false.", default="auto", kind="radio",
        label="Gradient checkpointing",
        choices=CHECKPOINTING_SHOWN, read=parse_checkpointing, show=checkpointing_word)
    optim: Optimizer = _help("Optimizer.", default="adamw_torch", label="Optimizer")
    weight_decay: float = _help("AdamW weight decay.", default=0.0, label="Weight decay", minimum=0)
    max_grad_norm: float = _help("Gradient clipping norm (0 turns clipping off).", default=0.3,
                                 label="Max grad norm", minimum=0)
    seed: int = _help("Training seed.", default=42, label="Seed")
    logging_steps: int = _help("Log every N steps.", default=1, label="Logging steps", minimum=1)
    save_steps: int = _help("Save a checkpoint every N steps.", default=50, label="Save steps", minimum=1)
    save_total_limit: int | None = _help("Keep at most this many checkpoints (None: all).", default=3,
                                         label="Keep checkpoints", minimum=1)
    eval_steps: int | None = _help(
        "Evaluate on the held-out rows every N steps (empty: automatic, about a tenth of the training time; at the "
        "end only when that interval is longer than the run).", default=None, label="Eval steps", minimum=1)
    early_stopping_patience: int | None = _help(
        "Stop when the eval metric has not improved for N evaluations; adapter/ is then the best checkpoint (needs "
        "held-out rows).", default=None, label="Early stopping patience", minimum=1)
    keep_best: bool = _help("adapter/ is the best evaluated checkpoint, not the last (always on with early "
                            "stopping).", default=False, label="Keep the best checkpoint")
    best_metric: BestMetric = _help("What 'best' means: eval_loss (lower is better) or accuracy (the task metric at "
                                    "each evaluation; needs eval_accuracy_rows).", default="eval_loss",
                                    label="Best checkpoint by")
    eval_accuracy_rows: int = _help("Held-out rows answered at each evaluation for the task accuracy (the final "
                                    "answer after ####); 0 = off.", default=0, label="Accuracy rows at each eval",
                                    minimum=0)
    booster: Booster = _help("Kernel booster: auto, none or liger.", default="auto", label="Booster")
    tensorboard: bool = _help("Write TensorBoard logs into the run directory.", default=True,
                              label="TensorBoard logs")
    report_to: Tracker = _help("Also log the run to trackio (local, SQLite), Weights & Biases or MLflow; each needs "
                               "its package installed (pip install trackio / wandb / mlflow).", default="none",
                               label="Tracker")
    probe_prompts: list[str] = _help("Prompts answered at every checkpoint (shown in the Chat tab).",
                                     default_factory=list, label="Probe prompts (one per line)")
    device: Device = _help("auto, cuda or cpu.", default="auto", label="Device")
    processes: int = _help("Training processes (one per GPU): 1 trains in one process; more start torchrun with "
                           "this many processes (gloo on a CPU).", default=1, label="Processes / GPUs", minimum=1)
    distributed: Distributed = _help("With several processes: ddp (a copy per process), fsdp (shards wrapped "
                                     "at the model's decoder layer) or DeepSpeed ZeRO-2/3.", default="ddp",
                                     label="Multi-process strategy")
    rewards: list[dict] = _help("GRPO: rewards with weights, each {name, weight, ...options}: answer, format, "
                                "length (target, unit), regex (pattern) or path/to/file.py:function. In the app: "
                                + REWARD_LINES_HELP, default_factory=lambda: [{"name": "answer", "weight": 1.0},
                                                                             {"name": "format", "weight": 0.5}],
                                label="Rewards", kind="lines", read=rewards_from_lines, show=rewards_to_lines)
    num_generations: int | None = _help("GRPO: completions sampled per prompt; must divide batch_size x "
                                        "grad_accum (empty: 4 on a CPU, 8 on a GPU).", default=None, minimum=2,
                                        label="Generations per prompt")
    max_completion_length: int | None = _help("GRPO: tokens per sampled completion (empty: 64 on a CPU, 256 on "
                                              "a GPU).", default=None, minimum=1, label="Completion length")
    temperature: float = _help("GRPO: sampling temperature of the completions.", default=1.0, minimum=0.05,
                               maximum=2.0, step=0.05, label="Temperature")
    kl_beta: float = _help("GRPO: KL penalty towards the starting model (0: none, and no reference pass).",
                           default=0.0, minimum=0, label="KL beta")
    stop_at_answer: bool = _help("GRPO: end each sampled completion after its #### <number> line when the answer "
                                 "or format reward is on (nothing after it can earn a reward; fewer wasted tokens).",
                                 default=True, label="Stop at the #### line")
    precision: Precision = _help(
        "Training precision: auto (bf16 base with fp32 LoRA on CPUs with AVX512-BF16/AMX for SFT, else fp32; "
        "GPU: model.compute_dtype), fp32 or bf16.", default="auto", kind="radio", label="Precision")

    def __post_init__(self) -> None:
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"train.max_steps must be -1 (use epochs) or >= 1, got {self.max_steps}")
        check_positive("train", "epochs", self.epochs)
        check_positive("train", "learning_rate", self.learning_rate)
        if self.learning_rate >= 1:
            raise ConfigError(f"train.learning_rate must be < 1 (a typical LoRA value is 2e-4), got "
                              f"{self.learning_rate}")
        check_choices(self, "train")
        check_method(self)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("batch_size", "grad_accum", "logging_steps", "save_steps", "processes"):
            check_positive("train", name, getattr(self, name))
        if self.max_length < 16:
            raise ConfigError(f"train.max_length must be >= 16 tokens, got {self.max_length}")
        self.gradient_checkpointing = parse_checkpointing(self.gradient_checkpointing)
        check_positive("train", "weight_decay", self.weight_decay, allow_zero=True)
        check_positive("train", "max_grad_norm", self.max_grad_norm, allow_zero=True)
        if self.eval_steps is not None:
            check_positive("train", "eval_steps", self.eval_steps)
        check_evaluation(self)
        if self.save_total_limit is not None:
            check_positive("train", "save_total_limit", self.save_total_limit)
        if getattr(self, "method", "sft") == "grpo":
            from studio.config_grpo import check_grpo

            check_grpo(self)



@dataclass
class HubConfig:
    """Where to publish. The token is never part of the config."""

    repo_id: str | None = _help("Hub repo to push to, e.g. 'you/my-adapter'.", default=None)
    private: bool = _help("Create the repo as private.", default=True)
    push: PushKind = _help("What to publish: adapter (small, loads on top of the base), merged (a standalone 16-bit model) or gguf (one file for llama.cpp and Ollama, checked against the merged model).", default="adapter",
                           kind="radio")

    def __post_init__(self) -> None:
        check_choices(self, "hub")
        if self.repo_id is not None:
            if repo_id_problem(self.repo_id):
                raise ConfigError(f"hub.repo_id must look like 'name' or 'owner/name', got {self.repo_id!r}")


@dataclass
class RunConfig:
    """Everything one fine-tuning run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hub: HubConfig = field(default_factory=HubConfig)

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if not isinstance(value, cls):
                setattr(self, name, build(cls, value or {}, name))
        tc = self.train
        if (tc.early_stopping_patience or tc.keep_best) and not self.data.eval_fraction:
            what = "train.early_stopping_patience" if tc.early_stopping_patience else "train.keep_best"
            raise ConfigError(f"{what} needs held-out rows to evaluate: set data.eval_fraction above 0 (e.g. 0.1)")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        """Build from a plain mapping, naming any unknown key or wrong type."""
        if not isinstance(raw, dict):
            raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
        unknown = set(raw) - set(_SECTIONS)
        if unknown:
            raise ConfigError(f"unknown config section {sorted(unknown)[0]!r}; sections are "
                              f"{', '.join(_SECTIONS)}")
        return cls(**{k: build(_SECTIONS[k], raw.get(k) or {}, k) for k in _SECTIONS})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    def with_overrides(self, overrides: list[str]) -> "RunConfig":
        """Apply ``section.key=value`` strings (values parsed as YAML scalars)."""
        # ours, not TrlParser/jsonargparse: neither names section.key nor hints "did you mean" (config_fields)
        raw = self.to_dict()
        for item in overrides:
            if "=" not in item or "." not in item.split("=", 1)[0]:
                raise ConfigError(f"--set expects section.key=value, got {item!r}")
            dotted, value = item.split("=", 1)
            section, key = dotted.split(".", 1)
            if section not in raw:
                raise ConfigError(f"unknown config section {section!r} in --set {item!r}")
            if key not in raw[section]:
                raise ConfigError(f"unknown key {dotted!r}; {section} has: {', '.join(raw[section])}")
            raw[section][key] = yaml.safe_load(value) if value.strip() else None
        return RunConfig.from_dict(raw)


_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "lora": LoraConfig,
                              "train": TrainConfig, "hub": HubConfig}


def load_config(path: str | Path) -> RunConfig:
    """Read a RunConfig from YAML, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        hint = f"; did you mean {path / 'config.yaml'}?" if (path / "config.yaml").is_file() else ""
        raise ConfigError(f"{path} is a folder, not a config file: give a YAML file{hint}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise ConfigError(f"{path} can't be read (no permission)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    cfg = RunConfig.from_dict(raw or {})
    for src in cfg.data.sources:  # a relative path that exists beside the config file is read from there
        beside = (path.parent / src.path).expanduser()
        if not Path(src.path).expanduser().is_absolute() and not Path(src.path).exists() and beside.exists():
            src.path = str(beside.resolve())
    return cfg
