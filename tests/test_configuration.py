"""ConvLSTMConfig: defaults, validation, config.json round trip, AutoConfig."""

import json

import pytest
from transformers import AutoConfig

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction


def test_defaults_are_the_moving_mnist_setting():
    config = ConvLSTMConfig()
    assert config.model_type == "convlstm"
    assert (config.num_channels, config.patch_size, config.kernel_size) == (1, 4, 3)
    assert config.hidden_sizes == [64, 64] and isinstance(config.hidden_sizes, list)
    assert config.bidirectional is True and config.peephole is False and config.norm is None
    assert (config.num_input_frames, config.num_output_frames) == (10, 10)
    assert (config.loss, config.dropout, config.forget_bias, config.init_method) == (
        "mse",
        0.0,
        1.0,
        "pytorch",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_channels", 0),
        ("num_channels", 1.5),
        ("patch_size", -2),
        ("patch_size", True),
        ("hidden_sizes", []),
        ("hidden_sizes", [64, 0]),
        ("hidden_sizes", 64),
        ("hidden_sizes", [64, "64"]),
        ("kernel_size", 0),
        ("kernel_size", "3"),
        ("bidirectional", "yes"),
        ("peephole", 1),
        ("norm", "batch"),
        ("norm_groups", 0),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", "0.1"),
        ("forget_bias", float("nan")),
        ("forget_bias", None),
        ("num_input_frames", 0),
        ("num_output_frames", -1),
        ("num_output_frames", 2.0),
        ("loss", "huber"),
        ("l1_weight", -0.1),
        ("l1_weight", float("inf")),
        ("ssim_weight", -1.0),
        ("output_threshold", 1.0),
        ("output_threshold", -0.1),
        ("ssim_weight", True),
        ("init_method", "normal"),
        ("prediction_prior", 0.0),
        ("prediction_prior", 1.0),
        ("prediction_prior", "0.1"),
    ],
)
def test_invalid_values_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ConvLSTMConfig(**{field: value})


def test_norm_groups_must_divide_every_hidden_size():
    ConvLSTMConfig(norm="group", norm_groups=4, hidden_sizes=[8, 16])
    with pytest.raises(ValueError, match="norm_groups"):
        ConvLSTMConfig(norm="group", norm_groups=4, hidden_sizes=[8, 6])
    ConvLSTMConfig(norm=None, norm_groups=4, hidden_sizes=[6])  # only checked for group norm


def test_model_checks_a_config_changed_after_construction():
    config = ConvLSTMConfig(hidden_sizes=[4])
    config.loss = "huber"
    with pytest.raises(ValueError, match="loss"):
        ConvLSTMForFramePrediction(config)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        dict(
            num_channels=3,
            patch_size=2,
            hidden_sizes=(16, 8, 4),
            kernel_size=5,
            bidirectional=False,
            peephole=True,
            norm="group",
            norm_groups=4,
            dropout=0.25,
            forget_bias=0.5,
            num_input_frames=4,
            num_output_frames=7,
            loss="mse+l1",
            l1_weight=0.1,
            init_method="xavier_uniform",
            prediction_prior=0.05,
        ),
    ],
)
def test_config_json_round_trip(tmp_path, kwargs):
    config = ConvLSTMConfig(**kwargs)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "convlstm"
    for key, value in kwargs.items():
        assert saved[key] == (list(value) if isinstance(value, tuple) else value)
    reloaded = ConvLSTMConfig.from_pretrained(tmp_path)
    assert reloaded.to_dict() == config.to_dict()
    # and a second trip writes the same file
    reloaded.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == saved


def test_save_writes_auto_map_and_configuration_file(tmp_path):
    ConvLSTMConfig().save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoConfig"] == "configuration_convlstm.ConvLSTMConfig"
    assert (tmp_path / "configuration_convlstm.py").is_file()


def test_autoconfig_after_import(tmp_path):
    assert isinstance(AutoConfig.for_model("convlstm", hidden_sizes=[8]), ConvLSTMConfig)
    ConvLSTMConfig(hidden_sizes=[8, 4]).save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is ConvLSTMConfig and config.hidden_sizes == [8, 4]


def test_config_of_another_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    with pytest.raises(ValueError, match="model_type.*'bert'"):
        ConvLSTMConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type.*'bert'"):
        ConvLSTMForFramePrediction.from_pretrained(tmp_path)
