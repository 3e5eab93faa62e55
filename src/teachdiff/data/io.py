"""Reading microscopy images: PNG and TIFF, 8- and 16-bit, 2-D images and z-stacks.

The authors' released code read only 8-bit images through PIL. Here PNGs go through
Pillow and TIFFs through tifffile, and every image comes back as a NumPy array of shape
(Z, H, W) — Z = 1 for a 2-D image — in its original integer type (uint8 or uint16), so the
intensity scaling can use the real bit depth. Anything else (RGB, float, a corrupt file)
raises a ValueError that names the file and says how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "ImageHeader", "read_header", "read_image", "write_image", "bit_depth_of"]

IMAGE_EXTENSIONS = (".tif", ".tiff", ".png")
_TIFF = (".tif", ".tiff")
_BIT_DEPTHS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}
_CONVERT_HINT = (
    "convert it to single-channel 8-bit or 16-bit grayscale (e.g. in Fiji: Image > Type > "
    "8-bit or 16-bit, then save as TIFF)"
)


@dataclass(frozen=True)
class ImageHeader:
    """What can be known about an image without decoding its pixels."""

    path: Path
    shape: tuple[int, int, int]  # (Z, H, W)
    bit_depth: int

    @property
    def n_slices(self) -> int:
        return self.shape[0]

    @property
    def plane_shape(self) -> tuple[int, int]:
        return self.shape[1], self.shape[2]


def bit_depth_of(dtype: np.dtype, path: Path | str = "image") -> int:
    """8 or 16 for uint8/uint16 images; a clear error for any other pixel type."""
    dtype = np.dtype(dtype)
    if dtype not in _BIT_DEPTHS:
        raise ValueError(f"{path}: pixel type {dtype} is not supported; {_CONVERT_HINT}.")
    return _BIT_DEPTHS[dtype]


def _as_stack_shape(shape: tuple[int, ...], path: Path, n_samples: int = 1) -> tuple[int, int, int]:
    """(H, W) -> (1, H, W); (Z, H, W) stays; colour or higher-dimensional data is refused."""
    if n_samples > 1:
        raise ValueError(
            f"{path}: has {n_samples} colour channels (RGB/RGBA) but a grayscale image is expected; {_CONVERT_HINT}."
        )
    if len(shape) == 2:
        return (1, int(shape[0]), int(shape[1]))
    if len(shape) == 3:
        return (int(shape[0]), int(shape[1]), int(shape[2]))
    raise ValueError(
        f"{path}: has shape {tuple(shape)}, but a 2-D image (H, W) or a z-stack (Z, H, W) is "
        "expected; save one channel and one time point per file."
    )


def _corrupt(path: Path, err: Exception) -> ValueError:
    size = path.stat().st_size if path.is_file() else None
    what = "is empty (0 bytes)" if size == 0 else f"cannot be read as an image ({type(err).__name__}: {err})"
    return ValueError(
        f"{path}: {what}. The file is truncated, corrupt or not really a PNG/TIFF: re-download or "
        "re-export it, or remove it from the folder."
    )


def read_header(path: str | Path) -> ImageHeader:
    """Shape (Z, H, W) and bit depth of an image without decoding its pixels (fast)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}.")
    # Only the reader runs inside the try: its failures (tifffile raises ValueErrors too) all mean
    # "corrupt file" and get the file's name; the checks below raise their own messages.
    try:
        if suffix in _TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, dtype = tuple(series.shape), series.dtype
                samples = tif.pages[0].samplesperpixel
        else:
            from PIL import Image

            with Image.open(path) as img:
                mode, (width, height) = img.mode, img.size
    except Exception as err:  # noqa: BLE001 - every reader failure means the same to the user
        raise _corrupt(path, err) from err
    if suffix in _TIFF:
        stack = _as_stack_shape(shape, path, n_samples=samples)
    else:
        dtype = _pil_dtype(mode, path)
        stack = (1, height, width)
    return ImageHeader(path=path, shape=stack, bit_depth=bit_depth_of(dtype, path))


def _pil_dtype(mode: str, path: Path) -> np.dtype:
    if mode in ("L", "P"):
        return np.dtype(np.uint8)
    if mode.startswith("I;16"):
        return np.dtype(np.uint16)
    if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
        raise ValueError(
            f"{path}: is a colour image (PIL mode {mode}) but a grayscale image is expected; {_CONVERT_HINT}."
        )
    raise ValueError(f"{path}: PIL mode {mode} is not an 8- or 16-bit grayscale image; {_CONVERT_HINT}.")


def read_image(path: str | Path) -> np.ndarray:
    """Read a PNG or TIFF as an array of shape (Z, H, W), dtype uint8 or uint16."""
    header = read_header(path)
    path = header.path
    mode = None
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            data = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as img:
                mode = img.mode
                data = np.array(img)
    except Exception as err:  # noqa: BLE001 - a truncated file fails here, after a good header
        raise _corrupt(path, err) from err
    if mode == "P":
        raise ValueError(f"{path}: is a palette image; {_CONVERT_HINT}.")
    data = data.reshape(header.shape)
    if bit_depth_of(data.dtype, path) != header.bit_depth:
        raise _corrupt(path, TypeError(f"decoded pixel type {data.dtype} differs from the header"))
    return data


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8/uint16 image (H, W) or stack (Z, H, W) as TIFF or PNG; never overwrites."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; choose another name or delete it first.")
    image = np.asarray(image)
    bit_depth_of(image.dtype, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in _TIFF:
        import tifffile

        tifffile.imwrite(path, image, photometric="minisblack")
    elif path.suffix.lower() == ".png":
        if image.ndim != 2:
            raise ValueError(f"{path}: PNG holds one 2-D image; write z-stacks as TIFF.")
        from PIL import Image

        Image.fromarray(image).save(path, compress_level=1)
    else:
        raise ValueError(f"{path}: unsupported file type; use one of {', '.join(IMAGE_EXTENSIONS)}.")
    return path
