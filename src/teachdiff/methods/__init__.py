"""The restoration methods: the conditional DDPM and the paper's benchmark models (paper §S3).

Every method is a :class:`~.base.RestorationMethod` (``restore(x)`` on (N, 1, H, W) images in
[-1, 1]); :func:`~.base.build_method` makes one from its kind, the one list of kinds
(:data:`~.base.METHOD_MODULES`). The DDPM is :class:`~.ddpm.DiffusionMethod`; the baselines:

=================  ===================================  ======================  ==========================
``--model``        class                                learns from             source followed
=================  ===================================  ======================  ==========================
``care``           :class:`~.care.CARE`                 pairs (x, y), MAE       CSBDeep (Weigert 2018)
``n2v``            :class:`~.n2v.Noise2Void`            noisy x only            n2v (Krull 2019)
``pix2pix``        :class:`~.pix2pix.Pix2Pix`           pairs, GAN + 100 L1     pix2pix (Isola 2017)
``rcan``           :class:`~.rcan.UNetRCAN`             pairs, RMSE + edges     UNet-RCAN (Ebrahimi 2023)
=================  ===================================  ======================  ==========================

Each is a :class:`teachdiff.methods.base.RestorationMethod`: ``teachdiff.training.loop.train`` trains it,
``teachdiff.store.resolve.load_method`` loads it, ``method.restore(x)`` restores (N, 1, H, W) images in
[-1, 1] of any size. ``teachdiff.training.presets.train_preset(dataset, preset, model)`` gives the
paper's settings or a CPU-sized run. :mod:`.classical` adds training-free Gaussian and non-local-means
filters.

    from teachdiff.training.loop import train
    from teachdiff.training.presets import train_preset
    cfg, model_cfg = train_preset("synthetic-zebrafish", "quick", model="n2v")
    result = train(cfg, model_cfg, out_dir="runs/n2v")
"""

from teachdiff.methods.base import RestorationMethod, build_method, input_statistics, method_class
from teachdiff.methods.care import CARE, CAREConfig, CSBDeepUNet
from teachdiff.methods.classical import GaussianFilter, NonLocalMeans, gaussian_restore, nlm_restore
from teachdiff.methods.n2v import N2VConfig, Noise2Void
from teachdiff.methods.pix2pix import PatchDiscriminator, Pix2Pix, Pix2PixConfig, UNetGenerator, receptive_field
from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod
from teachdiff.methods.rcan import RCANConfig, UNetRCAN, UNetRCANNetwork

__all__ = [
    "RestorationMethod", "build_method", "method_class", "input_statistics",
    "DiffusionMethod", "DiffusionConfig",
    "CARE", "CAREConfig", "CSBDeepUNet",
    "Noise2Void", "N2VConfig",
    "Pix2Pix", "Pix2PixConfig", "UNetGenerator", "PatchDiscriminator", "receptive_field",
    "UNetRCAN", "RCANConfig", "UNetRCANNetwork",
    "GaussianFilter", "NonLocalMeans", "gaussian_restore", "nlm_restore",
]
