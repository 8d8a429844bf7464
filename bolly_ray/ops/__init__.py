"""Operations around runs: running a batch of job files, preparing jobs from films, the demo,
stage images and node images, models, hardware checks (doctor), status and voices.
"""
