"""GRPO's settings checked and resolved at the config's layer (foundation imports only): reward specs, generations
per prompt against the batch, completion length, and the device defaults (``None`` means: small on a CPU, so a
SmolLM2 step takes seconds; TRL-sized on a GPU)."""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any

from studio.errors import ConfigError, RewardError

CPU_DEFAULTS = {"num_generations": 4, "max_completion_length": 64}
"""On a CPU: 4 completions of at most 64 tokens per prompt (TRL's 8 x 512 takes minutes a step on SmolLM2)."""
GPU_DEFAULTS = {"num_generations": 8, "max_completion_length": 256}
REWARD_OPTIONS: dict[str, dict[str, Any]] = {"answer": {}, "format": {}, "length": {"target": 200, "unit": "tokens"},
                                             "regex": {"pattern": None}}
"""The built-in rewards' names and options with their defaults (None: required); their functions are in
:mod:`studio.rewards` (this module stays at the config's layer)."""


@dataclass(frozen=True)
class GrpoSettings:
    """The GRPO settings a run trains with, device defaults filled in."""

    num_generations: int
    max_completion_length: int
    temperature: float
    beta: float


def _divisors(n: int) -> list[int]:
    return [d for d in range(2, n + 1) if n % d == 0]


def check_generations(num_generations: int, batch_size: int, grad_accum: int) -> None:
    """``num_generations`` >= 2 and dividing ``batch_size x grad_accum`` (TRL's groups), with what to set.

    Raises:
        ConfigError: naming the values and the settings that would work.
    """
    total = batch_size * grad_accum
    if num_generations < 2:
        raise ConfigError(f"train.num_generations must be >= 2 (GRPO compares completions of the same prompt), "
                          f"got {num_generations}")
    if total % num_generations:
        fits = ", ".join(map(str, _divisors(total))) or "none: raise batch_size to 2 or more"
        raise ConfigError(f"train.num_generations ({num_generations}) must divide train.batch_size x "
                          f"train.grad_accum ({batch_size} x {grad_accum} = {total}): set num_generations to "
                          f"{fits}, or batch_size to {num_generations} (or a multiple of it)")


def check_grpo(train: Any) -> None:
    """The GRPO fields of a TrainConfig (called when ``train.method`` is grpo).

    Raises:
        ConfigError: a reward spec, generations or completion length that can't work.
    """
    try:
        parse_specs(train.rewards)
    except RewardError as exc:
        raise ConfigError(str(exc)) from None
    if train.max_completion_length is not None and train.max_completion_length <= 0:
        raise ConfigError(f"train.max_completion_length must be >= 1 token, got {train.max_completion_length}")
    if train.num_generations is not None:
        check_generations(train.num_generations, train.batch_size, train.grad_accum)
    if train.temperature <= 0:
        raise ConfigError(f"train.temperature must be > 0 (GRPO samples its completions), got {train.temperature}")
    if train.kl_beta < 0:
        raise ConfigError(f"train.kl_beta must be >= 0, got {train.kl_beta}")


def grpo_settings(train: Any, device: str) -> GrpoSettings:
    """The settings a run on ``device`` uses: the config's, with device defaults where it says None.

    Raises:
        ConfigError: the default number of generations does not divide the batch (set it explicitly).
    """
    defaults = GPU_DEFAULTS if device == "cuda" else CPU_DEFAULTS
    gens = train.num_generations
    if gens is None:
        total = train.batch_size * train.grad_accum
        gens = next((d for d in sorted(_divisors(total), key=lambda d: abs(d - defaults["num_generations"]))),
                    defaults["num_generations"])
    check_generations(gens, train.batch_size, train.grad_accum)
    length = train.max_completion_length or defaults["max_completion_length"]
    return GrpoSettings(num_generations=gens, max_completion_length=length, temperature=train.temperature,
                        beta=train.kl_beta)


USER_HELP = "path/to/file.py:function: your own function f(completions, **columns) -> list[float]"


def is_user_reward(name: str) -> bool:
    """Whether ``name`` names a user's function (``file.py:function``) rather than a built-in."""
    return ":" in name and name.split(":", 1)[0].endswith(".py")


def _names_list() -> str:
    return ", ".join(REWARD_OPTIONS) + f", or {USER_HELP}"


