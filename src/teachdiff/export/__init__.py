"""BioImage Model Zoo packages: a trained teachdiff model for Fiji (deepImageJ), napari and QuPath.

``teachdiff export MODEL --out FILE.zip`` (:func:`export_package`) writes a package of the
BioImage Model Zoo's model specification 0.5 for any method (DDPM, CARE, Noise2Void, UNet-RCAN,
pix2pix): ``pytorch_state_dict`` weights whose architecture is
:class:`teachdiff.export.network.PackagedModel` of the installed teachdiff, torchscript weights
where a trace reproduces them, the model's intensity normalisation as pre- and
post-processing, test tensors, a cover, the paper's citation, a licence and a README. Check a
package with ``bioimageio.core.test_model`` (or ``bioimageio test FILE.zip``).

Building packages needs the optional extra: ``pip install "teachdiff[bmz]"``
(``bioimageio.core``); running :class:`PackagedModel` needs only torch and teachdiff.
"""

import importlib

__all__ = ["ExportResult", "PackagedModel", "export_package"]

# Imported on first use (PEP 562): `teachdiff --help` imports this package's CLI, not torch.
_MODULE_OF = {"PackagedModel": "network", "ExportResult": "package", "export_package": "package"}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)

