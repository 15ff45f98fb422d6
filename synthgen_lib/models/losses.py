"""Losses shared by the waveform models."""
from __future__ import annotations

import torch

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def multi_resolution_stft_loss(estimate: torch.Tensor, target: torch.Tensor,
                               resolutions=STFT_RESOLUTIONS) -> torch.Tensor:
    """Spectral convergence + L1 log-magnitude, averaged over several (n_fft, hop) sizes.

    ``estimate`` and ``target`` are ``(..., samples)``.
    """
    est, tgt = estimate.reshape(-1, estimate.shape[-1]).float(), target.reshape(-1, target.shape[-1]).float()
    total = est.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=est.device)
        e = torch.stft(est, n_fft, hop, window=window, return_complex=True).abs()
        t = torch.stft(tgt, n_fft, hop, window=window, return_complex=True).abs()
        convergence = torch.linalg.vector_norm(t - e) / torch.linalg.vector_norm(t).clamp_min(1e-7)
        log_mag = (torch.log(e + 1e-7) - torch.log(t + 1e-7)).abs().mean()
        total = total + convergence + log_mag
    return total / len(resolutions)


def waveform_loss(estimate: torch.Tensor, target: torch.Tensor, stft_weight: float = 0.5) -> torch.Tensor:
    """L1 on samples (relative to the target's mean absolute level) plus weighted MR-STFT loss."""
    scale = target.abs().mean().clamp_min(1e-5)
    return (estimate - target).abs().mean() / scale + stft_weight * multi_resolution_stft_loss(estimate, target)
