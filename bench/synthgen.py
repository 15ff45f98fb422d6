"""SynthGen: training memory of the real MusicGen sizes against a 16 GB T4, and the encode and
training throughput of the offline tiny model.

    python -m bench.synthgen            # memory table + 3 x 10 s of encode + 10 training steps
    python -m bench.synthgen --quick    # the same tables from fewer measurements, for CI
    python -m bench.synthgen --measure  # on a GPU: the real sizes' LoRA + fp16 step, measured

``--measure`` builds each base SynthGen fine-tunes at its published size with random weights,
offline: the LM from audiocraft's own configuration (``musicgen_lm`` at the base's
``model_scale``, its text conditioner and fuser), the 32 kHz EnCodec from ``encodec_large_nq4_s640``,
and T5-base from its ``T5Config``, each through audiocraft's builders, with a word-hashing
tokenizer in place of T5's (whose vocabulary file is a download). SynthGen then adds its mix
conditioners and LoRA adapters as ``synthgen train`` does, and the script times training steps
(batch 4 x 10 s, fp16 autocast with a gradient scaler, AdamW) and reads the GPU's peak allocated
memory, beside the estimate above. ``--scale tiny`` runs the same code on a toy size (the test).

Memory: the LMs are built with audiocraft's own ``LMModel`` class on the ``meta`` device (shapes,
no weights, no download) at the published sizes, and the parameters counted; training memory
is then estimated as weights + gradients + AdamW state (trainable only) + activations + the
frozen T5 encoder and EnCodec + a CUDA context. Activations follow Korthikanti et al. (2022):
per layer and token ``34·d`` values without checkpointing (memory-efficient attention, as
MusicGen uses, so no ``seq²`` score term), ``d`` values per layer with checkpointing plus one
layer's worth recomputed. Batch 4 × 10 s windows (504 steps of 4 codebooks).
"""
from __future__ import annotations

import argparse
import sys
import time

from bench.common import machine, table, timed_steps

SIZES = {  # facebook/musicgen-*: the published LM shapes (MusicGen paper, audiocraft model_scale)
    "musicgen-small": {"dim": 1024, "num_heads": 16, "num_layers": 24, "cross_attention": True},
    "musicgen-melody": {"dim": 1536, "num_heads": 24, "num_layers": 48, "cross_attention": False},
}
N_Q, CARD = 4, 2048
T4_GB, CONTEXT_GB = 16.0, 0.6
BATCH, STEPS = 4, 504


def lm_on_meta(shape: dict):
    import torch

    from synthgen_lib.models import audiocraft_compat  # noqa: F401  (before audiocraft: xformers may be absent)
    from audiocraft.models.lm import LMModel
    from audiocraft.modules.codebooks_patterns import DelayedPatternProvider
    from audiocraft.modules.conditioners import ConditionFuser, ConditioningProvider

    fuser = ConditionFuser({"cross": ["description"] if shape["cross_attention"] else [], "prepend": [], "sum": [],
                            "input_interpolate": []})
    with torch.device("meta"):
        return LMModel(DelayedPatternProvider(N_Q), ConditioningProvider({}), fuser, n_q=N_Q, card=CARD,
                       dim=shape["dim"], num_heads=shape["num_heads"], num_layers=shape["num_layers"],
                       hidden_scale=4, norm_first=True, causal=True, cross_attention=shape["cross_attention"],
                       bias_proj=False)


def frozen_params() -> int:
    """The frozen parts, counted on ``meta``: T5-base's encoder and the 32 kHz EnCodec (SEANet
    with 64 filters, ratios 8-5-4-4, 2 LSTM layers, 128-d latent, 4 x 2048 codebooks)."""
    import torch

    from synthgen_lib.models import audiocraft_compat  # noqa: F401  (before audiocraft: xformers may be absent)
    from audiocraft.modules import SEANetDecoder, SEANetEncoder
    from transformers import T5Config, T5EncoderModel

    seanet = dict(channels=1, dimension=128, n_filters=64, ratios=[8, 5, 4, 4], n_residual_layers=1, lstm=2)
    with torch.device("meta"):
        parts = [T5EncoderModel(T5Config(d_model=768, d_ff=3072, num_layers=12, num_heads=12, vocab_size=32128)),
                 SEANetEncoder(**seanet), SEANetDecoder(**seanet)]
    return sum(p.numel() for m in parts for p in m.parameters()) + N_Q * CARD * 128


