"""The magnitude-preserving conditional U-Net (MP-U-Net) of the paper (§3.3, §S7, Fig. S4).

The design follows Karras et al., "Analyzing and Improving the Training Dynamics of Diffusion
Models" (EDM2, CVPR 2024): every operation -- convolution, activation, sum, concatenation --
is scaled so that a unit-magnitude input gives a unit-magnitude output *in expectation*, and
weights are kept at unit norm by *forced weight normalisation*. Each primitive below is a few
lines that read like its formula; they are written from the formulas in the paper and SPEC.md,
not copied from the EDM2 code (which carries a non-commercial licence).

Conditioning (Palette/SR3 style): the network sees ``concat(x, y_t, ones)`` on channels, where x
is the low-quality input, y_t the noisy target and the constant ``ones`` channel (EDM2) gives the
first convolution a bias-like input. The noise level ``a = alpha_bar`` is embedded with random
Fourier features (Eq. 17).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "normalize",
    "mp_silu",
    "mp_sum",
    "mp_cat",
    "MPConv",
    "MPFourier",
    "Block",
    "UNetConfig",
    "MPUNet",
    "count_parameters",
    "magnitude_probe",
]


# ----------------------------------------------------------------------------------------------
# Magnitude-preserving primitives
# ----------------------------------------------------------------------------------------------


def normalize(x: torch.Tensor, dim=None, eps: float = 1e-4) -> torch.Tensor:
    r"""Scale each unit of ``x`` to unit RMS:  x / (eps + ||x|| \sqrt{n / N}).

    ``||x||`` is taken over ``dim`` (default: all but the first axis, i.e. per output unit of
    a weight tensor), n = number of norms, N = number of elements, so ``||x|| sqrt(n/N)`` is the
    RMS of one unit. ``eps`` keeps an all-zero unit finite.
    """
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU divided by 0.596, the RMS of silu(z) for z ~ N(0, 1): unit in, unit out."""
    return F.silu(x) / 0.596


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    r"""Blend two unit-magnitude tensors:  ((1 - t) a + t b) / \sqrt{(1 - t)^2 + t^2}."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    r"""Concatenate so that the result has unit magnitude and b contributes with weight t.

    C = \sqrt{(N_a + N_b) / ((1 - t)^2 + t^2)};  result = [a C (1 - t) / \sqrt{N_a},  b C t / \sqrt{N_b}],
    with N_a, N_b the sizes of a and b along ``dim``.
    """
    n_a, n_b = a.shape[dim], b.shape[dim]
    c = math.sqrt((n_a + n_b) / ((1 - t) ** 2 + t**2))
    return torch.cat([a * (c / math.sqrt(n_a) * (1 - t)), b * (c / math.sqrt(n_b) * t)], dim=dim)


class MPFourier(nn.Module):
    r"""Random Fourier features of the noise level (Eq. 17):  \sqrt{2} cos(2\pi (f a + \varphi)).

    f ~ N(0, 1) and phi ~ U(0, 1) are drawn once and kept as buffers (not learned); the
    factor sqrt(2) gives the features unit RMS.
    """

    def __init__(self, num_channels: int, bandwidth: float = 1.0):
        super().__init__()
        self.register_buffer("freqs", 2 * np.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer("phases", 2 * np.pi * torch.rand(num_channels))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        y = a.to(torch.float32).outer(self.freqs.to(torch.float32)) + self.phases.to(torch.float32)
        return (y.cos() * np.sqrt(2)).to(a.dtype)


class MPConv(nn.Module):
    """Convolution (or linear layer when ``kernel=()``) with forced weight normalisation.

    The stored weight ``w`` is re-normalised in place to unit RMS per output unit at every
    training forward (no gradient flows through that step), so the optimizer can never grow
    it. The weight actually used is ``normalize(w) * gain / sqrt(fan_in)``: unit norm per output
    unit, hence unit-variance in -> unit-variance out for uncorrelated inputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, ...] = ()):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        w = self.weight.to(torch.float32)
        if self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(w))  # forced weight normalisation
        fan_in = w[0].numel()
        w = normalize(w) * (gain / math.sqrt(fan_in))  # keeps the gradient orthogonal to w
        w = w.to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=w.shape[-1] // 2)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel={tuple(self.weight.shape[2:])}"


