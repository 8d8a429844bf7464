"""The core: what a job, a stage graph and an attempt are (job model, DAG, wire types,
secrets, roots, hashing, languages) and what a machine offers (hardware profile, settings
fitted to it). Imports nothing else of bolly-ray but `bolly_ray.spec` and `bolly_ray.errors`,
which belong to this layer and stay where plugins import them.
"""
