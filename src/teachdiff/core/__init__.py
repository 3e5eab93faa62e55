"""The core: the diffusion maths, the MP-U-Net, the one [-1, 1] <-> grey-level conversion, position-keyed
noise, tiling, and the runtime helpers (precision, allocator, progress, capping). Imports nothing above it.
"""
