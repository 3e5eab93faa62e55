"""Write a BioImage Model Zoo package (model spec 0.5) of a trained teachdiff model.

What goes into ``FILE.zip`` (:func:`export_package`):

- ``weights.pt``: the state dict of :class:`teachdiff.export.network.PackagedModel`, whose
  architecture the package names as ``teachdiff.export.network:PackagedModel`` with the method's
  configuration as keyword arguments (the installed teachdiff builds it; ``environment.yaml``
  says how to install it); ``weights.torchscript``, a trace of the same module, only when the
  trace, made to follow its input's device, reproduces the module on another batch size and
  tile shape than it was traced with;
- the normalisation the model was trained with, as the spec's operations: a raw capture goes in,
  ``scale_linear`` maps it to [-1, 1] (:class:`teachdiff.data.folder.Normalization`,
  :math:`x \mapsto g x + o`), and ``clip`` to [-1, 1] plus ``scale_linear`` map each output back
  to the capture's intensity scale, exactly as ``teachdiff restore`` writes its TIFFs;
- tiling: inputs of ``tile + n * step`` pixels per side (``tile`` the training patch size for the
  DDPM, 64 for CARE, Noise2Void and UNet-RCAN; pix2pix's generator takes only its own size) and a
  halo of half ``teachdiff restore``'s default overlap, so a consumer that tiles with it overlaps
  tiles as ``restore`` does;
- a test input (a crop of one tile from a raw capture) and the outputs this module computes for
  it, a cover made from that restoration, the paper's citation, a licence, and a README that
  says what the model was trained on, for what data, at what cost per tile, and what it must
  not be trusted for.

The DDPM's package returns DDPM-avg of :data:`teachdiff.inference.sampling.FAST_SAMPLING` (80 network calls
per tile) and, as a second output, the per-pixel standard deviation of the samples, on the
capture's scale; both are deterministic for the seed the package declares.

``bioimageio.spec`` is imported only here, on export (the ``[bmz]`` extra). The package
names no URL: validating one would need the network (bioimageio.spec checks that URLs answer).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch

import teachdiff
from teachdiff.core.errors import CommandError
from teachdiff.core.paper import METHOD_LABELS as LABELS
from teachdiff.core.tiling import default_overlap
from teachdiff.data.folder import Normalization
from teachdiff.export.capture import _brightest_crop, _check_capture, sample_capture
from teachdiff.export.network import PackagedModel
from teachdiff.export.readme import (
    PAPER_CITATION_TEXT,
    PAPER_DOI,
    _affine_in,
    _affine_out,
    _environment_file,
    _limits_text,
    _package_name,
    _readme,
    _subject,
)
from teachdiff.inference.settings import FAST_SAMPLING

__all__ = ["TileGeometry", "ExportResult", "resolve_model", "package_normalization", "tile_geometry", "export_package"]


BMZ_INSTALL = 'pip install "teachdiff[bmz]"'
BASELINE_TILE = 64  # the smallest tile offered for CARE, Noise2Void and UNet-RCAN
RESTORE_BASELINE_TILE = 256  # teachdiff restore's tile for a baseline: its halo is half that overlap
TORCHSCRIPT_TOLERANCE = 1e-4  # largest |trace - module| in [-1, 1] for the trace to be packaged


@dataclass(frozen=True)
class TileGeometry:
    """The input sides a package accepts and the halo its outputs carry.

    Sides ``tile + n * step`` (``step`` None: ``tile`` only); ``halo`` pixels at each border of
    an output are context, to be cropped by a consumer that tiles (bioimageio.core does): half
    the default overlap of the ``restore_tile``-pixel tiles of ``teachdiff restore``.
    """

    tile: int
    step: int | None
    halo: int
    restore_tile: int


@dataclass
class ExportResult:
    """What :func:`export_package` wrote and measured."""

    path: Path
    kind: str
    weight_formats: tuple[str, ...]
    torchscript_note: str
    geometry: TileGeometry
    network_calls_per_tile: int
    gflop_per_tile: float
    seconds_per_tile: float
    normalization: Normalization
    seed: int | None


# ----------------------------------------------------------------------------------------------
# What to export
# ----------------------------------------------------------------------------------------------


def resolve_model(model: str | Path):
    """The checkpoint file of ``model`` (a checkpoint, a run folder or a zoo name) and its zoo entry or None."""
    from teachdiff.store import zoo
    from teachdiff.store.checkpoint import checkpoint_file

    path = Path(model).expanduser()
    if path.exists():
        return checkpoint_file(path), None
    if zoo.is_zoo_name(str(model)):
        return zoo.fetch(str(model), progress=False), zoo.get(str(model))
    names = ", ".join(e.name for e in zoo.entries()) or "none in this version"
    raise FileNotFoundError(f"unknown model {str(model)!r}: no checkpoint file or run folder of that name, and not "
                            f"a zoo model. Pass a checkpoint of `teachdiff train` (best.pt or its --out folder) or "
                            f"one of the zoo's models: {names}.")


def package_normalization(method, train_config: dict, bit_depth: int | None = None) -> Normalization:
    """The intensity mapping the package states: the one saved in the checkpoint; for a model of a
    registered dataset (which saves none) the dataset's bit depth; ``bit_depth`` overrides the
    bit depth of a model that normalises by it. A clear error when there is no normalisation."""
    from teachdiff.data.registry import DATASETS

    trained = getattr(method, "normalization", None)
    if trained is not None and trained.mode == "percentile":
        if bit_depth is not None:
            raise ValueError(f"this model normalises by the percentiles of its training set ({trained.describe()}); "
                             "--bit-depth does not apply to it: leave it out.")
        return trained
    if bit_depth is not None:
        if not 1 <= bit_depth <= 16:
            raise ValueError(f"--bit-depth must be 1..16 (e.g. 12 for a 12-bit camera), got {bit_depth}.")
        return Normalization.from_bit_depth(bit_depth, 8 if bit_depth <= 8 else 16)
    if trained is not None:
        return trained
    dataset = train_config.get("dataset")
    if train_config.get("data") is None and dataset in DATASETS:
        depth = DATASETS[dataset].bit_depth
        return Normalization.from_bit_depth(depth, depth)
    raise ValueError("the checkpoint has no saved normalisation and names no registered dataset (it was trained "
                     "with an older teachdiff or from Python with datasets of its own), so the intensity scale of "
                     "its inputs is unknown. Pass --bit-depth B, the bit depth of the captures it was trained on "
                     "(8 for 0..255, 12 for 0..4095, 16 for 0..65535).")


def tile_geometry(method) -> TileGeometry:
    """Tile sides and halo of ``method``'s package (module docstring)."""
    from teachdiff.inference.budget import default_tile

    if method.kind == "ddpm":
        tile = default_tile(method.unet)
        return TileGeometry(tile, method.unet.config.size_multiple, default_overlap(tile) // 2, tile)
    if method.kind == "pix2pix":  # Pix2Pix.restore tiles at the generator's size inside restore's tiles
        tile = method.generator.size_multiple
        return TileGeometry(tile, None, default_overlap(tile) // 2, tile)
    m = method.net.size_multiple
    return TileGeometry(-(-BASELINE_TILE // m) * m, m, default_overlap(RESTORE_BASELINE_TILE) // 2,
                        RESTORE_BASELINE_TILE)


def _train_config(payload: dict) -> dict:
    return dict(payload.get("train_config") or {})


# ----------------------------------------------------------------------------------------------
# Building the package's parts
# ----------------------------------------------------------------------------------------------


def _packaged_module(method, seed: int) -> PackagedModel:
    module = PackagedModel(**module_kwargs(method, seed))
    released = tuple(f"{name}." for name in method.training_only)
    module.method.load_state_dict({k: v for k, v in method.state_dict().items() if not k.startswith(released)})
    return module.float().eval()


def _yaml_safe(config: dict) -> dict:
    """The configuration as plain YAML values (tuples become lists)."""
    return json.loads(json.dumps(config))


def _as_outputs(result) -> tuple[torch.Tensor, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _follow_input_device(traced) -> bool:
    """Make a trace create its tensors on the device of its input; True when it then holds no
    other device-bound data.

    A trace records ``torch.arange(n, device=x.device)`` (the noise field, the DDPM's noise
    levels) with the device it was traced on as a constant: traced on the CPU, it would fail on
    a GPU. Every such constant is replaced by ``prim::device(x)``, in the inlined graph. Tensor
    constants left in the graph must be scalars, which combine with tensors on any device.
    """
    graph = traced.graph
    torch._C._jit_pass_inline(graph)
    constants = graph.findAllNodes("prim::Constant")
    devices = [n for n in constants if n.output().type().kind() == "DeviceObjType"]
    if devices:
        device_of_x = graph.create("prim::device", [list(graph.inputs())[1]])
        device_of_x.output().setType(torch._C.DeviceObjType.get())
        device_of_x.insertBefore(next(iter(graph.nodes())))
        for constant in devices:
            constant.output().replaceAllUsesWith(device_of_x.output())
            constant.destroy()
    tensors = [n.output().toIValue() for n in graph.findAllNodes("prim::Constant")
               if n.output().type().kind() == "TensorType"]
    return all(not isinstance(t, torch.Tensor) or t.dim() == 0 for t in tensors)


def _traced(module: PackagedModel, example: torch.Tensor, check: torch.Tensor):
    """A torchscript trace of ``module`` and why it is or is not packaged (trace, note).

    The trace is kept only if it runs on its input's device (:func:`_follow_input_device`) and
    reproduces the module on ``check``, another batch size and tile shape than ``example``: a
    trace records one path through Python control flow.
    """
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings: the checks below decide
            traced = torch.jit.trace(module, example, check_trace=False)
            portable = _follow_input_device(traced)
            expected, got = _as_outputs(module(check)), _as_outputs(traced(check))
    except Exception as err:  # tracing fails in many ways (data-dependent shapes, unsupported ops)
        return None, f"no torchscript: tracing failed ({type(err).__name__}: {str(err)[:160]})"
    if not portable:
        return None, "no torchscript: the trace holds tensors bound to the device it was traced on"
    worst = max(float((a - b).abs().max()) for a, b in zip(expected, got))
    if worst > TORCHSCRIPT_TOLERANCE:
        return None, (f"no torchscript: the trace differs from the module by {worst:.2g} on a {tuple(check.shape)} "
                      "input (it records one path through the module's Python code)")
    return traced, (f"torchscript: a trace that follows its input's device, checked against the module on a "
                    f"{tuple(check.shape)} input (largest difference {worst:.1g} in [-1, 1])")


def _flop_count(fn, *args) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*args)
    return float(counter.get_total_flops())


def _gflop_per_tile(method, module: PackagedModel, tile: torch.Tensor) -> tuple[int, float]:
    """(network calls, GFLOP) of one tile: for the DDPM calls x one network call at that size."""
    if method.kind != "ddpm":
        return 1, _flop_count(module, tile) / 1e9
    unet = method.unet
    level = torch.full((tile.shape[0],), 0.5)
    per_call = _flop_count(unet, tile, torch.zeros_like(tile), level)
    calls = FAST_SAMPLING.steps * FAST_SAMPLING.samples
    return calls, calls * per_call / 1e9


def _display(values: np.ndarray, top: float) -> np.ndarray:
    return np.clip(np.rint(values / max(top, 1e-12) * 255), 0, 255).astype(np.uint8)


def _write_cover(path: Path, left: np.ndarray, right: np.ndarray, left_top: float, right_top: float) -> None:
    """Two panels side by side (2:1), each scaled to its own display range, enlarged to >= 256 px high."""
    from PIL import Image

    panel = np.concatenate([_display(left, left_top), _display(right, right_top)], axis=1)
    zoom = max(1, math.ceil(256 / panel.shape[0]))
    Image.fromarray(np.kron(panel, np.ones((zoom, zoom), np.uint8))).save(path, format="PNG")


# ----------------------------------------------------------------------------------------------
# The export
# ----------------------------------------------------------------------------------------------


@dataclass
class _Export:
    """What one export is made from, and what it measured (filled in as it goes)."""

    checkpoint: Path
    zoo_entry: object
    payload: dict
    train_config: dict
    method: object
    norm: Normalization
    geometry: TileGeometry
    capture_where: str
    seed: int
    licence: str
    authors: tuple[str, ...]
    calls: int = 0
    gflop: float = 0.0
    seconds: float = 0.0
    torchscript_note: str = "no torchscript: not requested"

    @property
    def kind(self) -> str:
        return self.method.kind

    @property
    def name(self) -> str:
        return _package_name(self.kind, self.train_config)

    @property
    def output_ids(self) -> tuple[str, ...]:
        return ("mean", "std") if self.kind == "ddpm" else ("restored",)


def _import_spec():
    try:
        from bioimageio.spec import save_bioimageio_package
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise CommandError(f"exporting a BioImage Model Zoo package needs bioimageio.core: {BMZ_INSTALL}") from None
    return v0_5, save_bioimageio_package


def _check_out(out: Path, force: bool) -> None:
    if out.suffix.lower() != ".zip":
        raise ValueError(f"--out {out} must end in .zip (a BioImage Model Zoo package is a zip file).")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name ending in .zip.")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists already; pass --force to replace it or choose another --out file.")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder of --out {out} does not exist; create it first.")


@contextlib.contextmanager
def _removed_on_failure(path: Path):
    """Delete ``path`` if the block fails: a failed export leaves no partial zip behind."""
    try:
        yield path
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def export_package(model: str | Path, out: str | Path, *, force: bool = False, sample: str | Path | None = None,
                   bit_depth: int | None = None, seed: int = 0, licence: str = "MIT",
                   authors: tuple[str, ...] = ("teachdiff contributors",), torchscript: bool = True,
                   progress=print) -> ExportResult:
    """Write the BioImage Model Zoo package of ``model`` to ``out`` (see the module docstring).

    ``model``: a checkpoint of ``teachdiff train``, its run folder, or a zoo name. ``sample``: a
    raw capture for the test tensors and the cover (default: the training data's first test FOV).
    ``bit_depth``: the captures' bit depth, for a model that normalises by it (default: as
    trained). ``seed``: the DDPM's noise seed. ``licence``: the package's SPDX licence id.
    ``progress``: called with a line per stage (``None``: quiet).

    Refuses an existing ``out`` unless ``force``; writes into a temporary file next to ``out``
    and renames it into place, so a failed export leaves neither a partial zip nor a damaged
    earlier one.
    """
    from teachdiff.store.checkpoint import load_checkpoint
    from teachdiff.store.resolve import load_method

    say = progress or (lambda line: None)
    out = Path(out).expanduser()
    _check_out(out, force)
    v0_5, save_package = _import_spec()
    try:
        v0_5.LicenseId(licence)
    except ValueError:
        raise ValueError(f"--license {licence!r} is not an SPDX licence id; use one such as MIT, CC-BY-4.0 or "
                         "BSD-3-Clause (https://spdx.org/licenses/).") from None
    checkpoint, zoo_entry = resolve_model(model)
    payload = load_checkpoint(checkpoint)
    train_config = _train_config(payload)
    method = load_method(checkpoint, map_location="cpu")
    norm = package_normalization(method, train_config, bit_depth)
    geometry = tile_geometry(method)
    capture, capture_where = sample_capture(train_config, geometry.tile, sample)
    _check_capture(capture, capture_where, norm)
    ex = _Export(checkpoint, zoo_entry, payload, train_config, method, norm, geometry, capture_where, seed, licence,
                 tuple(authors))
    module = _packaged_module(method, seed)

    crop = _brightest_crop(capture, geometry.tile).astype(np.float32)
    say(f"restoring a {geometry.tile}x{geometry.tile} test tile with the packaged {LABELS[ex.kind]}")
    x = _to_network(crop[None, None], norm)
    start = time.perf_counter()
    with torch.no_grad():
        outputs = _as_outputs(module(x))
    ex.seconds = time.perf_counter() - start
    ex.calls, ex.gflop = _gflop_per_tile(method, module, x)
    gain_out, offset_out = _affine_out(norm)
    results = [(outputs[0].clamp(-1, 1) * gain_out + offset_out).numpy()]
    if ex.kind == "ddpm":
        results.append((outputs[1] * gain_out).numpy())

    traced = None
    if torchscript:
        say("tracing torchscript weights and checking them on another input shape")
        grow = geometry.step or 0
        check = np.pad(np.stack([crop] * 2)[:, None], ((0, 0), (0, 0), (0, grow), (0, 2 * grow)), mode="reflect")
        traced, ex.torchscript_note = _traced(module, x, _to_network(check, norm))

    with tempfile.TemporaryDirectory(prefix="teachdiff-bmz-") as tmp:
        d = Path(tmp)
        covers = _write_files(d, ex, module, traced, crop, results)
        descr = _describe(v0_5, d, ex, covers, traced is not None)
        tmp_zip = out.with_name(f".{out.stem}.partial-{os.getpid()}.zip")
        say(f"writing {out}")
        with _removed_on_failure(tmp_zip):
            try:
                save_package(descr, output_path=tmp_zip)
                os.replace(tmp_zip, out)
            except OSError as err:
                raise PermissionError(f"could not write {out} ({err.strerror or err}); check free disk space and "
                                      "that its folder is writable.") from None
    formats = ("pytorch_state_dict",) + (("torchscript",) if traced is not None else ())
    return ExportResult(out, ex.kind, formats, ex.torchscript_note, geometry, ex.calls, ex.gflop, ex.seconds, norm,
                        seed if ex.kind == "ddpm" else None)


def _to_network(raw: np.ndarray, norm: Normalization) -> torch.Tensor:
    """Captures (N, 1, H, W) -> [-1, 1] with the package's preprocessing, ``x * gain + offset``."""
    gain, offset = _affine_in(norm)
    return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32)) * gain + offset


