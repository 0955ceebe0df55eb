"""The model card's YAML header: ``huggingface_hub.ModelCardData`` built from a run, and read back from markdown.

Built with ``ModelCardData`` (``model-index`` from ``EvalResult``), read with ``ModelCard`` (never by hand), so what
the Hub validates is what Studio writes and reads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.config import RunConfig
from studio.errors import HubError
from studio.hub.facts import RunFacts, default_repo_name, is_hub_id, summarise_eval

METRIC_NAMES = {"loss": "loss", "perplexity": "perplexity", "accuracy": "accuracy (exact match)",
                "unclear_rate": "no clear answer (rate)", "mean_token_accuracy": "next-token accuracy",
                "preference_accuracy": "preference accuracy (chosen more likely than rejected)",
                "preference_accuracy_per_token": "preference accuracy, per-token mean log-probabilities",
                "margin": "mean log-probability margin (chosen - rejected)",
                "chosen_logp": "mean log-probability of chosen", "rejected_logp": "mean log-probability of rejected",
                "reward_accuracy": "reward accuracy (implicit reward over the base prefers chosen)",
                "reward_margin": "mean implicit reward margin (x beta)"}
INDEX_METRICS = ("accuracy", "loss", "perplexity", "preference_accuracy", "reward_accuracy")


def base_license(facts: RunFacts) -> str | None:
    """The base model's licence from its model card when it is on disk (a local folder or the Hub cache)."""
    readme: str | None = None
    base = facts.base_id
    local = Path(base).expanduser()
    try:
        if local.is_dir() and (local / "README.md").is_file():
            readme = (local / "README.md").read_text(encoding="utf-8")
        elif is_hub_id(base):
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(base, "README.md", revision=facts.config.model.revision)
            if isinstance(cached, str):
                readme = Path(cached).read_text(encoding="utf-8")
    except (OSError, ValueError):
        readme = None
    if not readme:
        return _preset_license(base)
    try:
        value = parse_card(readme)[0].license
    except HubError:
        return None
    return str(value) if value else None


def _preset_license(base: str) -> str | None:
    from studio.modeling import find_preset

    preset = find_preset(base)
    return preset.license if preset is not None else None


def hub_datasets(cfg: RunConfig) -> list[str]:
    return list(dict.fromkeys(s.path for s in cfg.data.sources if is_hub_id(s.path)))


def card_metadata(facts: RunFacts, *, merged: bool = False, repo_id: str | None = None,
                  license: str | None = None) -> Any:
    """``huggingface_hub.ModelCardData`` for the card's YAML header (model-index when there are eval numbers)."""
    from huggingface_hub import EvalResult, ModelCardData

    evals = summarise_eval(facts)
    tags = ["fine-tune-studio", facts.method, "peft" if not merged else "merged-lora", "trl",
            facts.training_method, "text-generation"]
    datasets = hub_datasets(facts.config)
    model_name = (repo_id or default_repo_name(facts, "merged" if merged else None)).split("/")[-1]
    results = []
    local = [Path(src.path).name for src in facts.config.data.sources if not is_hub_id(src.path)]
    dataset_type = evals.dataset or (datasets[0] if datasets else local[0] if local else "held-out")
    for metric, (_, tuned) in evals.metrics.items():
        if tuned is None or metric not in INDEX_METRICS:
            continue
        n = metric_n(evals, metric)
        results.append(EvalResult(task_type="text-generation", task_name="Text Generation",
                                  dataset_type=dataset_type, dataset_name=f"{dataset_type} (held-out split)",
                                  dataset_split="held-out", metric_type=metric, metric_value=round(tuned, 6),
                                  metric_name=METRIC_NAMES[metric] + (f" (n={n})" if n else ""),
                                  metric_args={"n": n} if n else None))
    return ModelCardData(
        base_model=facts.base_id if facts.base_on_hub else None,
        library_name="transformers" if merged else "peft",
        license=license or base_license(facts),
        tags=tags,
        datasets=datasets or None,
        pipeline_tag="text-generation",
        model_name=model_name if results else None,
        eval_results=results or None,
    )


def metric_n(evals: Any, metric: str) -> int | None:
    """How many held-out rows (or pairs) a metric was measured on: the scored rows for an accuracy, else all."""
    if metric in ("accuracy", "unclear_rate") and evals.scored is not None:
        return evals.scored
    return evals.rows


def parse_card(card: str) -> tuple[Any, str]:
    """``(ModelCardData, body)`` of a card's markdown, read by ``huggingface_hub.ModelCard``.

    Raises:
        HubError: the YAML header is not valid YAML, not a mapping, or holds a model-index the Hub can't read.
    """
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    if not card.lstrip().startswith("---"):
        return ModelCardData(), card  # no header (ModelCard would say so in a logged warning)
    try:
        parsed = ModelCard(card)
    except yaml.YAMLError as exc:
        raise HubError(f"the model card's YAML header is invalid ({str(exc).splitlines()[0]}); fix it and retry") \
            from None
    except ValueError as exc:
        if "dict" in str(exc):
            raise HubError("the model card's YAML header must be a mapping of keys (base_model: ..., tags: ...)") \
                from None
        raise HubError(f"the model card's YAML header is invalid ({str(exc).splitlines()[0][:160]}); fix it and "
                       "retry") from None
    return parsed.data, parsed.text


def card_metadata_of(card: str) -> dict[str, Any]:
    """The YAML header of a card as a dict (empty when there is none).

    Raises:
        HubError: see :func:`parse_card`.
    """
    return parse_card(card)[0].to_dict()
