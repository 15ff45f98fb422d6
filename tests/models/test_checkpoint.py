from __future__ import annotations

import pytest
import torch

from synthgen_lib.models import (CheckpointError, SynthLSTM, SynthLSTMConfig, list_models, load_checkpoint,
                                 load_model, save_checkpoint)


def _tiny(hidden=16):
    torch.manual_seed(0)
    return SynthLSTM(SynthLSTMConfig(n_fft=256, hop_length=64, n_mels=16, hidden_size=hidden, num_layers=1)).eval()


def test_checkpoint_rebuilds_the_model_from_its_own_config(tmp_path):
    model = _tiny()
    path = save_checkpoint(tmp_path / "m.pt", model, meta={"note": "x"})
    again = load_model(path)
    assert isinstance(again, SynthLSTM) and again.config == model.config and not again.training
    x = torch.randn(1, 2, 4000)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    assert load_checkpoint(path)["meta"] == {"note": "x"}
    big = _tiny(hidden=128)
    full = save_checkpoint(tmp_path / "f.pt", big).stat().st_size
    half = load_model(save_checkpoint(tmp_path / "h.pt", big, half=True))
    assert (tmp_path / "h.pt").stat().st_size < 0.6 * full
    with torch.no_grad():
        torch.testing.assert_close(half(x), big(x), atol=2e-2, rtol=0)


def test_wrong_family_and_bad_files_are_refused_in_one_line(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _tiny())
    with pytest.raises(CheckpointError, match="this is a 'lstm' checkpoint, not 'encoder'"):
        load_model(path, family="encoder")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a SynthGen checkpoint"):
        load_model(other)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_a_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "synthgen-checkpoint", "model": _Payload(str(marker))}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(evil)
    assert not marker.exists()


def test_bundled_models_are_listed_by_name():
    names = [row[0] for row in list_models()]
    assert names == ["synthlstm-demo", "synthencoder-demo"]


def test_settings_are_strict_for_users_but_old_checkpoints_still_load(tmp_path):
    from synthgen_lib.models import build_model

    with pytest.raises(CheckpointError, match="unknown lstm setting"):
        build_model("lstm", {"hiden_size": 3})
    path = save_checkpoint(tmp_path / "m.pt", _tiny())
    payload = torch.load(path, weights_only=True)
    payload["config"]["a_setting_since_removed"] = 1.0
    torch.save(payload, path)
    assert isinstance(load_model(path), SynthLSTM)


def test_a_checkpoint_written_before_a_setting_existed_keeps_the_value_it_was_trained_with(tmp_path):
    from synthgen_lib.models import SynthEncoder, SynthEncoderConfig

    config = SynthEncoderConfig(sample_rate=16000, channels=8, depth=3, lstm_layers=1)
    assert config.loss == "l1"  # today's default
    path = save_checkpoint(tmp_path / "e.pt", SynthEncoder(config))
    assert load_model(path).config.loss == "l1"  # written today: stored, so kept
    payload = torch.load(path, weights_only=True)
    del payload["config"]["loss"]  # as written before the setting existed (trained with L1 + STFT)
    torch.save(payload, path)
    assert load_checkpoint(path)["config"]["loss"] == "l1+stft"  # what `synthgen train --resume` rebuilds from
    assert load_model(path).config.loss == "l1+stft"
