"""The reward preview: each reward scored, before training, on sample completions of the first rows: the row's
own reference answer and a corrupted one (its final number changed). A reward that scores every reference answer
0 or less is a warning: training would get no signal from it. Plain values; the Data tab and ``studio preview``
show them."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from studio.rewards.builtin import completion_text

REFERENCE_KIND, CORRUPTED_KIND = "reference", "corrupted"
PENALTIES = ("length",)
"""Rewards whose best score is 0 (a penalty): they warn when every reference is penalized, not when all are 0."""
_LAST_NUMBER = re.compile(r"(-?\d[\d,]*(?:\.\d+)?)(?!.*\d)", re.DOTALL)


def sample_completion(reference_text: str | None, reference: str | None) -> str | None:
    """The row's reference as a completion: its own worked answer when it has a ``####`` line, else a one-line
    working plus ``#### <reference>``; None without a reference."""
    if reference_text and "####" in reference_text:
        return reference_text.strip()
    if reference is None:
        return None
    return f"The answer is {reference}.\n#### {reference}"


def corrupt(completion: str) -> str:
    """The same completion with its last number changed (``16`` -> ``17``), or ``#### 0`` appended."""
    m = _LAST_NUMBER.search(completion)
    if m is None:
        return completion + "\n#### 0"
    raw = m.group(1).replace(",", "")
    try:
        wrong = str(int(float(raw)) + 1) if float(raw).is_integer() else str(float(raw) + 1)
    except ValueError:
        wrong = "0"
    return completion[:m.start(1)] + wrong + completion[m.end(1):]


@dataclass
class PreviewSample:
    """One sample completion of a row and its score under each reward."""

    row: int
    kind: str
    completion: str
    scores: dict[str, float | None]
    total: float


@dataclass
class RewardPreview:
    """Each reward on sample completions, with warnings."""

    rewards: list[str]
    weights: list[float]
    samples: list[PreviewSample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def headers(self) -> list[str]:
        return ["row", "sample", "completion", *self.rewards, "total"]

    def table(self) -> list[list[Any]]:
        """Rows for a table: row number, which sample, the completion, each reward's score, the weighted total."""
        return [[s.row, s.kind, s.completion, *[s.scores.get(r) for r in self.rewards], round(s.total, 3)]
                for s in self.samples]


def reward_preview(rows: list[dict[str, Any]], specs: list[Any], rewards: list[Any], *,
                   reference_texts: list[str | None], tokenizer: Any = None) -> RewardPreview:
    """Score ``rewards`` (checked callables built from ``specs``) on each row's reference and corrupted samples.

    Args:
        rows: GRPO rows (``prompt``, ``reference`` and the original columns), as :func:`prompt_rows` makes them.
        specs: the :class:`~studio.rewards.RewardSpec` list (names and weights).
        rewards: the callables of ``specs`` (:func:`~studio.rewards.build_rewards`).
        reference_texts: each row's reference as written (its worked answer).
        tokenizer: counts completion tokens (``length``); without it, characters are counted.

    Raises:
        RewardError: a reward fails on a sample or returns something other than one number per completion.
    """
    labels = [r.__name__ for r in rewards]
    out = RewardPreview(rewards=labels, weights=[s.weight for s in specs])
    completions, owners, kinds = [], [], []
    for i, (row, text) in enumerate(zip(rows, reference_texts)):
        good = sample_completion(text, row.get("reference"))
        if good is None:
            continue
        for kind, c in ((REFERENCE_KIND, good), (CORRUPTED_KIND, corrupt(good))):
            completions.append(c)
            owners.append(row)
            kinds.append((i + 1, kind))
    if not completions:
        out.warnings.append("no row has a reference answer to score")
        return out
    columns = {k: [row.get(k) for row in owners] for k in owners[0]}
    columns.pop("completion", None)
    prompts = columns.pop("prompt", [""] * len(completions))
    ids = [tokenizer(completion_text(c), add_special_tokens=False)["input_ids"] for c in completions] \
        if tokenizer is not None else None
    scores = {label: reward(completions, prompts=prompts, completion_ids=ids, **columns)
              for label, reward in zip(labels, rewards)}
    for j, (c, (row_no, kind)) in enumerate(zip(completions, kinds)):
        per = {label: scores[label][j] for label in labels}
        total = sum(w * (v or 0.0) for w, v in zip(out.weights, per.values()))
        out.samples.append(PreviewSample(row=row_no, kind=kind, completion=c, scores=per, total=total))
    penalties = {label for label, spec in zip(labels, specs) if spec.name in PENALTIES}
    for label in labels:
        refs = [scores[label][j] for j, (_, kind) in enumerate(kinds) if kind == REFERENCE_KIND]
        scored = [v for v in refs if v is not None]
        if scored and label in penalties and all(v < 0 for v in scored):
            out.warnings.append(f"the {label} reward penalizes every reference answer (down to {min(scored):g}): "
                                f"raise its target")
        elif scored and label not in penalties and all(v <= 0 for v in scored):
            out.warnings.append(f"the {label} reward scores every reference answer {max(scored):g}: it gives "
                                f"training nothing to aim at (check the reference column and the reward's "
                                f"options)")
        elif not scored:
            out.warnings.append(f"the {label} reward scored no reference answer (no row has a reference)")
    ref_totals = [s.total for s in out.samples if s.kind == REFERENCE_KIND]
    bad_totals = [s.total for s in out.samples if s.kind == CORRUPTED_KIND]
    if ref_totals and bad_totals and sum(bad_totals) >= sum(ref_totals):
        out.warnings.append("corrupted answers score as high as the references: the rewards can't tell a right "
                            "answer from a wrong one")
    return out


def preview_for_config(cfg: Any, tokenizer: Any, loaded: Any = None, n_rows: int = 3, *,
                       allow_user_code: bool = True) -> RewardPreview:
    """The reward preview of a run's config: its first ``n_rows`` rows and its ``train.rewards``.

    Raises:
        RewardError: unknown rewards, user code where it is not allowed, a reward failing on a sample.
        DataError: no reference where a reward needs one.
    """
    from studio.data import load_data
    from studio.errors import RewardError
    from studio.rewards.data import prompt_rows, reference_text
    from studio.rewards.registry import build_rewards, is_user_reward, needs_reference, parse_specs

    specs = parse_specs(cfg.train.rewards)
    if not allow_user_code and any(is_user_reward(s.name) for s in specs):
        raise RewardError("user reward code is not run from this app (it is reachable from other machines)")
    loaded = loaded or load_data(cfg.data)
    if n_rows < len(loaded.dataset):
        import dataclasses

        loaded = dataclasses.replace(loaded, dataset=loaded.dataset.select(range(n_rows)))
    prompt_cfg = _no_split(cfg)
    data = prompt_rows(prompt_cfg, tokenizer, loaded, needs_reference=bool(needs_reference(specs)))
    rows = [data.train[i] for i in range(len(data.train))]
    texts = [reference_text(loaded.dataset[i], loaded.format, loaded.mapping) for i in range(len(rows))]
    return reward_preview(rows, specs, build_rewards(specs), reference_texts=texts, tokenizer=tokenizer)


def _no_split(cfg: Any) -> Any:
    import dataclasses

    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, eval_fraction=0.0))
