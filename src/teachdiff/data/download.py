"""Downloading openly available datasets: resumable, verified, never leaving corrupt files.

Only the zebrafish data (FMD ``Confocal_FISH``) can be downloaded. The archive is
fetched to ``<data_dir>/<dataset>/<file>.part``; an interrupted download resumes from the
bytes already there with an HTTP ``Range`` request; the file gets its final name only after
its size and checksum (where the publisher states one) are verified. Extraction goes to a
temporary folder that is renamed into place only after the expected structure (20 FOVs x 50
captures + ``avg50`` targets) has been checked, so the cache never holds a half-extracted
dataset. Existing files are never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from teachdiff.data.registry import DatasetInfo, DownloadSpec, default_root, get_dataset_info

__all__ = ["DownloadError", "download_file", "download_dataset", "verify_fmd_structure", "file_digest"]

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that could not complete (offline, server error, checksum mismatch)."""


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, size: int | None, md5: str | None, sha256: str | None) -> str | None:
    """None if ``path`` matches the expected size and checksums, else what is wrong."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size {actual} bytes, expected {size}"
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected and file_digest(path, algorithm) != expected.lower():
            return f"{algorithm} checksum differs from the published {expected}"
    return None


def download_file(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 30.0,
    progress: bool = True,
    manual_hint: str = "",
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download; returns ``dest``.

    If ``dest`` already exists it is verified and returned untouched (never overwritten).
    The data first go to ``dest.part``; on success it is renamed to ``dest``. A checksum or
    size mismatch deletes the partial file and raises :class:`DownloadError`; a network
    failure keeps it, so the next call resumes.
    """
    dest = Path(dest)
    if dest.exists():
        problem = _verify(dest, size, md5, sha256)
        if problem:
            raise DownloadError(
                f"{dest} already exists but does not match the published file ({problem}). It was left "
                "untouched: delete it and run the download again."
            )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:
        part.unlink()
        start = 0
    if size is None or start < size:
        _fetch(url, part, start, timeout, progress, manual_hint)
    problem = _verify(part, size, md5, sha256)
    if problem:
        part.unlink()
        raise DownloadError(
            f"the download of {url} is corrupt ({problem}); the partial file was deleted. Run the download "
            "again; if it fails the same way, the published file has changed — download it by hand"
            + (f" ({manual_hint})" if manual_hint else "")
            + "."
        )
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, start: int, timeout: float, progress: bool, manual_hint: str) -> None:
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "teachdiff"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            # "Range not satisfiable": the partial file already holds every byte.
            return
        raise DownloadError(f"the server answered {err.code} {err.reason} for {url}. {manual_hint}".strip()) from err
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(
            f"cannot reach {url} ({getattr(err, 'reason', err)}). Are you offline? "
            + (f"{part.stat().st_size} bytes downloaded so far are kept and the next run resumes. " if part.exists() else "")
            + manual_hint
        ) from err
    with response:
        if start and response.status != 206:
            start = 0  # the server ignored the Range request and sends the whole file
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        mode = "ab" if start else "wb"
        try:
            with open(part, mode) as f, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, desc=part.name[: -len(".part")], disable=not progress
            ) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    f.write(block)
                    bar.update(len(block))
        except OSError as err:
            raise DownloadError(
                f"the connection to {url} broke ({err}); {part.stat().st_size} bytes are kept in {part} and "
                "the next run resumes."
            ) from err
    if total is not None and part.stat().st_size < total:
        raise DownloadError(
            f"the download of {url} stopped at {part.stat().st_size} of {total} bytes; run it again to resume."
        )


def verify_fmd_structure(folder: str | Path, n_fov: int = 20, captures: int = 50) -> list[str]:
    """Problems with an FMD image-type folder (e.g. ``Confocal_FISH``); empty if complete."""
    folder = Path(folder)
    problems = []
    for sub in ("raw", "gt"):
        if not (folder / sub).is_dir():
            problems.append(f"{folder / sub} is missing")
    if problems:
        return problems
    for fov in range(1, n_fov + 1):
        raw = folder / "raw" / str(fov)
        pngs = list(raw.glob("*.png")) if raw.is_dir() else []
        if len(pngs) != captures:
            problems.append(f"{raw} has {len(pngs)} PNG captures, expected {captures}")
        if not (folder / "gt" / str(fov) / "avg50.png").is_file():
            problems.append(f"{folder / 'gt' / str(fov) / 'avg50.png'} is missing")
    return problems


def _safe_extract(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            resolved = (target / member.name).resolve()
            if not resolved.is_relative_to(target.resolve()) or member.issym() or member.islnk():
                raise DownloadError(f"{archive} contains an unsafe entry {member.name!r}; refusing to extract it.")
        tar.extractall(target, filter="data")


def download_dataset(
    name: str = "zebrafish",
    root: str | Path | None = None,
    *,
    url: str | None = None,
    keep_archive: bool = False,
    progress: bool = True,
) -> Path:
    """Download and unpack an openly available dataset; returns the folder the loaders read.

    ``root`` defaults to ``data_dir()/<name>`` (``$TEACHDIFF_DATA`` or the user data dir).
    Nothing is downloaded if the dataset is already there and complete. ``url`` replaces the
    registry URL (a mirror, or a local server in tests).
    """
    info = get_dataset_info(name)
    if info.download is None:
        raise ValueError(
            f"dataset '{name}' has no public download. Put its files in a folder with this layout and pass "
            f"that folder as root (CLI: teachdiff data check <folder> --dataset {name}):\n{info.layout}"
        )
    spec: DownloadSpec = info.download
    root = Path(root).expanduser() if root is not None else default_root(name)
    folder_name = spec.filename.removesuffix(".tar")
    final = root / folder_name
    if final.exists():
        problems = verify_fmd_structure(final)
        if problems:
            raise DownloadError(
                f"{final} exists but is incomplete ({problems[0]}; {len(problems)} problem(s)). It was left "
                "untouched: delete it and run the download again."
            )
        return final
    hint = _manual_hint(info, root)
    archive = download_file(
        url or spec.url,
        root / spec.filename,
        size=spec.size_bytes,
        md5=spec.md5,
        progress=progress,
        manual_hint=hint,
    )
    staging = root / f".{folder_name}.extracting"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        _safe_extract(archive, staging)
        extracted = staging / folder_name if (staging / folder_name).is_dir() else staging
        problems = verify_fmd_structure(extracted)
        if problems:
            raise DownloadError(
                f"{archive} does not contain the expected FMD layout ({problems[0]}; {len(problems)} problem(s)). "
                f"Delete {archive} and download again. {hint}"
            )
        os.replace(extracted, final)
    except tarfile.TarError as err:
        raise DownloadError(f"{archive} is not a readable tar archive ({err}); delete it and download again.") from err
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if not keep_archive:
        archive.unlink()
    return final


def _manual_hint(info: DatasetInfo, root: Path) -> str:
    spec = info.download
    mirrors = "".join(f" or {m}" for m in spec.mirrors)
    return (
        f"To install by hand: get {spec.filename} from {spec.landing_page}{mirrors}, unpack it so that "
        f"{root / spec.filename.removesuffix('.tar')}/raw and .../gt exist, or pass the unpacked folder as root. "
        f"Without internet, use 'synthetic-{info.name}'."
    )
