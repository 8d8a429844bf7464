"""The engine: one job's run on disk, whatever executes it: the stage registry, the job
session (lock, selection, cache keys), the job folder and its atomic store, the manifest and
its run record, events and logs, the run report. Knows no backend.
"""
