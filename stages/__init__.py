"""Built-in stages. Installed as `bolly_ray.stages`; each module holds one stage."""

from bolly_ray.spec import Stage
from bolly_ray.stages.demux import DemuxStage
from bolly_ray.stages.mux import MuxStage
from bolly_ray.stages.subtitles import SubtitlesStage

BUILTIN_STAGES: tuple[type[Stage], ...] = (DemuxStage, SubtitlesStage, MuxStage)

__all__ = ["BUILTIN_STAGES"]
