"""BioImage Model Zoo packages: a trained teachdiff model for Fiji (deepImageJ), napari and QuPath.

``teachdiff export MODEL --out FILE.zip`` (:func:`export_package`) writes a package of the
BioImage Model Zoo's model specification 0.5 for any method (DDPM, CARE, Noise2Void, UNet-RCAN,
pix2pix): ``pytorch_state_dict`` weights whose architecture is
:class:`teachdiff.bmz.network.PackagedModel` of the installed teachdiff, torchscript weights
where a trace reproduces them, the model's intensity normalisation as pre- and
post-processing, test tensors, a cover, the paper's citation, a licence and a README. Check a
package with ``bioimageio.core.test_model`` (or ``bioimageio test FILE.zip``).

Building packages needs the optional extra: ``pip install "teachdiff[bmz]"``
(``bioimageio.core``); running :class:`PackagedModel` needs only torch and teachdiff.
"""

from teachdiff.bmz.network import PackagedModel
from teachdiff.bmz.package import ExportResult, export_package

__all__ = ["ExportResult", "PackagedModel", "export_package"]
