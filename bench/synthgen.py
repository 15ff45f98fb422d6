"""SynthGen: training memory of the real MusicGen sizes against a 16 GB T4, and the encode and
training throughput of the offline tiny model.

    python -m bench.synthgen            # memory table + 3 x 10 s of encode + 10 training steps
    python -m bench.synthgen --quick    # the same tables from fewer measurements, for CI

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

from bench.common import machine, table

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
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
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
