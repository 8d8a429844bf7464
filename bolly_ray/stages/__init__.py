"""Built-in stages, one module each; formats/ holds the artifacts they hand each other,
support/ the code they share."""

from bolly_ray.spec import Stage
from bolly_ray.stages.align import AlignStage
from bolly_ray.stages.asr import AsrStage
from bolly_ray.stages.demux import DemuxStage
from bolly_ray.stages.diarize import DiarizeStage
from bolly_ray.stages.filter import FilterStage
from bolly_ray.stages.glossary import GlossaryStage
from bolly_ray.stages.lyrics import LyricsStage
from bolly_ray.stages.mux import MuxStage
from bolly_ray.stages.ner import NerStage
from bolly_ray.stages.speakers import SpeakersStage
from bolly_ray.stages.subtitles import SubtitlesStage
from bolly_ray.stages.tmdb import TmdbStage
from bolly_ray.stages.translate import TranslateStage
from bolly_ray.stages.vad import VadStage

BUILTIN_STAGES: tuple[type[Stage], ...] = (
    DemuxStage, TmdbStage, GlossaryStage, VadStage, AsrStage, DiarizeStage, AlignStage,
    SpeakersStage, FilterStage, NerStage, LyricsStage, TranslateStage, SubtitlesStage, MuxStage)

__all__ = ["BUILTIN_STAGES"]
