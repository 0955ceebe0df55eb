"""GRPO's rows: each prompt rendered exactly as SFT, chat and ``studio eval`` render it (the run's template or chat
template, through :class:`~studio.inference.prompt.PromptBuilder`), plus the row's reference answer.

The reference comes from the column mapped to the ``reference`` role, else from the answer column of the format
(a GSM8K-style ``answer`` ending in ``#### n`` gives the number); it is stored normalized, as ``studio eval``
compares answers. The row's other columns are kept: TRL hands them to every reward as keyword arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.errors import DataError
from studio.formatting import plural
from studio.rewards.builtin import reference_answer

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

PROMPT, REFERENCE = "prompt", "reference"
_ANSWER_ROLE = {"prompt_completion": "completion", "instruction": "output"}


@dataclass
class PromptStats:
    """What the job notes about GRPO's rows."""

    rows: int
    without_reference: int = 0

    def warnings(self) -> list[str]:
        n = self.without_reference
        has = "has" if n == 1 else "have"
        return [f"{n} of {plural(self.rows, 'row')} {has} no reference answer: the answer reward skips them"] \
            if n else []


@dataclass
class PromptRows:
    """GRPO's train and held-out rows (``prompt`` text, ``reference`` answer, the original columns)."""

    train: "Dataset"
    eval: "Dataset | None"
    spec: Any
    reference_column: str | None
    stats: PromptStats = field(default_factory=lambda: PromptStats(0))
    dropped_rows: int = 0

    @property
    def fingerprint(self) -> str:
        return self.train._fingerprint


def reference_text(row: dict[str, Any], fmt: str, mapping: dict[str, str]) -> str | None:
    """The row's reference as written (the mapped ``reference`` column, else its answer), or None."""
    column = mapping.get(REFERENCE) or mapping.get(_ANSWER_ROLE.get(fmt, ""), None)
    if column is not None:
        value = row.get(column)
        return None if value is None else str(value)
    if fmt == "messages":
        from studio.data.formats import normalize_messages

        answers = [m["content"] for m in normalize_messages(row[mapping["messages"]]) if m["role"] == "assistant"]
        return answers[-1] if answers else None
    return None


def prompt_text(builder: Any, row: dict[str, Any]) -> str:
    """The row's prompt as text TRL tokenizes again with ``tokenizer(text)``: special tokens that the tokenizer
    adds by itself (a BOS) are left out, so they are not doubled."""
    ids = list(builder.for_row(row)[0].input_ids)
    tok = builder.tokenizer
    added = tok("", add_special_tokens=True)["input_ids"]
    if added and ids[:len(added)] == list(added):
        ids = ids[len(added):]
    return tok.decode(ids, skip_special_tokens=False)


def prompt_rows(cfg: Any, tokenizer: Any, loaded: Any = None, *, needs_reference: bool = True) -> PromptRows:
    """The run's rows as GRPO prompts with references, split as SFT splits them (same seed, same held-out rows).

    Raises:
        DataError: a reward needs the reference answer and the data has none (with the columns to map).
    """
    from studio.data import load_data, split_rows, spec_for
    from studio.inference.prompt import PromptBuilder

    loaded = loaded or load_data(cfg.data)
    spec = spec_for(cfg, loaded, tokenizer)
    builder = PromptBuilder(spec, tokenizer, max_input_tokens=cfg.train.max_length,
                            system_prompt=cfg.data.system_prompt)
    fmt, mapping = loaded.format, loaded.mapping
    column = mapping.get(REFERENCE) or mapping.get(_ANSWER_ROLE.get(fmt, ""), None)

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        return {PROMPT: prompt_text(builder, row),
                REFERENCE: reference_answer(reference_text(row, fmt, mapping))}

    train_raw, eval_raw = split_rows(cfg.data, loaded)
    train = train_raw.map(convert, desc="Rendering prompts")
    missing = sum(r is None for r in train[REFERENCE])
    if needs_reference and missing == len(train):
        raise DataError("the answer reward needs each row's reference answer, and no row has one: map a column to "
                        "the reference role (data.sources[0].columns: {reference: <column>}); columns: "
                        f"{', '.join(loaded.columns)}")
    eval_ds = eval_raw.map(convert, desc="Rendering prompts") if eval_raw is not None else None
    return PromptRows(train=train, eval=eval_ds, spec=spec, reference_column=column,
                      stats=PromptStats(len(train), missing if needs_reference else 0))
