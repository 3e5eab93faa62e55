"""Inference: the samplers run in batches and tiles, the memory budget, and whole images of any size
and bit depth restored with their uncertainty maps.
"""
