"""resemblyzer's GE2E speaker embedding, its mel spectrogram computed by PyTorch.

resemblyzer computes the spectrogram with librosa, and librosa's first use builds numba
kernels (a zero-crossing ufunc compiled when `librosa.core` loads): numba and LLVM add about
290 MB and a few seconds to a process whose numba cache is empty or read-only, as in a fresh
install or a stage container. That took diarize over its 1 GB bound on a three-hour film.
The same spectrogram (25 ms periodic Hann windows every 10 ms, centred with zero padding,
power 2, 40 Slaney mel bands: librosa's defaults as resemblyzer asks for them) comes from
`torch.stft` and torchaudio's filterbank (57 MB). The partial utterances and the network
are resemblyzer's own; tests compare the embeddings with its `embed_utterance`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bolly_ray.stages.support.audio import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

WINDOW = SAMPLE_RATE * 25 // 1000  # resemblyzer's hparams: mel_window_length 25 ms
HOP = SAMPLE_RATE * 10 // 1000  # mel_window_step 10 ms
MEL_BANDS = 40  # mel_n_channels
PARTIALS_PER_S, MIN_COVERAGE = 1.3, 0.75  # embed_utterance's defaults


class VoiceEmbedder:
    """`embed(wav)`: the unit GE2E embedding of 16 kHz mono samples, as resemblyzer's
    `VoiceEncoder.embed_utterance` gives it."""

    def __init__(self, device: str) -> None:
        import torch
        from resemblyzer import VoiceEncoder
        from torchaudio.functional import melscale_fbanks

        self.encoder: Any = VoiceEncoder(device, verbose=False)
        self.device = torch.device(device)
        self.bands = melscale_fbanks(WINDOW // 2 + 1, 0.0, SAMPLE_RATE / 2, MEL_BANDS,
                                     SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        self.window = torch.hann_window(WINDOW, periodic=True)

    def mel(self, wav: np.ndarray) -> np.ndarray:
        """(frames, bands) power mel spectrogram, as resemblyzer's wav_to_mel_spectrogram."""
        import torch

        spectrum = torch.stft(torch.from_numpy(wav), WINDOW, HOP, window=self.window,
                              center=True, pad_mode="constant", return_complex=True)
        power = spectrum.abs() ** 2
        return (power.T @ self.bands).numpy()

    def embed(self, wav: np.ndarray) -> np.ndarray:
        import numpy as np
        import torch

        waves, mels = self.encoder.compute_partial_slices(len(wav), PARTIALS_PER_S,
                                                          MIN_COVERAGE)
        if waves[-1].stop >= len(wav):
            wav = np.pad(wav, (0, waves[-1].stop - len(wav)), "constant")
        mel = self.mel(np.ascontiguousarray(wav, dtype=np.float32))
        with torch.no_grad():
            partials = self.encoder(torch.from_numpy(np.array([mel[s] for s in mels]))
                                    .to(self.device)).cpu().numpy()
        mean = partials.mean(axis=0)
        return mean / np.linalg.norm(mean, 2)
