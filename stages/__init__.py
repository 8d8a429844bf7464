"""Built-in stages. Installed as `bolly_ray.stages`; each module holds one stage."""

from bolly_ray.spec import Stage
from bolly_ray.stages.align import AlignStage
from bolly_ray.stages.asr import AsrStage
from bolly_ray.stages.demux import DemuxStage
from bolly_ray.stages.diarize import DiarizeStage
from bolly_ray.stages.mux import MuxStage
from bolly_ray.stages.speakers import SpeakersStage
from bolly_ray.stages.subtitles import SubtitlesStage
from bolly_ray.stages.vad import VadStage

BUILTIN_STAGES: tuple[type[Stage], ...] = (
    DemuxStage, VadStage, AsrStage, DiarizeStage, AlignStage, SpeakersStage, SubtitlesStage,
    MuxStage)

__all__ = ["BUILTIN_STAGES"]
