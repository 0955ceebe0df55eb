"""RunConfig: validation messages, unknown keys, wrong types, YAML round trip, overrides."""
from __future__ import annotations

import pytest
import yaml

from studio.config import RunConfig, field_help, load_config, TrainConfig
from studio.errors import ConfigError


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = RunConfig.from_dict({"data": {"sources": [{"path": "x.jsonl", "columns": {"prompt": "q"}}]},
                               "train": {"learning_rate": 1e-4, "max_steps": 5}})
    path = cfg.save(tmp_path / "run.yaml")
    again = load_config(path)
    assert again == cfg
    assert again.data.sources[0].columns == {"prompt": "q"}


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  learning_rate: 2e-4\n")
    assert load_config(p).train.learning_rate == pytest.approx(2e-4)


@pytest.mark.parametrize("raw, message", [
    ({"train": {"learning_rate": -1}}, "train.learning_rate must be > 0, got -1"),
    ({"train": {"batch_size": 0}}, "train.batch_size must be > 0"),
    ({"train": {"lr": 1}}, "unknown key train.lr"),
    ({"trainer": {}}, "unknown config section 'trainer'"),
    ({"train": {"batch_size": "four"}}, "train.batch_size must be an integer, got 'four'"),
    ({"model": {"quantization": "3bit"}}, "model.quantization must be one of none, 8bit, 4bit"),
    ({"lora": {"dropout": 1.5}}, "lora.dropout must be in [0, 1)"),
    ({"data": {"format": "csv"}}, "data.format must be one of auto, text"),
    ({"data": {"eval_fraction": 0.9}}, "data.eval_fraction must be between 0 and 0.5"),
    ({"data": {"sources": [{"split": "train"}]}}, "data.sources[] needs path"),
    ({"train": {"gradient_checkpointing": "maybe"}}, "train.gradient_checkpointing must be auto, true or false"),
    ({"hub": {"repo_id": "a/b/c"}}, "hub.repo_id must look like"),
])
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(raw)
    assert message in str(err.value)


def test_overrides_parse_yaml_scalars_and_reject_unknown_keys():
    cfg = RunConfig().with_overrides(["train.batch_size=8", "train.packing=true", "model.quantization=4bit"])
    assert (cfg.train.batch_size, cfg.train.packing, cfg.model.quantization) == (8, True, "4bit")
    with pytest.raises(ConfigError, match="unknown key 'train.bs'"):
        RunConfig().with_overrides(["train.bs=8"])
    with pytest.raises(ConfigError, match="section.key=value"):
        RunConfig().with_overrides(["batch_size=8"])


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(scalar)


def test_every_field_has_one_help_text():
    import dataclasses

    for f in dataclasses.fields(TrainConfig):
        assert field_help(TrainConfig, f.name), f.name


def test_gradient_checkpointing_accepts_words():
    assert RunConfig.from_dict({"train": {"gradient_checkpointing": "auto"}}).train.gradient_checkpointing == "auto"
    assert RunConfig.from_dict({"train": {"gradient_checkpointing": True}}).train.gradient_checkpointing is True
    assert yaml.safe_load(RunConfig().to_yaml())["train"]["gradient_checkpointing"] == "auto"


def test_choices_come_from_the_literal_types():
    from studio.config import QUANTIZATIONS, HubConfig, ModelConfig, choices_of

    assert choices_of(ModelConfig, "quantization") == QUANTIZATIONS == ("none", "8bit", "4bit")
    assert choices_of(TrainConfig, "device") == ("auto", "cuda", "cpu")
    assert choices_of(TrainConfig, "seed") == ()
    with pytest.raises(ConfigError, match=r"model.quantization must be one of none, 8bit, 4bit; got '3bit'"):
        ModelConfig(quantization="3bit")  # built directly, not only from YAML
    with pytest.raises(ConfigError, match="hub.push must be one of adapter, merged"):
        HubConfig(push="everything")


def test_unknown_keys_get_a_hint_and_whole_numbers_are_integers():
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        RunConfig.from_dict({"train": {"learning_rat": 1e-4}})
    cfg = RunConfig.from_dict({"train": {"batch_size": 4.0, "epochs": 2}})  # a widget's 4.0, YAML's 2
    assert cfg.train.batch_size == 4 and type(cfg.train.batch_size) is int
    assert type(cfg.train.epochs) is float
    with pytest.raises(ConfigError, match="train.batch_size must be an integer, got 2.5"):
        RunConfig.from_dict({"train": {"batch_size": 2.5}})
