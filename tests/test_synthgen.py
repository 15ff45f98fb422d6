"""SynthGen (models/synthgen.py) on the tiny offline model: conditioning, dropout, LoRA,
checkpointing, export and the safe loaders. CPU only, no network."""
from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from synthgen_lib.encode import Codes
from synthgen_lib.errors import SynthGenError
from synthgen_lib.models import CheckpointError, load_checkpoint, load_model
from synthgen_lib.evaluate import conditioning_report
from synthgen_lib.models.synthgen import CHROMA, MIX, SynthGen, SynthGenConfig
from synthgen_lib.models.synthgen_io import export
from synthgen_lib.train import TrainConfig, train
from tests.conftest import TINY_SYNTHGEN, torchrun


def _batch(dataset, n=None):
    items = [dataset[i] for i in range(n or len(dataset))]
    return [torch.stack([x[j] for x in items]) for j in range(3)] + [[x[3] for x in items]]


@pytest.fixture(scope="module")
def trained(synthgen_codes, tmp_path_factory):
    """The tiny model trained on the encoded synthetic windows (about a minute on 2 cores)."""
    folder, _ = synthgen_codes
    out = tmp_path_factory.mktemp("synthgen-run")
    cfg = TrainConfig(model="synthgen", epochs=12, batch_size=8, lr=1e-2, warmup_steps=5, log_every=5)
    result = train(folder, out, cfg, progress=False)
    return out, result


