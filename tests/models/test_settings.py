"""One check of model settings (type, range, size) before anything is allocated."""
from __future__ import annotations

import pytest

from synthgen_lib.models import CheckpointError, build_model, check_model_settings, settings
from synthgen_lib.models import SynthEncoderConfig, SynthLSTMConfig, SynthMatchConfig


@pytest.mark.parametrize("family, config, message", [
    ("lstm", {"hidden_size": 10 ** 8}, "hidden_size=100000000 is out of range (2 to 8192)"),
    ("lstm", {"hop_length": 0}, "hop_length=0 is out of range"),
    ("lstm", {"n_fft": 1}, "n_fft=1 is out of range"),
    ("lstm", {"hidden_size": "256"}, "hidden_size must be an integer, got '256'"),
    ("lstm", {"num_layers": True}, "num_layers must be an integer, got True"),
    ("lstm", {"dropout": float("nan")}, "dropout must be a finite number"),
    ("lstm", {"n_fft": 256, "hop_length": 512}, "need hop_length <= n_fft"),
    ("encoder", {"channels": -5}, "channels=-5 is out of range"),
    ("encoder", {"loss": 3}, "loss must be a str"),
    ("synthmatch", {"n_mfcc": 100}, "n_mfcc <= n_mels"),
    ("synthgen", {"dim": 10 ** 9}, "dim=1000000000 is out of range"),
])
def test_bad_settings_are_refused_in_one_line_naming_the_setting(family, config, message):
    with pytest.raises(CheckpointError, match="m.pt: ") as info:
        build_model(family, config, where="m.pt")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_size_limit_counts_the_weights_exactly_without_building_them(monkeypatch):
    config = {"hidden_size": 64, "num_layers": 2, "n_mels": 32, "n_fft": 512, "hop_length": 128}
    size = sum(p.numel() * 4 for p in build_model("lstm", config).parameters())
    monkeypatch.setattr(settings, "MAX_WEIGHT_BYTES", size)
    build_model("lstm", config)  # exactly at the limit: built
    monkeypatch.setattr(settings, "MAX_WEIGHT_BYTES", size - 1)
    with pytest.raises(CheckpointError, match="GiB of weights, more than"):
        build_model("lstm", config)


def test_sizes_that_multiply_to_gigabytes_are_refused_before_allocation():
    with pytest.raises(CheckpointError, match=r"describe 24\.\d GiB of weights"):
        build_model("lstm", {"hidden_size": 8192, "num_layers": 16})


@pytest.mark.parametrize("config_cls", [SynthLSTMConfig, SynthEncoderConfig, SynthMatchConfig])
def test_every_default_is_inside_its_declared_range(config_cls):
    import dataclasses

    defaults = dataclasses.asdict(config_cls())
    for name, (low, high) in config_cls.RANGES.items():
        assert low <= defaults[name] <= high, name


def test_settings_given_on_the_command_line_are_checked_before_any_data_is_read():
    with pytest.raises(CheckpointError, match="--model-config: invalid model setting: n_fft"):
        check_model_settings("lstm", {"n_fft": 10 ** 9}, "--model-config")
    with pytest.raises(CheckpointError, match="a table of name: value"):
        check_model_settings("encoder", [1, 2], "--model-config")
