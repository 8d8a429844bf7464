"""bolly-ray: turn films into subtitles with a Ray-distributed stage executor."""

__version__ = "0.1.0"
