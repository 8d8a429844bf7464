"""The runtime: how one attempt runs: in this process, its files in and out of a worker
(transfer, scratch), or inside a stage container (the container's entry point, the image
names a run resolves).
"""