def resample(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Fixed-filter resampling: 2x2 average pooling ('down'), nearest 2x upsampling ('up').

    These are the strided and transposed convolutions of Fig. S4 with the fixed box filter
    [1, 1] of EDM2; they have no parameters.
    """
    if mode == "down":
        return F.avg_pool2d(x, 2)
    if mode == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return x


# ----------------------------------------------------------------------------------------------
# The U-Net block (EncD / EncA / DecD / DecA of Fig. S4)
# ----------------------------------------------------------------------------------------------


class Block(nn.Module):
    """One encoder or decoder block.

    Main path: optional resampling; in the encoder a 1x1 conv when the width changes followed
    by pixel normalisation. Residual branch: mp_silu -> conv3x3 -> modulation by
    ``1 + emb_gain * linear(emb)`` -> mp_silu -> dropout -> conv3x3, merged with
    ``mp_sum(t=res_balance)``. Optional cosine self-attention (q, k, v pixel-normalised) merged
    with ``mp_sum(t=attn_balance)``. Activations are clipped to +-clip_act for fp16 safety.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        flavor: str = "enc",
        resample_mode: str = "keep",
        attention: bool = False,
        channels_per_head: int = 32,
        dropout: float = 0.0,
        res_balance: float = 0.3,
        attn_balance: float = 0.3,
        clip_act: float | None = 256,
    ):
        super().__init__()
        if flavor not in ("enc", "dec"):
            raise ValueError(f"flavor must be 'enc' or 'dec', got {flavor!r}")
        self.flavor = flavor
        self.resample_mode = resample_mode
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_heads = out_channels // channels_per_head if attention else 0
        self.dropout = dropout
        self.res_balance, self.attn_balance, self.clip_act = res_balance, attn_balance, clip_act
        self.emb_gain = nn.Parameter(torch.zeros([]))
        conv_in = out_channels if flavor == "enc" else in_channels
        self.conv_res0 = MPConv(conv_in, out_channels, kernel=(3, 3))
        self.emb_linear = MPConv(emb_channels, out_channels)
        self.conv_res1 = MPConv(out_channels, out_channels, kernel=(3, 3))
        self.conv_skip = MPConv(in_channels, out_channels, kernel=(1, 1)) if in_channels != out_channels else None
        if self.num_heads:
            self.attn_qkv = MPConv(out_channels, out_channels * 3, kernel=(1, 1))
            self.attn_proj = MPConv(out_channels, out_channels, kernel=(1, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = resample(x, self.resample_mode)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm: unit RMS over channels at every pixel

        y = self.conv_res0(mp_silu(x))
        modulation = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = mp_silu(y * modulation[:, :, None, None].to(y.dtype))
        y = F.dropout(y, p=self.dropout, training=self.training)
        y = self.conv_res1(y)

        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, t=self.res_balance)

        if self.num_heads:
            x = mp_sum(x, self._attention(x), t=self.attn_balance)
        if self.clip_act is not None:
            x = x.clip(-self.clip_act, self.clip_act)
        return x

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.attn_qkv(x).reshape(n, self.num_heads, c // self.num_heads, 3, h * w)
        q, k, v = normalize(qkv, dim=2).unbind(3)  # cosine attention: unit-norm q, k, v
        weights = torch.einsum("nhcq,nhck->nhqk", q, k / math.sqrt(q.shape[2])).softmax(dim=3)
        y = torch.einsum("nhqk,nhck->nhcq", weights, v)
        return self.attn_proj(y.reshape(n, c, h, w))


# ----------------------------------------------------------------------------------------------
# Configuration and the U-Net
# ----------------------------------------------------------------------------------------------


@dataclass
class UNetConfig:
    """Architecture of the MP-U-Net. ``UNetConfig.paper()`` is the paper's network.

    ``image_size`` is the training patch size; it decides at which levels attention sits
    (``attn_resolutions`` are resolutions, not level indices). The built model then accepts any
    image whose sides are divisible by ``2 ** (levels - 1)``.

    ``attn_placement`` says which blocks at those resolutions get self-attention:

    - ``"bottleneck"`` (default): one attention layer, in the first decoder block of the lowest
      level, when that level's resolution is in ``attn_resolutions``. With the paper's settings
      this gives 64.07 M parameters, the size of the authors' released model (about 64.1 M).
    - ``"all"``: every encoder and decoder block at those resolutions, plus the bottleneck, as in
      EDM2's own U-Net; with the paper's settings 69.3 M parameters (5 more 512-wide attention
      layers of 1.05 M each), which does not match the released model.

    ``channels_per_head = 32`` is the released configuration's setting: 512 / 32 = 16 heads at
    the bottleneck. The paper's text says "32 heads"; the head count does not change the number
    of parameters. The paper itself gives no parameter count.
    """

    image_size: int = 256
    cond_channels: int = 1  # x: the low-quality input
    target_channels: int = 1  # y_t in, predicted noise out
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (32,)
    attn_placement: str = "bottleneck"
    channels_per_head: int = 32
    dropout: float = 0.2
    res_balance: float = 0.3
    attn_balance: float = 0.3
    concat_balance: float = 0.5
    clip_act: float | None = 256

    def __post_init__(self):
        """Refuse a configuration that cannot build a working network, naming the field."""
        positive = {"image_size": self.image_size, "cond_channels": self.cond_channels,
                    "target_channels": self.target_channels, "channels": self.channels,
                    "num_blocks": self.num_blocks, "channels_per_head": self.channels_per_head}
        for name, value in positive.items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"UNetConfig.{name} must be a positive integer, got {value!r}.")
        if not self.channel_mult or any(not isinstance(m, (int, np.integer)) or m < 1 for m in self.channel_mult):
            raise ValueError(f"UNetConfig.channel_mult must be a non-empty tuple of positive integers (the width "
                             f"of each level in units of channels, e.g. (1, 2, 4, 8)), got {self.channel_mult!r}.")
        if self.attn_placement not in ("bottleneck", "all"):
            raise ValueError(f"attn_placement must be 'bottleneck' or 'all', got {self.attn_placement!r}.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"UNetConfig.dropout must lie in [0, 1), got {self.dropout!r}.")
        for name in ("res_balance", "attn_balance", "concat_balance"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"UNetConfig.{name} is a blend weight and must lie in [0, 1], "
                                 f"got {getattr(self, name)!r}.")
        if self.clip_act is not None and not self.clip_act > 0:
            raise ValueError(f"UNetConfig.clip_act must be positive or None (no clipping), got {self.clip_act!r}.")

    @classmethod
    def paper(cls) -> "UNetConfig":
        """The paper's network: 64 channels, [1, 2, 4, 8], 2 blocks, attention at 32x32."""
        return cls()

    @classmethod
    def small(cls) -> "UNetConfig":
        """A CPU-trainable network (3.9 M parameters) for 64x64 patches, attention at 16x16."""
        return cls(image_size=64, channels=32, channel_mult=(1, 2, 4), num_blocks=2,
                   attn_resolutions=(16,), dropout=0.1)

    @classmethod
    def tiny(cls) -> "UNetConfig":
        """The smallest useful network (0.29 M parameters) for tests and quick mode at 32-64 px."""
        return cls(image_size=64, channels=16, channel_mult=(1, 2, 2), num_blocks=1,
                   attn_resolutions=(16,), channels_per_head=16, dropout=0.0)

    @property
    def levels(self) -> int:
        return len(self.channel_mult)

    @property
    def in_channels(self) -> int:
        return self.cond_channels + self.target_channels

    @property
    def size_multiple(self) -> int:
        """Image sides must be divisible by this (one halving per level below the first)."""
        return 2 ** (self.levels - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("channel_mult", "attn_resolutions"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


class OutputConv(nn.Module):
    """The last 3x3 MPConv with a learned gain that starts at 0 (the first prediction is 0)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = MPConv(in_channels, out_channels, kernel=(3, 3))
        self.gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, gain=self.gain)


class MPUNet(nn.Module):
    """The conditional MP-U-Net: ``model(x, y_t, noise_level) -> predicted noise``.

    x: (N, cond_channels, H, W) low-quality input in [-1, 1], standardised inside with the
    ``cond_mean``/``cond_std`` buffers (training-set statistics, saved with the weights); y_t: (N, target_channels, H, W)
    noisy target; noise_level: alpha_bar (the continuous noise level gamma), shape (N,) or a
    scalar. Returns a tensor of y_t's shape.

    Encoder: at level 0 a 3x3 conv, then ``num_blocks`` blocks per level; every later level
    starts with a down-sampling block. Decoder, from the bottom: two blocks (the first with
    attention, see ``attn_placement``) at the lowest level, an up-sampling block at the others, then ``num_blocks + 1``
    blocks each fed one skip connection through ``mp_cat``.
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        config = config or UNetConfig.paper()
        self.config = c = config
        if c.image_size % c.size_multiple:
            raise ValueError(
                f"UNetConfig.image_size={c.image_size} is not divisible by 2**(levels-1)="
                f"{c.size_multiple}; choose a patch size that is a multiple of {c.size_multiple}."
            )
        widths = [c.channels * m for m in c.channel_mult]
        noise_channels, emb_channels = widths[0], max(widths)
        block_kwargs = dict(channels_per_head=c.channels_per_head, dropout=c.dropout,
                            res_balance=c.res_balance, attn_balance=c.attn_balance, clip_act=c.clip_act)

        # Statistics of the condition x over the training set (set by DiffusionMethod.calibrate):
        # the MP layers expect unit-magnitude inputs, but a low-dose image scaled by its bit depth
        # can have a standard deviation of 0.02 and would be almost invisible to the network.
        self.register_buffer("cond_mean", torch.zeros(()))
        self.register_buffer("cond_std", torch.ones(()))
        self.emb_fourier = MPFourier(noise_channels)
        self.emb_noise = MPConv(noise_channels, emb_channels)

        def has_attention(res: int) -> bool:
            return c.attn_placement == "all" and res in c.attn_resolutions

        self.enc = nn.ModuleDict()
        width = c.in_channels + 1  # + the constant "ones" channel
        for level, level_width in enumerate(widths):
            res = c.image_size >> level
            if level == 0:
                self.enc[f"{res}x{res}_conv"] = MPConv(width, level_width, kernel=(3, 3))
                width = level_width
            else:
                self.enc[f"{res}x{res}_down"] = Block(width, width, emb_channels, "enc", "down", **block_kwargs)
            for i in range(c.num_blocks):
                self.enc[f"{res}x{res}_block{i}"] = Block(
                    width, level_width, emb_channels, "enc", attention=has_attention(res), **block_kwargs)
                width = level_width
        skip_widths = [b.out_channels for b in self.enc.values()]

        self.dec = nn.ModuleDict()
        for level, level_width in reversed(list(enumerate(widths))):
            res = c.image_size >> level
            if level == c.levels - 1:
                bottleneck_attention = res in c.attn_resolutions or c.attn_placement == "all"
                self.dec[f"{res}x{res}_in0"] = Block(width, width, emb_channels, "dec",
                                                     attention=bottleneck_attention, **block_kwargs)
                self.dec[f"{res}x{res}_in1"] = Block(width, width, emb_channels, "dec", **block_kwargs)
            else:
                self.dec[f"{res}x{res}_up"] = Block(width, width, emb_channels, "dec", "up", **block_kwargs)
            for i in range(c.num_blocks + 1):
                self.dec[f"{res}x{res}_block{i}"] = Block(
                    width + skip_widths.pop(), level_width, emb_channels, "dec",
                    attention=has_attention(res), **block_kwargs)
                width = level_width
        self.out_conv = OutputConv(width, c.target_channels)

    def forward(self, x: torch.Tensor, y_t: torch.Tensor, noise_level) -> torch.Tensor:
        noise_level = self._check_inputs(x, y_t, noise_level)
        emb = mp_silu(self.emb_noise(self.emb_fourier(noise_level)))

        x = (x - self.cond_mean.to(x.dtype)) / self.cond_std.to(x.dtype)
        h = torch.cat([x, y_t, torch.ones_like(x[:, :1])], dim=1)
        skips = []
        for name, block in self.enc.items():
            h = block(h) if name.endswith("_conv") else block(h, emb)
            skips.append(h)
        for name, block in self.dec.items():
            if "_block" in name:
                h = mp_cat(h, skips.pop(), t=self.config.concat_balance)
            h = block(h, emb)
        return self.out_conv(h)

    def _check_inputs(self, x, y_t, noise_level) -> torch.Tensor:
        """Turn every predictable misuse into a ValueError that says what to do."""
        c = self.config
        for name, t, channels in (("x", x, c.cond_channels), ("y_t", y_t, c.target_channels)):
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
            if not t.is_floating_point():
                raise ValueError(
                    f"{name} has integer dtype {t.dtype}; the network expects floats in [-1, 1]. "
                    "Scale your images first, e.g. teachdiff.data.to_model_range(img, bit_depth).")
            if t.ndim != 4:
                raise ValueError(
                    f"{name} must have shape (N, C, H, W), got {tuple(t.shape)}. "
                    "Add the missing axes, e.g. img[None, None] for a single 2-D image.")
            if t.shape[1] != channels:
                raise ValueError(
                    f"{name} has {t.shape[1]} channels but this model expects {channels} "
                    f"(UNetConfig.{'cond' if name == 'x' else 'target'}_channels). Grayscale microscopy "
                    "images have one channel: pass img[:, :1] or convert RGB to gray.")
        if x.shape[0] != y_t.shape[0] or x.shape[2:] != y_t.shape[2:]:
            raise ValueError(
                f"x {tuple(x.shape)} and y_t {tuple(y_t.shape)} must have the same batch size and "
                "height/width: they are the input and the target of the same image pair.")
        h, w = x.shape[2:]
        m = c.size_multiple
        if h % m or w % m:
            raise ValueError(
                f"image size {h}x{w} is not divisible by {m} (2**(levels-1) for this U-Net); pad or "
                f"crop to a multiple of {m}, or use teachdiff.inference.restore's tiled inference.")
        if torch.float64 in (x.dtype, y_t.dtype):
            raise ValueError(
                f"x and y_t are {x.dtype} / {y_t.dtype}, but the network computes in float32 (or bf16/fp16 under "
                "autocast); cast the inputs with x.float() (NumPy images become float64 tensors by default).")
        if not torch.isfinite(x).all() or not torch.isfinite(y_t).all():
            raise ValueError("x or y_t contains NaN or Inf; check the input image and its scaling.")
        noise_level = torch.as_tensor(noise_level, dtype=x.dtype, device=x.device)
        if noise_level.ndim == 0:
            noise_level = noise_level.expand(x.shape[0])
        if noise_level.shape != (x.shape[0],):
            raise ValueError(
                f"noise_level must be a scalar or have shape ({x.shape[0]},), got {tuple(noise_level.shape)}.")
        return noise_level


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; buffers such as the Fourier frequencies do not count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def magnitude_probe(model: MPUNet, image_size: int | None = None, batch_size: int = 2,
                    noise_level: float = 0.5, seed: int = 0) -> dict[str, float]:
    """RMS of the activations of every block for unit-variance inputs (hook-based).

    Returns an ordered dict ``{module name: RMS of its output}`` covering the Fourier embedding,
    every encoder and decoder block and the output convolution *at unit gain* (its learned gain
    starts at 0, which would hide the magnitude of what reaches it). A magnitude-preserving
    network keeps every value close to 1 at initialisation.
    """
    size = image_size or model.config.image_size
    g = torch.Generator().manual_seed(seed)
    c = model.config
    device = next(model.parameters()).device
    x = torch.randn(batch_size, c.cond_channels, size, size, generator=g).to(device)
    y_t = torch.randn(batch_size, c.target_channels, size, size, generator=g).to(device)
    rms: dict[str, float] = {}

    def record(name):
        def hook(_module, _inputs, output):
            rms[name] = output.float().square().mean().sqrt().item()
        return hook

    targets = [("emb_fourier", model.emb_fourier)]
    targets += [(f"enc.{n}", m) for n, m in model.enc.items()]
    targets += [(f"dec.{n}", m) for n, m in model.dec.items()]
    handles = [m.register_forward_hook(record(n)) for n, m in targets]

    def unit_gain_output(_module, inputs, _output):
        rms["out_conv (gain 1)"] = model.out_conv.conv(inputs[0]).float().square().mean().sqrt().item()

    handles.append(model.out_conv.register_forward_hook(unit_gain_output))
    was_training = model.training
    model.eval()
    try:
        model(x, y_t, torch.full((batch_size,), noise_level))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rms
