"""`bolly-ray serve`: the pipeline as a long-running HTTP service (Bazarr's Whisper protocol,
a jobs API, watch folders, media-server webhooks, a status page) over one executor."""