def _write_files(d: Path, ex: _Export, module: PackagedModel, traced, crop: np.ndarray, results) -> list[str]:
    """The package's files in ``d``: weights, environment, test and sample tensors, covers, README.
    Returns the covers' file names."""
    np.save(d / "test_input.npy", crop[None, None])
    tifffile.imwrite(d / "sample_input.tif", crop)
    for name, values in zip(ex.output_ids, results):
        np.save(d / f"test_{name}.npy", values.astype(np.float32))
        tifffile.imwrite(d / f"sample_{name}.tif", values[0, 0].astype(np.float32))
    torch.save(module.state_dict(), d / "weights.pt")
    if traced is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit: still what deepImageJ runs
            torch.jit.save(traced, str(d / "weights.torchscript"))
    _environment_file(d / "environment.yaml")
    restored = results[0][0, 0]
    top = float(np.percentile(np.concatenate([crop.ravel(), restored.ravel()]), 99.8))
    _write_cover(d / "cover.png", crop, restored, top, top)
    covers = ["cover.png"]
    if ex.kind == "ddpm":
        std = results[1][0, 0]
        _write_cover(d / "cover_std.png", restored, std, top, float(np.percentile(std, 99.5)))
        covers.append("cover_std.png")
    (d / "README.md").write_text(_readme(ex, float(crop.mean()), float(restored.mean())))
    return covers