@dataclass(frozen=True)
class RewardSpec:
    """One entry of ``train.rewards``."""

    name: str
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The name TRL logs it under (``rewards/<label>/mean``)."""
        if is_user_reward(self.name):
            return self.name.rsplit(":", 1)[1]
        return self.name


def parse_specs(raw: Any) -> list[RewardSpec]:
    """``train.rewards`` as specs, checked: known names (else the list), numeric weights, known options.

    Raises:
        RewardError: the entry, what is wrong and what is allowed.
    """
    if not isinstance(raw, list):
        raise RewardError(f"train.rewards must be a list of {{name, weight, ...options}}, got {raw!r:.60}")
    specs = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise RewardError(f"train.rewards[{i}] needs a name ({_names_list()}); got {item!r:.80}")
        name = item["name"].strip()
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
            raise RewardError(f"train.rewards[{i}] ({name}): weight must be a number, got {weight!r}")
        options = {k: v for k, v in item.items() if k not in ("name", "weight")}
        if is_user_reward(name):
            specs.append(RewardSpec(name, float(weight), options))
            continue
        defaults = REWARD_OPTIONS.get(name)
        if defaults is None:
            raise RewardError(f"unknown reward {name!r}; rewards are {_names_list()}")
        unknown = [k for k in options if k not in defaults]
        if unknown:
            allowed = ", ".join(defaults) or "none"
            raise RewardError(f"reward {name} has no option {unknown[0]!r}; its options: {allowed}")
        missing = [k for k, v in defaults.items() if v is None and options.get(k) in (None, "")]
        if missing:
            raise RewardError(f"reward {name} needs {missing[0]!r} (e.g. {{name: regex, pattern: '#### \\d+'}})")
        if name == "regex":
            try:
                re.compile(options["pattern"])
            except (re.error, TypeError) as exc:
                raise RewardError(f"reward regex: {options['pattern']!r} is not a valid pattern: {exc}") from None
        if name == "length":
            target = options.get("target", 200)
            if isinstance(target, bool) or not isinstance(target, int) or target < 1:
                raise RewardError(f"reward length: target must be a whole number >= 1, got {target!r}")
            if options.get("unit", "tokens") not in ("tokens", "chars"):
                raise RewardError(f"reward length: unit must be tokens or chars, got {options['unit']!r}")
        specs.append(RewardSpec(name, float(weight), options))
    if not specs:
        raise RewardError(f"train.rewards is empty: GRPO needs at least one reward ({_names_list()})")
    return specs


# ---------------------------------------------------------------------------- the reward list as lines of text
REWARD_LINES_HELP = ("One reward a line: name, weight, then options as key=value (quote a value with spaces). "
                     "answer: the number after #### equals the reference. format: some working, then one "
                     "#### <number> line at the end. length: a penalty past target= tokens (unit=chars to count "
                     "characters). regex: pattern= must match. path/to/file.py:function: your own function "
                     "(local apps only). E.g. \"answer 1\", \"format 0.5\", \"length 0.2 target=120\".")


def _option_text(value: Any) -> str:
    import shlex

    return shlex.quote(str(value))  # unchanged where nothing needs quoting


def rewards_to_lines(value: Any) -> str:
    """``train.rewards`` as the Train tab's text: ``answer 1``, ``length 0.2 target=120``, one reward a line."""
    lines = []
    for item in value or []:
        item = {"name": item} if isinstance(item, str) else dict(item)
        weight = item.pop("weight", 1.0)
        name = str(item.pop("name", ""))
        parts = [_option_text(name), f"{weight:g}" if isinstance(weight, (int, float)) and not isinstance(weight, bool)
                 else str(weight)]
        parts += [f"{k}={_option_text(v)}" for k, v in item.items()]
        lines.append(" ".join(parts))
    return "\n".join(lines)


def _typed(name: str, key: str, text: str, where: str) -> Any:
    default = REWARD_OPTIONS.get(name, {}).get(key)
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"train.rewards {where}: {key} must be a whole number, got {text!r}") from None
    return text


def rewards_from_lines(value: Any) -> list[dict]:
    """The Train tab's reward text back to ``train.rewards`` (a list is kept as it is; the names, weights and
    options are checked later by :func:`parse_specs`).

    Raises:
        ConfigError: a line whose weight is not a number, an option without ``=``, an unclosed quote.
    """
    import shlex

    if not isinstance(value, str):
        return list(value or [])
    out = []
    for number, line in enumerate(value.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"line {number} ({line.strip()[:60]!r})"
        lexer = shlex.shlex(line, posix=True)
        lexer.whitespace_split, lexer.escape, lexer.commenters = True, "", ""  # a regex keeps its backslashes
        try:
            words = list(lexer)
        except ValueError as exc:
            raise ConfigError(f"train.rewards {where}: {exc}") from None
        item: dict[str, Any] = {"name": words[0]}
        for word in words[1:]:
            key, eq, text = word.partition("=")
            if eq:
                if key in ("weight", "name"):
                    raise ConfigError(f"train.rewards {where}: write the weight as the second word, "
                                      f"e.g. \"{words[0]} 0.5\"")
                item[key] = _typed(words[0], key, text, where)
            elif "weight" not in item:
                try:
                    item["weight"] = float(word)
                except ValueError:
                    raise ConfigError(f"train.rewards {where}: the weight must be a number, got {word!r}") from None
            else:
                raise ConfigError(f"train.rewards {where}: {word!r} is neither the weight nor an option "
                                  f"(write options as key=value)")
        item.setdefault("weight", 1.0)
        out.append(item)
    return out
