"""Training: :class:`~.config.TrainConfig`, the presets (one table), the loop (one step, validate,
checkpoint), the benchmark's protocol, and train-or-load for the chapters.
"""