def memory_rows(lora_rank: int = 16) -> list[list]:
    from synthgen_lib.models.synthgen import _lora_targets

    rows, frozen_total = [], frozen_params()
    for name, shape in SIZES.items():
        lm = lm_on_meta(shape)
        d, layers = shape["dim"], shape["num_layers"]
        extra = 768 * d + d + N_Q * CARD * d + d * d + d  # T5 projection + our mix-token conditioner
        total = sum(p.numel() for p in lm.parameters()) + extra
        lora = sum(lora_rank * sum(getattr(m, n).shape) for m, n in _lora_targets(lm)) + N_Q * CARD * d + d * d + d
        for mode, trainable in (("full", total), (f"LoRA r={lora_rank}", lora)):
            for precision, act_bytes in (("fp32", 4), ("fp16 autocast", 2)):
                for ckpt in (False, True):
                    per_token = (d * layers + 34 * d) if ckpt else 34 * d * layers
                    activations = BATCH * STEPS * per_token * act_bytes
                    weights = total * 4 + (trainable * 2 if precision != "fp32" else 0)  # + autocast copies
                    state = trainable * (4 + 8)  # gradients + AdamW moments, fp32
                    frozen = frozen_total * 4
                    gb = (weights + state + activations + frozen) / 1e9 + CONTEXT_GB
                    rows.append([name, f"{total / 1e6:.0f}M", mode, f"{trainable / 1e6:.1f}M", precision,
                                 "yes" if ckpt else "no", gb, "yes" if gb < T4_GB else "no"])
    return rows


MEASURED = {  # the bases SynthGen fine-tunes: audiocraft's model_scale, and how each fuses its description
    "musicgen-small": {"dim": 1024, "num_heads": 16, "num_layers": 24, "text": "cross", "chroma": False},
    "musicgen-melody": {"dim": 1536, "num_heads": 24, "num_layers": 48, "text": "prepend", "chroma": True},
    "tiny": {"dim": 64, "num_heads": 4, "num_layers": 2, "text": "cross", "chroma": True},  # for the test
}
T5_BASE = {"d_model": 768, "d_ff": 3072, "num_layers": 12, "num_heads": 12, "d_kv": 64, "vocab_size": 32128}


def real_size_configs(name: str, device: str) -> tuple[dict, dict]:
    """audiocraft configurations of a MusicGen LM (``lm/default`` + ``musicgen_lm`` + its
    ``model_scale``, with its conditioner's text settings) and of the 32 kHz EnCodec
    (``encodec/default`` + ``encodec_large_nq4_s640``), as dictionaries for audiocraft's builders."""
    shape = MEASURED[name]
    lm = {"lm_model": "transformer_lm", "device": device, "dtype": "float32", "dataset": {"segment_duration": 10.0},
          "transformer_lm": {"dim": shape["dim"], "num_heads": shape["num_heads"], "num_layers": shape["num_layers"],
                             "hidden_scale": 4, "n_q": N_Q, "card": CARD, "dropout": 0.0, "emb_lr": None,
                             "activation": "gelu", "norm_first": True, "bias_ff": False, "bias_attn": False,
                             "bias_proj": False, "past_context": None, "causal": True, "custom": False,
                             "memory_efficient": True, "attention_as_float32": False, "layer_scale": None,
                             "positional_embedding": "sin", "xpos": False, "checkpointing": "none",
                             "weight_init": "gaussian", "depthwise_init": "current", "zero_bias_init": True,
                             "norm": "layer_norm", "cross_attention": False, "qk_layer_norm": False,
                             "qk_layer_norm_cross": False, "attention_dropout": None, "kv_repeat": 1,
                             "two_step_cfg": False},
          "codebooks_pattern": {"modeling": "delay", "delay": {"delays": list(range(N_Q)), "flatten_first": 0,
                                                               "empty_initial": 0}},
          "attribute_dropout": {}, "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
          "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [],
                    "prepend": ["description"] if shape["text"] == "prepend" else [],
                    "cross": ["description"] if shape["text"] == "cross" else [], "input_interpolate": []},
          # musicgen-melody's chroma conditioner (Demucs first) is replaced by SynthGen's own, so it is left out
          "conditioners": {"description": {"model": "t5", "t5": {"name": "t5-base", "finetune": False,
                                                                 "word_dropout": 0.3, "normalize_text": False}}}}
    codec = {"compression_model": "encodec", "device": device, "dtype": "float32",
             "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": 32000, "channels": 1,
                         "causal": False, "renormalize": False},
             "seanet": {"dimension": 128, "channels": 1, "causal": False, "n_filters": 64, "n_residual_layers": 1,
                        "ratios": [8, 5, 4, 4], "activation": "ELU", "activation_params": {"alpha": 1.0},
                        "norm": "weight_norm", "norm_params": {}, "kernel_size": 7, "residual_kernel_size": 3,
                        "last_kernel_size": 7, "dilation_base": 2, "pad_mode": "constant", "true_skip": True,
                        "compress": 2, "lstm": 2, "disable_norm_outer_blocks": 0,
                        "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                                    "final_activation_params": None}, "encoder": {}},
             "rvq": {"n_q": N_Q, "q_dropout": False, "bins": CARD, "decay": 0.99, "kmeans_init": False,
                     "kmeans_iters": 50, "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0,
                     "orthogonal_reg_active_codes_only": False}}
    if name == "tiny":
        codec["seanet"].update(n_filters=4, dimension=16, lstm=0)
    return lm, codec


