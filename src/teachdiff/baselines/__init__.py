"""The paper's benchmark models, re-implemented in PyTorch on the shared trainer (paper §S3).

=================  ===================================  ======================  ==========================
``--model``        class                                learns from             source followed
=================  ===================================  ======================  ==========================
``care``           :class:`~.care.CARE`                 pairs (x, y), MAE       CSBDeep (Weigert 2018)
``n2v``            :class:`~.n2v.Noise2Void`            noisy x only            n2v (Krull 2019)
``pix2pix``        :class:`~.pix2pix.Pix2Pix`           pairs, GAN + 100 L1     pix2pix (Isola 2017)
``rcan``           :class:`~.rcan.UNetRCAN`             pairs, RMSE + edges     UNet-RCAN (Ebrahimi 2023)
=================  ===================================  ======================  ==========================

Each is a :class:`teachdiff.methods.RestorationMethod`: ``teachdiff.train.train`` trains it,
``teachdiff.train.load_method`` loads it, ``method.restore(x)`` restores (N, 1, H, W) images in
[-1, 1] of any size. ``Method.train_preset(dataset, "paper" | "quick")`` gives the paper's settings
or a CPU-sized run. :mod:`.classical` adds training-free Gaussian and non-local-means filters.

    from teachdiff.train import train, train_preset
    cfg, model_cfg = train_preset("synthetic-zebrafish", "quick", model="n2v")
    result = train(cfg, model_cfg, out_dir="runs/n2v")
"""

from teachdiff.baselines.care import CARE, CAREConfig, CSBDeepUNet
from teachdiff.baselines.classical import GaussianFilter, NonLocalMeans, gaussian_restore, nlm_restore
from teachdiff.baselines.n2v import N2VConfig, Noise2Void
from teachdiff.baselines.pix2pix import PatchDiscriminator, Pix2Pix, Pix2PixConfig, UNetGenerator, receptive_field
from teachdiff.baselines.rcan import RCANConfig, UNetRCAN, UNetRCANNetwork

__all__ = [
    "CARE", "CAREConfig", "CSBDeepUNet",
    "Noise2Void", "N2VConfig",
    "Pix2Pix", "Pix2PixConfig", "UNetGenerator", "PatchDiscriminator", "receptive_field",
    "UNetRCAN", "RCANConfig", "UNetRCANNetwork",
    "GaussianFilter", "NonLocalMeans", "gaussian_restore", "nlm_restore",
]
