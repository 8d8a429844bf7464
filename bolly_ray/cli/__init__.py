"""The command line: typer commands that validate their input once and call the layers
below; rich progress.
"""
