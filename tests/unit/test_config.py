import pytest

from curiosity_sft.config import SFTConfig, load_config, parse_override, save_config
from curiosity_sft.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_validate_and_global_batch():
    cfg = SFTConfig()
    assert cfg.global_batch_size == cfg.batch_size * cfg.gradient_accumulation_steps


def test_unknown_key_names_key_file_line_and_suggests(tmp_path):
    p = write(tmp_path, "batch_size: 4\nlearnign_rate: 1e-4\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = e.value.one_line()
    assert f"{p}:2" in msg and "learnign_rate" in msg and "learning_rate" in msg


def test_wrong_type_and_impossible_value(tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(write(tmp_path, "batch_size: many\n"))
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(write(tmp_path, "learning_rate: -1\n"))
    with pytest.raises(ConfigError, match="hidden_dim and num_layers"):
        load_config(write(tmp_path, "hidden_dim: 64\n"))
    with pytest.raises(ConfigError, match="fp16 and bf16"):
        load_config(None, ["fp16=true", "bf16=true"])


def test_not_a_mapping_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1,\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_are_yaml_typed(tmp_path):
    cfg = load_config(write(tmp_path, "learning_rate: 1e-3\n"), ["learning_rate=1e-4", "max_steps=7", "val_file=null"])
    assert cfg.learning_rate == 1e-4 and cfg.max_steps == 7 and cfg.val_file is None
    assert parse_override("lora_target_modules=[q_proj,v_proj]") == ("lora_target_modules", ["q_proj", "v_proj"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("learning_rate")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["max_steps=3", "lora_r=4"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == cfg


@pytest.mark.parametrize("name", ["sft_config.yaml", "rtx3090.yaml", "cpu_demo.yaml"])
def test_shipped_configs_validate(name):
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / name)
    assert cfg.max_length > 0


def test_dotted_override_sets_a_curriculum_key(tmp_path):
    """`--set curriculum.strategy=curiosity` reaches the nested section and keeps the file's other keys."""
    p = write(tmp_path, "batch_size: 2\ncurriculum:\n  strategy: competence\n  competence_p: 1\n")
    cfg = load_config(p, ["curriculum.strategy=curiosity", "curriculum.weights={gsm8k: 2, math: 1}"])
    assert cfg.curriculum.strategy == "curiosity" and cfg.curriculum.competence_p == 1
    assert cfg.curriculum.weights == {"gsm8k": 2.0, "math": 1.0} and cfg.batch_size == 2
    assert load_config(None, ["curriculum.strategy=stages"]).curriculum.strategy == "stages"
    assert SFTConfig().curriculum.strategy == "random"
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


def test_curriculum_mistakes_name_the_nested_key_and_line(tmp_path):
    p = write(tmp_path, "batch_size: 2\ncurriculum:\n  strategy: curiosity\n  curiosity_flor: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"{p}:4" in e.value.one_line() and "did you mean `curriculum.curiosity_floor`" in e.value.one_line()
    with pytest.raises(ConfigError, match="curriculum.strategy"):
        load_config(None, ["curriculum.strategy=bogus"])
    with pytest.raises(ConfigError, match="`batch_size` is not a section"):
        load_config(p, ["batch_size.x=1"])
