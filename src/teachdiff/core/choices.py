"""The fixed lists of choices that several layers and the command line share, in one home.

Plain tuples with no imports, so that ``teachdiff --help`` can offer them without importing torch.
Each list's meaning lives with the code that acts on it: the model kinds with
:data:`teachdiff.methods.base.METHOD_MODULES`, the presets with
:data:`teachdiff.training.presets.PRESET_TABLE`, the precisions with :mod:`teachdiff.core.precision`.
"""

__all__ = ["MODEL_KINDS", "PRESETS", "PRECISIONS"]

MODEL_KINDS = ("ddpm", "care", "n2v", "pix2pix", "rcan")
PRESETS = ("quick", "colab", "paper")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
