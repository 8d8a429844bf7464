"""Built-in stages. Installed as `bolly_ray.stages`; each module holds one stage."""

from bolly_ray.stages.demux import DemuxStage
from bolly_ray.stages.mux import MuxStage

from bolly_ray.spec import Stage

BUILTIN_STAGES: tuple[type[Stage], ...] = (DemuxStage, MuxStage)

__all__ = ["BUILTIN_STAGES"]
