"""What stages share that is no stage: audio and media reading, devices, GPU memory,
the models shipped inside packages.
"""