def _describe(v0_5, d: Path, ex: _Export, covers: list[str], with_torchscript: bool):
    """The spec-0.5 ``ModelDescr`` of the files in ``d``."""
    norm, geometry, kind, method = ex.norm, ex.geometry, ex.kind, ex.method
    gain_in, offset_in = _affine_in(norm)
    gain_out, offset_out = _affine_out(norm)
    raw_id = v0_5.TensorId("raw")
    size = v0_5.ParameterizedSize(min=geometry.tile, step=geometry.step) if geometry.step else geometry.tile
    space_in = [v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=size) for a in ("y", "x")]
    top_in = None if norm.mode == "percentile" else float(2**norm.bit_depth - 1)
    raw = v0_5.InputTensorDescr(
        id=raw_id, description=f"raw capture on its own intensity scale ({norm.describe()})",
        axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=[v0_5.Identifier("raw")]), *space_in],
        test_tensor=v0_5.FileDescr(source=d / "test_input.npy"),
        sample_tensor=v0_5.FileDescr(source=d / "sample_input.tif"),
        data=v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, top_in) if top_in else (None, None)),
        pad=v0_5.ReflectPadding(mode="reflect"),  # explicit: a default-only mode is saved as {} = constant
        preprocessing=[v0_5.ScaleLinearDescr(kwargs=v0_5.ScaleLinearKwargs(gain=gain_in, offset=offset_in))])

    def output(tensor_id: str, description: str, post) -> object:
        space = [v0_5.SpaceOutputAxisWithHalo(id=v0_5.AxisId(a), halo=geometry.halo,
                                              size=v0_5.SizeReference(tensor_id=raw_id, axis_id=v0_5.AxisId(a)))
                 for a in ("y", "x")]
        return v0_5.OutputTensorDescr(
            id=v0_5.TensorId(tensor_id), description=description,
            axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=[v0_5.Identifier(tensor_id)]), *space],
            test_tensor=v0_5.FileDescr(source=d / f"test_{tensor_id}.npy"),
            sample_tensor=v0_5.FileDescr(source=d / f"sample_{tensor_id}.tif"), postprocessing=post)

    back = [v0_5.ClipDescr(kwargs=v0_5.ClipKwargs(min=-1.0, max=1.0)),
            v0_5.ScaleLinearDescr(kwargs=v0_5.ScaleLinearKwargs(gain=gain_out, offset=offset_out))]
    if kind == "ddpm":
        outputs = [output("mean", f"DDPM-avg of {FAST_SAMPLING.samples} samples, capture's scale", back),
                   output("std", "per-pixel std of the samples (Eq. 15), capture's scale",
                          [v0_5.ScaleLinearDescr(kwargs=v0_5.ScaleLinearKwargs(gain=gain_out, offset=0.0))])]
    else:
        outputs = [output("restored", "restoration, capture's intensity scale", back)]

    arch = v0_5.ArchitectureFromLibraryDescr(callable=v0_5.Identifier("PackagedModel"),
                                             import_from="teachdiff.export.network",
                                             kwargs=module_kwargs(method, ex.seed))
    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    weights = v0_5.WeightsDescr(
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
            source=d / "weights.pt", architecture=arch, pytorch_version=torch_version,
            dependencies=v0_5.FileDescr(source=d / "environment.yaml")),
        torchscript=(v0_5.TorchscriptWeightsDescr(source=d / "weights.torchscript", pytorch_version=torch_version,
                                                  parent="pytorch_state_dict", comment=ex.torchscript_note)
                     if with_torchscript else None))
    tags = ["denoising", "restoration", "fluorescence-light-microscopy", "2d", "pytorch", "teachdiff", kind]
    if kind == "ddpm":
        tags += ["diffusion", "uncertainty"]
    sampling = ({"sampler": FAST_SAMPLING.sampler, "steps": FAST_SAMPLING.steps, "samples": FAST_SAMPLING.samples,
                 "eta": FAST_SAMPLING.eta, "seed": ex.seed} if kind == "ddpm" else {})
    released = tuple(f"{m}." for m in method.training_only)
    return v0_5.ModelDescr(
        name=ex.name,
        description=(f"{LABELS[kind]} restoration trained with teachdiff on {_subject(ex.train_config)}"
                     + (f"; DDPM-avg of {FAST_SAMPLING.samples} samples with a per-pixel std map" if kind == "ddpm"
                        else "") + " (Osuna-Vargas et al., WACV 2025)."),
        authors=[v0_5.Author(name=a) for a in ex.authors],
        cite=[v0_5.CiteEntry(text=PAPER_CITATION_TEXT, doi=v0_5.Doi(PAPER_DOI))],
        license=v0_5.LicenseId(ex.licence),
        documentation=v0_5.FileDescr(source=d / "README.md"),
        covers=[v0_5.FileDescr(source=d / name) for name in covers],
        tags=tags,
        inputs=[raw],
        outputs=outputs,
        weights=weights,
        config=v0_5.Config(bioimageio=v0_5.BioimageioConfig(
            architecture_type=f"{LABELS[kind]} (teachdiff)",
            model_parameter_count=sum(p.numel() for n, p in method.named_parameters() if not n.startswith(released)),
            inference_time=f"{ex.seconds:.2g} s per {geometry.tile}x{geometry.tile} tile ({ex.calls} network calls)",
            out_of_scope_use=_limits_text(ex)),
            teachdiff={"version": teachdiff.__version__, "kind": kind, "checkpoint": ex.checkpoint.name,
                       "zoo_name": ex.zoo_entry.name if ex.zoo_entry is not None else None,
                       "normalization": norm.to_dict(), "tile": geometry.tile, "tile_step": geometry.step,
                       "halo": geometry.halo, "network_calls_per_tile": ex.calls,
                       "gflop_per_tile": round(ex.gflop, 4), "seconds_per_tile": round(ex.seconds, 4),
                       "test_capture": ex.capture_where, **sampling}),
    )


def module_kwargs(method, seed: int) -> dict:
    """The keyword arguments of :class:`PackagedModel` that rebuild ``method`` (the package's architecture)."""
    kwargs = {"kind": method.kind, "method_config": _yaml_safe(method.config_dict())}
    if method.kind == "ddpm":
        kwargs.update(samples=FAST_SAMPLING.samples, steps=FAST_SAMPLING.steps, eta=FAST_SAMPLING.eta, seed=seed)
    return kwargs