class _WordTokenizer:
    """T5's tokenizer without its vocabulary file: words hashed into T5's vocabulary, an end
    token, padding; the same tensors (ids and attention mask) in the same shapes."""

    @classmethod
    def from_pretrained(cls, name: str) -> "_WordTokenizer":
        return cls()

    def __call__(self, texts: list[str], return_tensors: str = "pt", padding: bool = True):
        import zlib

        import torch
        from transformers import BatchEncoding

        rows = [[2 + zlib.crc32(w.encode()) % (T5_BASE["vocab_size"] - 2) for w in t.split()] + [1] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return BatchEncoding({"input_ids": ids, "attention_mask": mask})


class _RandomT5:
    """``T5EncoderModel.from_pretrained`` stand-in: T5-base's encoder at its published shape, random weights."""

    @staticmethod
    def from_pretrained(name: str):
        from transformers import T5Config, T5EncoderModel

        return T5EncoderModel(T5Config(**T5_BASE))


def real_size_synthgen(name: str, device: str, lora_rank: int = 16, checkpointing: bool = False):
    """A SynthGen model around a random-weight MusicGen of ``name``'s size, set up for training as
    ``synthgen train`` sets it up (our mix conditioners, LoRA of ``lora_rank``)."""
    from unittest import mock

    from omegaconf import OmegaConf

    from synthgen_lib.models import audiocraft_compat  # noqa: F401  (before audiocraft: xformers may be absent)
    from audiocraft.models import builders
    from audiocraft.modules import conditioners
    from synthgen_lib.models import synthgen_io
    from synthgen_lib.models.synthgen import SynthGen, SynthGenConfig

    lm_cfg, codec_cfg = real_size_configs(name, device)

    def build(c):
        lm = builders.get_lm_model(OmegaConf.create(lm_cfg))
        codec = builders.get_compression_model(OmegaConf.create(codec_cfg)).to(device)
        return lm, codec, lm_cfg, codec_cfg

    with mock.patch.object(conditioners, "T5Tokenizer", _WordTokenizer), \
            mock.patch.object(conditioners, "T5EncoderModel", _RandomT5), \
            mock.patch.object(synthgen_io, "build_tiny", build):
        config = SynthGenConfig(lora_rank=lora_rank, gradient_checkpointing=checkpointing,
                                use_chroma=MEASURED[name]["chroma"], window=10.0)
        model = SynthGen(config, device=device)
    return model.to(device).train()


def measured_step(name: str, device: str, checkpointing: bool, steps: int, batch: int = BATCH) -> dict:
    """Peak memory and time of LoRA + fp16 training steps of ``name`` (see the module doc)."""
    import gc

    import torch

    cuda = device.startswith("cuda")
    torch.manual_seed(0)
    model = real_size_synthgen(name, device, checkpointing=checkpointing)
    lm_params = sum(p.numel() for p in model.lm.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    wav = 0.1 * torch.randn(2 * batch, 1, int(10.0 * model.sample_rate), device=device)
    with torch.no_grad():
        codes = model.encode_audio(wav)  # the synth's tokens, then the mix's
        chroma = model.mix_chroma(wav[batch:])
    synth_codes, mix_codes = codes[:batch], codes[batch:]
    del wav
    if cuda:  # training reads cached tokens: the peak counts from here (the weights already loaded), not the encoding
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    descriptions = ["bright detuned saw lead, high register, with delay"] * batch
    step_s, loss = timed_steps(lambda i, loss_of=model.loss: loss_of(synth_codes, mix_codes, chroma, descriptions), opt,
                               steps, device, torch.float16)
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")
    result = {"lm_params": lm_params, "trainable": trainable, "step_s": step_s, "windows_per_s": batch / step_s,
              "peak_gb": peak, "loss": loss}
    del model, opt, codes
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def measured_rows(names: list[str], device: str, steps: int, batches: list[int]) -> list[list]:
    """One row per size, with and without checkpointing, at each batch size (the estimate is for
    batch 4 only)."""
    estimates = {(r[0], r[5]): r[6] for r in memory_rows() if r[2].startswith("LoRA") and r[4] == "fp16 autocast"}
    rows = []
    for name in names:
        for batch in batches:
            for checkpointing in (False, True):
                r = measured_step(name, device, checkpointing, steps, batch)
                estimate = estimates.get((name, "yes" if checkpointing else "no"), float("nan")) \
                    if batch == BATCH else float("nan")
                rows.append([name, f"{r['lm_params'] / 1e6:.1f}M", f"{r['trainable'] / 1e6:.1f}M", batch,
                             "yes" if checkpointing else "no", r["peak_gb"], estimate, r["step_s"], r["windows_per_s"],
                             f"{r['loss']:.2f}"])
                print(f"  {name}, batch {batch}, checkpointing {checkpointing}: {r}", file=sys.stderr, flush=True)
    return rows


def encode_throughput(windows: int) -> dict:
    import torch

    from synthgen_lib.data.synthetic import SyntheticSource
    from synthgen_lib.models.synthgen import SynthGen, SynthGenConfig

    model = SynthGen(SynthGenConfig()).eval()
    source = SyntheticSource(num_tracks=windows, seed=2, track_duration=10.0)
    audio = [source.load(t.name, model.sample_rate, 1) for t in source.tracks()]
    batch = torch.stack([a.mix for a in audio] + [a.synth for a in audio])
    model.encode_audio(batch[:1])  # warm-up
    t0 = time.perf_counter()
    model.encode_audio(batch)
    model.mix_chroma(batch[:windows])
    wall = time.perf_counter() - t0
    return {"seconds": 20.0 * windows, "wall": wall}


def train_throughput(steps: int) -> dict:
    import torch

    from synthgen_lib.models.synthgen import SynthGen, SynthGenConfig

    torch.manual_seed(0)
    model = SynthGen(SynthGenConfig()).train()
    frames = int(model.config.window * model.frame_rate)
    codes = torch.randint(model.card, (8, model.n_q, frames))
    chroma = torch.rand(8, 157, 12)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss = model.loss(codes, codes.roll(1, 0), chroma, ["synth"] * 8)
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall = time.perf_counter() - t0
    return {"step_s": wall / steps, "windows_per_s": 8 * steps / wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--measure", action="store_true", help="time and measure the real sizes' LoRA + fp16 "
                        "training step (needs a GPU)")
    parser.add_argument("--scale", choices=sorted(MEASURED), action="append",
                        help="with --measure: which sizes (default: musicgen-small and musicgen-melody)")
    parser.add_argument("--steps", type=int, default=10, help="with --measure: timed steps per size (at least 1)")
    parser.add_argument("--batch", type=int, action="append", help="with --measure: batch sizes (default 4 and 8)")
    args = parser.parse_args(argv)
    if args.steps < 1 or any(b < 1 for b in args.batch or []):
        parser.error("--steps and --batch must be at least 1")
    print(f"machine: {machine()}")
    if args.measure:
        import torch

        names = args.scale or ["musicgen-small", "musicgen-melody"]
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu" and set(names) != {"tiny"}:
            print("--measure needs a GPU for the real sizes (--scale tiny runs on the CPU)", file=sys.stderr)
            return 2
        print("\nSynthGen LoRA r=16 training step, measured (random weights at the published sizes, LoRA adapters "
              "counted in the LM; 10 s windows; fp16 autocast + gradient scaler; AdamW; peak from the first step, "
              "the encoding of the examples left out)")
        print(table(["model", "LM params", "trainable", "batch", "grad checkpointing", "peak GB", "est. GB",
                     "s per step", "windows per s", "loss"], measured_rows(names, device, args.steps, args.batch or [4, 8])))
        return 0
    print(f"\nSynthGen training memory, estimated (batch {BATCH} x 10 s windows; 16 GB T4)")
    print(table(["model", "LM params", "fine-tuning", "trainable", "precision", "grad checkpointing",
                 "est. GB", "fits T4"], memory_rows()))
    enc = encode_throughput(2 if args.quick else 6)
    tr = train_throughput(2 if args.quick else 10)
    print("\nTiny SynthGen on this machine (offline model: 16 kHz EnCodec, 2-layer LM)")
    print(table(["measure", "runs", "value", "unit"], [
        ["encode (mix + synth tokens, chroma)", int(enc["seconds"] // 20), enc["seconds"] / enc["wall"],
         "audio s per wall s"],
        ["training step (batch 8 x 10 s)", 2 if args.quick else 10, tr["windows_per_s"], "windows per s"],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