def test_cross_entropy_falls_and_best_checkpoint_reloads(trained):
    out, result = trained
    losses = [h["valid_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.5, losses
    assert "valid_si_sdr" not in result.history[0]  # token models report CE only
    best = load_checkpoint(out / "best.pt")
    assert best["family"] == "synthgen" and best["train"]["best_valid_loss"] == pytest.approx(min(losses))
    model = load_model(out / "best.pt", family="synthgen")
    assert isinstance(model, SynthGen) and model.config.window == TINY_SYNTHGEN["window"]
    with pytest.raises(CheckpointError, match="not 'lstm'"):
        load_model(out / "best.pt", family="lstm")


def test_the_mix_reaches_the_generator(trained, synthgen_codes):
    """Held-out windows: CE with each window's own mix is clearly lower than with the mix of
    another window (shuffled across examples), and lower still than with no mix."""
    out, _ = trained
    report = conditioning_report(out / "best.pt", Codes(synthgen_codes[0]).dataset("valid"))
    print(report.format())
    assert report.shuffled_mix - report.true_mix > 0.1, report
    assert report.no_mix > report.true_mix + 0.1, report
    # the same numbers by hand for the first two: the report scores what it says
    model = load_model(out / "best.pt")
    synth, mix, chroma, text = _batch(Codes(synthgen_codes[0]).dataset("valid"))
    perm = torch.roll(torch.arange(len(mix)), 1)
    with torch.no_grad():
        assert model.loss(synth, mix, chroma, text).item() == pytest.approx(report.true_mix, abs=1e-4)
        assert model.loss(synth, mix[perm], chroma[perm], text).item() == pytest.approx(report.shuffled_mix, abs=1e-4)


def test_condition_dropout_follows_the_configured_rates():
    model = SynthGen(SynthGenConfig(**TINY_SYNTHGEN, cfg_dropout=0.2, text_dropout=0.3, mix_dropout=0.1))
    n = 3000
    codes = torch.zeros(n, model.n_q, 5, dtype=torch.long)
    chroma = torch.rand(n, 3, 12)
    torch.manual_seed(0)
    conds = model.conditions(codes, chroma, ["saw lead"] * n, dropout=True)
    text_dropped = sum(c.text["description"] is None for c in conds) / n
    mix_dropped = sum(int(c.wav[MIX].length[0]) == 0 for c in conds) / n
    both = sum(c.text["description"] is None and int(c.wav[MIX].length[0]) == 0 for c in conds) / n
    assert text_dropped == pytest.approx(1 - 0.8 * 0.7, abs=0.03)
    assert mix_dropped == pytest.approx(1 - 0.8 * 0.9, abs=0.03)
    assert both == pytest.approx(0.2 + 0.8 * 0.3 * 0.1, abs=0.03)
    assert all((int(c.wav[MIX].length[0]) == 0) == (int(c.wav[CHROMA].length[0]) == 0) for c in conds)
    kept = model.conditions(codes[:50], chroma[:50], ["saw lead"] * 50, dropout=False)
    assert all(c.text["description"] == "saw lead" and int(c.wav[MIX].length[0]) == 5 * model.n_q for c in kept)


def test_a_batchs_conditions_keep_their_lengths_where_their_features_are():
    """audiocraft concatenates the lengths of a batch's wav conditions, and makes those of the
    dropped ones on the features' device: ours must be there too, or training on a GPU stops at
    the first batch that drops some (it did, found on an H200). The ``meta`` device stands in for
    the GPU here."""
    model = SynthGen(SynthGenConfig(**TINY_SYNTHGEN, mix_dropout=0.5))
    codes = torch.zeros(8, model.n_q, 5, dtype=torch.long, device="meta")
    chroma = torch.zeros(8, 3, 12, device="meta")
    torch.manual_seed(0)
    conds = model.conditions(codes, chroma, ["saw lead"] * 8, dropout=True)
    kinds = [(c.wav[name].wav.device.type, c.wav[name].length.device.type) for c in conds for name in (MIX, CHROMA)]
    assert set(kinds) == {("meta", "meta")}
    collated = model.lm.condition_provider._collate_wavs(conds)  # where the batch's lengths are concatenated
    assert collated[MIX].length.shape == (8,) and collated[MIX].length.device.type == "meta"


def test_lora_freezes_the_base_and_trains_only_adapters_and_new_conditioners(synthgen_codes):
    full = SynthGen(SynthGenConfig(**TINY_SYNTHGEN))
    lora = SynthGen(SynthGenConfig(**TINY_SYNTHGEN, lora_rank=4))
    counts = lora.parameter_counts()
    print(f"LoRA rank 4: {counts['trainable']} trainable of {counts['total']} parameters; "
          f"full fine-tuning: {full.parameter_counts()['trainable']}")
    assert 0 < counts["trainable"] < counts["total"] / 2
    assert full.parameter_counts()["trainable"] == full.parameter_counts()["total"]
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert all(".a" in n[-2:] or ".b" in n[-2:] or f"conditioners.{MIX}." in n or f"conditioners.{CHROMA}." in n
               for n in trainable)
    batch = _batch(Codes(synthgen_codes[0]).dataset("train"), 4)
    lora.eval()
    full.load_state_dict({k: v for k, v in lora.state_dict().items() if "parametrizations" not in k}, strict=False)
    before = {n: p.detach().clone() for n, p in lora.named_parameters()}
    lora.train()
    opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    lora.loss(*batch).backward()
    opt.step()
    for name, p in lora.named_parameters():
        moved = not torch.equal(before[name], p.detach())
        assert moved == p.requires_grad or (p.requires_grad and p.grad is None), name
    assert any(n.endswith(".b") and not torch.equal(before[n], p) for n, p in lora.named_parameters())


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(synthgen_codes):
    batch = _batch(Codes(synthgen_codes[0]).dataset("train"), 3)
    grads = []
    for flag in (False, True):
        model = SynthGen(SynthGenConfig(**TINY_SYNTHGEN, gradient_checkpointing=flag, cfg_dropout=0, text_dropout=0,
                                        mix_dropout=0))
        loss = model.loss(*batch)
        loss.backward()
        grads.append((loss.item(), model.lm.linears[0].weight.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-5)


def test_export_reloads_through_audiocraft_and_as_a_base(tmp_path, synthgen_codes):
    from audiocraft.models.loaders import load_compression_model, load_lm_model

    model = SynthGen(SynthGenConfig(**TINY_SYNTHGEN, lora_rank=2))
    with torch.no_grad():  # move the adapters so that merging them matters
        for name, p in model.named_parameters():
            if name.endswith(".b"):
                p.normal_(0, 0.05)
    model.eval()
    folder = export(model, tmp_path / "export")
    assert {p.name for p in folder.iterdir()} == {"state_dict.bin", "compression_state_dict.bin", "synthgen.pt"}
    lm = load_lm_model(folder)  # audiocraft's own loader, from a directory
    assert set(lm.condition_provider.conditioners) == {"description"}
    native = model.native_lm_state()
    assert all(torch.equal(v, native[k]) for k, v in lm.state_dict().items())
    codec = load_compression_model(folder)
    assert codec.frame_rate == model.frame_rate
    reloaded = SynthGen(SynthGenConfig(base=str(folder))).eval()
    batch = _batch(Codes(synthgen_codes[0]).dataset("valid"), 2)
    with torch.no_grad():
        assert model.loss(*batch).item() == pytest.approx(reloaded.loss(*batch).item(), abs=1e-5)


class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_malicious_export_is_refused_and_never_runs(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    marker = tmp_path / "pwned"
    with open(folder / "state_dict.bin", "wb") as f:
        pickle.dump({"best_state": _Marker(str(marker)), "xp.cfg": ""}, f)
    (folder / "compression_state_dict.bin").write_bytes((folder / "state_dict.bin").read_bytes())
    with pytest.raises(CheckpointError, match="refused"):
        SynthGen(SynthGenConfig(base=str(folder)))
    assert not marker.exists()
    # a good export whose side file of conditioner weights is the malicious one
    good = export(SynthGen(SynthGenConfig(**TINY_SYNTHGEN)), tmp_path / "good")
    with open(good / "synthgen.pt", "wb") as f:
        pickle.dump({"conditioners": _Marker(str(marker))}, f)
    with pytest.raises(CheckpointError, match="synthgen.pt: refused"):
        SynthGen(SynthGenConfig(base=str(good)))
    assert not marker.exists()


def test_training_refuses_tokens_from_another_codec(tmp_path, synthgen_codes):
    codes = tmp_path / "codes"
    shutil.copytree(synthgen_codes[0], codes)
    with pytest.raises(SynthGenError, match="encoded with another seed"):
        train(codes, tmp_path / "a", TrainConfig(model="synthgen", epochs=1), {"seed": 1}, progress=False)
    manifest = json.loads((codes / "manifest.json").read_text())
    manifest["settings"]["codec"] = "0" * 16
    (codes / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SynthGenError, match="another EnCodec"):
        train(codes, tmp_path / "b", TrainConfig(model="synthgen", epochs=1), progress=False)


def test_pretrained_names_download_and_load_through_the_safe_path(tmp_path, monkeypatch):
    """The hub path (no network here: the download returns an exported tiny model's files, or
    a malicious one) reads both files with weights_only=True and never runs a pickle."""
    import huggingface_hub

    folder = export(SynthGen(SynthGenConfig(**TINY_SYNTHGEN)), tmp_path / "hub")
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        return str(source / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    source = folder
    model = SynthGen(SynthGenConfig(base="facebook/musicgen-small", use_chroma=False))
    assert calls == [("facebook/musicgen-small", "state_dict.bin"),
                     ("facebook/musicgen-small", "compression_state_dict.bin")]
    assert model.n_q == TINY_SYNTHGEN["n_q"] and MIX in model.conditioners
    source = tmp_path / "evil"
    source.mkdir()
    marker = tmp_path / "pwned"
    for name in ("state_dict.bin", "compression_state_dict.bin"):
        with open(source / name, "wb") as f:
            pickle.dump({"best_state": _Marker(str(marker)), "xp.cfg": ""}, f)
    with pytest.raises(CheckpointError, match="refused"):
        SynthGen(SynthGenConfig(base="facebook/musicgen-melody"))
    assert not marker.exists()


def test_demucs_chroma_keeps_audiocrafts_conditioner_and_feeds_it_the_mix_waveform():
    """musicgen-melody as released runs Demucs + chroma on the mix itself; offline we stand in
    a recording WaveformConditioner for audiocraft's ChromaStemConditioner."""
    from audiocraft.modules.conditioners import WaveformConditioner

    class RecordingStems(WaveformConditioner):
        def __init__(self):
            super().__init__(12, TINY_SYNTHGEN["dim"], "cpu")
            self.seen = []

        def _downsampling_factor(self):
            return 1

        def _get_wav_embedding(self, x):
            self.seen.append((x.wav.shape, x.sample_rate[0]))
            return torch.zeros(x.wav.shape[0], 3, 12)

    model = SynthGen(SynthGenConfig(**TINY_SYNTHGEN, use_chroma=False)).eval()
    model.conditioners[CHROMA] = stems = RecordingStems()
    model.native.add(CHROMA)
    model._fuse(CHROMA, "prepend")
    mix = 0.1 * torch.randn(1, 1, model.sample_rate)
    wav = model.mix_chroma(mix)
    assert wav.shape == (1, model.sample_rate)  # the waveform, not chroma frames
    model.generate_codes(model.encode_audio(mix), wav, "pad", top_k=10, cfg_coef=1.0)
    # one conditional and one nullified (classifier-free guidance) row, the mix at the model's rate
    assert stems.seen and stems.seen[0] == (torch.Size([2, 1, model.sample_rate]), model.sample_rate)
    with pytest.raises(SynthGenError, match="demucs_chroma"):
        from synthgen_lib.encode import encode

        encode("synthetic", "unused", {**TINY_SYNTHGEN, "demucs_chroma": True}, progress=False)


def test_synthgen_trains_under_torchrun_with_two_cpu_processes(tmp_path, synthgen_codes):
    """DDP (gloo): dropped conditions leave some conditioner weights without gradient in a
    step, which DDP must tolerate; both processes end at the same step with one checkpoint."""
    import textwrap

    script = tmp_path / "ddp_synthgen.py"
    script.write_text(textwrap.dedent(f"""
        import torch
        from synthgen_lib.train import TrainConfig, train
        torch.set_num_threads(1)
        cfg = TrainConfig(model="synthgen", epochs=1, batch_size=2, steps_per_epoch=3, warmup_steps=1)
        r = train({str(synthgen_codes[0])!r}, {str(tmp_path / 'run')!r}, cfg, {{"mix_dropout": 0.5}}, progress=False)
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        open({str(tmp_path)!r} + f"/rank{{rank}}.txt", "w").write(f"WORLD {{world}} STEP {{r.step}}")
    """))
    proc = torchrun(script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text() == "WORLD 2 STEP 3"
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train"]["step"] == 3
    assert isinstance(load_model(tmp_path / "run" / "best.pt"), SynthGen)
