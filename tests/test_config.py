"""Validation at the edge: one clear line naming the file, the key and the allowed values; exit 2."""

from __future__ import annotations

import pytest

from ablations.config import load_space
from ablations.errors import ConfigError
from ablations.models import NORMS
from tests.conftest import TINY_SPACE


def assert_one_clear_line(result, *fragments: str) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.err + result.out
    line = result.err.strip()
    assert line.startswith("error: ") and "\n" not in line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def test_malformed_yaml_names_file_and_line(ablate, write_space):
    path = write_space("name: x\nfactors:\n  norm: [none, batch\n  init: [kaiming]\n")
    result = ablate("check", str(path))
    assert_one_clear_line(result, str(path), "malformed YAML", "line")


def test_unknown_factor_names_the_key_and_the_choices(ablate, write_space):
    path = write_space(TINY_SPACE + "  normalisation: [batch]\n")
    assert_one_clear_line(ablate("check", str(path)), str(path), "factors.normalisation", "unknown config key", "norm")


def test_unknown_level_lists_allowed_levels(ablate, write_space):
    path = write_space(TINY_SPACE.replace("[none, batch]", "[none, batchnorm]"))
    result = ablate("run", str(path))
    assert_one_clear_line(result, str(path), "factors.norm", "'batchnorm'", *NORMS.names())
    assert not (path.parent / "runs").exists(), "nothing may be created before validation passes"


def test_wrong_type_names_the_key(ablate, write_space):
    path = write_space(TINY_SPACE.replace("lr: 0.05", "lr: fast"))
    assert_one_clear_line(ablate("check", str(path)), str(path), "train.lr", "'fast'")


def test_unknown_key_in_a_section_lists_the_allowed_keys(ablate, write_space):
    path = write_space(TINY_SPACE.replace("width: 16", "widht: 16"))
    assert_one_clear_line(ablate("check", str(path)), "model.widht", "unknown key", "width", "depth")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (("activation: [relu, tanh]", "dropout: [0.0, 1.0]"), "factors.dropout"),
        (("depth: 2", "depth: 0"), "model.depth"),
        (("lr: 0.05", "lr: -0.1"), "train.lr"),
        (("epochs: 3", "epochs: 0"), "train.epochs"),
        (("activation: [relu, tanh]", "activation: []"), "empty"),
        (("pruner: {name: none}", "pruner: {name: median, n_warmup: 2}"), "n_warmup_steps"),
        (("pruner: {name: none}", "pruner: {name: mean}"), "median"),
    ],
)
def test_out_of_range_and_bad_values(ablate, write_space, change, fragment):
    path = write_space(TINY_SPACE.replace(*change))
    assert_one_clear_line(ablate("check", str(path)), str(path), fragment)


def test_bad_override_is_rejected(ablate, write_space):
    path = write_space(TINY_SPACE)
    assert_one_clear_line(ablate("check", str(path), "--set", "norm=none,weird"), "factors.norm", "'weird'")
    assert_one_clear_line(ablate("check", str(path), "--set", "lr"), "KEY=VALUE")


def test_overrides_set_base_values_and_replace_levels(write_space):
    path = write_space(TINY_SPACE)
    space = load_space(path, ["train.lr=0.2", "norm=batch,layer", "model.width=32", "train.batch_size=16,32"])
    assert space.train.lr == 0.2 and space.model.width == 32
    assert space.factors["model.norm"] == ["batch", "layer"]
    assert space.factors["train.batch_size"] == [16, 32]
    assert space.factors["model.activation"] == ["relu", "tanh"]
    assert load_space(path, ["norm=batch"]).factors["model.norm"] == ["batch"]
    assert load_space(path, ["seeds=5"]).seeds == 5
    other = load_space(path, ["pruner.name=median", "pruner.n_warmup_steps=2", "pruner.name=hyperband"])
    assert other.pruner.name == "hyperband" and other.pruner.args == {}
    assert load_space(path, ["pruner.name=median", "pruner.n_warmup_steps=2"]).pruner.args == {"n_warmup_steps": 2}


def test_short_and_dotted_factor_keys_mean_the_same(write_space):
    short = load_space(write_space(TINY_SPACE, "a.yaml"))
    dotted = load_space(write_space(TINY_SPACE.replace("  norm:", "  model.norm:"), "b.yaml"))
    assert short.factors == dotted.factors


def test_yaml_cannot_execute_code(write_space):
    path = write_space("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_space(path)


def test_missing_file(ablate, tmp_path):
    assert_one_clear_line(ablate("check", str(tmp_path / "nope.yaml")), "nope.yaml", "no such search space")
