"""Downloading openly available datasets: several sources, verified, never leaving a bad file.

Only the zebrafish data (FMD ``Confocal_FISH``) can be downloaded. Its sources
(``DownloadSpec.urls`` in the registry: figshare's download link, figshare's API, Google
Drive) are tried in order until one delivers the archive. Scripted downloads often get an
answer that is not the file: figshare may answer 403, or 202 with an HTML challenge page;
Google Drive answers a large file with an HTML page asking to confirm the download. So each
answer is checked before a byte is written:

* a status other than 200 (or 206 for a resumed download) is refused;
* an HTML body (by its ``Content-Type`` or its first bytes) is refused, unless it is Google
  Drive's confirmation page, whose form or ``confirm=`` link is followed (with its cookies);
* the bytes received must add up to ``Content-Length`` (a connection that closed early leaves
  a ``.part`` file that the next source or the next run resumes with an HTTP ``Range`` request).

A refused answer leaves nothing on disk. The archive gets its final name only after its size
and checksums are verified: the publisher's, where the registry has one, and the sha256 that
teachdiff recorded on the first good download, in ``<root>/<archive>.sha256`` beside the
archive. Extraction goes to a temporary folder renamed into place only after the expected
structure (20 FOVs x 50 captures + ``avg50`` targets) is checked, so the cache never holds a
half-extracted dataset. Existing files are never overwritten.

When no source works (figshare refusing a Colab machine, say), download the archive in a
browser and pass it with ``--from FILE`` (``from_file=``): it is checked and unpacked the same
way, and never deleted.
"""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Sequence

from teachdiff.data.registry import DatasetInfo, DownloadSpec, default_root, get_dataset_info

__all__ = ["DownloadError", "download_file", "download_dataset", "verify_fmd_structure", "file_digest", "file_problem",
           "fetch_range"]

_CHUNK = 1 << 20
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")
_MAX_CONFIRMATIONS = 2  # Google Drive: at most this many confirmation pages are followed


class DownloadError(RuntimeError):
    """A download that could not complete (offline, server error, not the file, checksum mismatch)."""


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_problem(path: Path, size: int | None, md5: str | None, sha256: str | None) -> str | None:
    """None if ``path`` matches the expected size and checksums, else what is wrong."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size {actual} bytes, expected {size}"
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected and file_digest(path, algorithm) != expected.lower():
            return f"{algorithm} checksum differs from the expected {expected}"
    return None


def _looks_like_html(content_type: str | None, head: bytes) -> bool:
    if content_type and content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return True
    return head.lstrip()[:32].lower().startswith(_HTML_STARTS)


class _FormParser(HTMLParser):
    """The first form's action and hidden inputs, and every link, of an HTML page."""

    def __init__(self):
        super().__init__()
        self.action, self.inputs, self.links, self._in_form = None, [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self._in_form = attrs.get("action") or "", True
        elif tag == "input" and self._in_form and attrs.get("name"):
            self.inputs.append((attrs["name"], attrs.get("value") or ""))
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def _drive_confirmation(page: bytes, url: str) -> str | None:
    """The URL behind Google Drive's "download anyway" confirmation page, or None.

    Drive answers a large file with an HTML page: today a form (``id="download-form"``)
    whose hidden inputs carry ``confirm`` and ``uuid``; formerly a link with ``confirm=<token>``.
    """
    text = page.decode("utf-8", "replace")
    parser = _FormParser()
    parser.feed(text)
    if parser.action is not None and any(name == "confirm" for name, _ in parser.inputs):
        action = urllib.parse.urljoin(url, parser.action)
        return action + ("&" if "?" in action else "?") + urllib.parse.urlencode(parser.inputs)
    for href in parser.links:
        if "confirm=" in href:
            return urllib.parse.urljoin(url, href)
    return None


def _opener():
    """A URL opener that keeps cookies (Google Drive ties its confirmation to one)."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def fetch_range(url: str, part: Path, start: int, timeout: float, progress: bool, manual_hint: str,
                opener=None) -> None:
    """Append the bytes of ``url`` from ``start`` to ``part``: refuse answers that are not the
    file (nothing written), follow Google Drive's confirmation page, check ``Content-Length``."""
    from tqdm.auto import tqdm

    opener = opener or _opener()
    for _ in range(_MAX_CONFIRMATIONS + 1):
        request = urllib.request.Request(url, headers={"User-Agent": "teachdiff"})
        if start:
            request.add_header("Range", f"bytes={start}-")
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and start:
                return  # "Range not satisfiable": the partial file already holds every byte
            raise DownloadError(f"{url} answered {err.code} {err.reason}, not the file. {manual_hint}".strip()) from None
        except (urllib.error.URLError, OSError) as err:
            raise DownloadError(
                f"cannot reach {url} ({getattr(err, 'reason', err)}). Are you offline? "
                + (f"{part.stat().st_size} bytes downloaded so far are kept and the next run resumes. "
                   if part.exists() else "")
                + manual_hint
            ) from err
        with response:
            head = response.read(_CHUNK)
            if _looks_like_html(response.headers.get("Content-Type"), head):
                page = head + response.read(4 * _CHUNK)
                confirmed = _drive_confirmation(page, response.geturl())
                if confirmed:
                    url = confirmed
                    continue
                raise DownloadError(
                    f"{url} answered {response.status} with an HTML page (a challenge, login or error page), not "
                    f"the file; it was not saved. {manual_hint}".strip()
                )
            if response.status not in (200, 206):
                raise DownloadError(f"{url} answered {response.status} {response.reason}, not the file; nothing was "
                               f"saved. {manual_hint}".strip())
            if start and response.status != 206:
                start = 0  # the server ignored the Range request and sends the whole file
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            part.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(part, "ab" if start else "wb") as f, tqdm(
                    total=total, initial=start, unit="B", unit_scale=True, desc=part.name[: -len(".part")],
                    disable=not progress,
                ) as bar:
                    block = head
                    while block:
                        f.write(block)
                        bar.update(len(block))
                        block = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as err:
                raise DownloadError(
                    f"the connection to {url} broke ({err}); {part.stat().st_size} bytes are kept in {part} and "
                    "the next run resumes."
                ) from err
        received = part.stat().st_size
        if total is not None and received < total:
            raise DownloadError(
                f"the download from {url} stopped at {received} of {total} bytes (Content-Length); they are kept "
                f"in {part} and the next source or run resumes."
            )
        if total is not None and received > total:
            part.unlink()
            raise DownloadError(f"{url} sent {received} bytes but announced {total} (Content-Length); the file was "
                                "deleted.")
        return
    raise DownloadError(f"{url}: Google Drive asked to confirm the download more than {_MAX_CONFIRMATIONS} times; "
                   f"nothing was saved. {manual_hint}".strip())


def download_file(
    url: str | Sequence[str],
    dest: str | Path,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 30.0,
    progress: bool = True,
    manual_hint: str = "",
) -> Path:
    """Download to ``dest`` from ``url`` (one URL, or several tried in order); returns ``dest``.

    If ``dest`` already exists it is verified and returned untouched (never overwritten).
    The data first go to ``dest.part`` and get the final name once complete and verified.
    A source that answers with something other than the file (non-2xx, HTML) is skipped and
    leaves nothing on disk; a connection that breaks keeps ``dest.part``, which the next source
    (or run) resumes; a size or checksum mismatch deletes it. :class:`DownloadError` names what
    every source answered when none delivered the file.
    """
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("no URL to download from")
    dest = Path(dest)
    if dest.exists():
        problem = file_problem(dest, size, md5, sha256)
        if problem:
            raise DownloadError(
                f"{dest} already exists but does not match the expected file ({problem}). It was left "
                "untouched: delete it and run the download again."
            )
        return dest
    part = dest.with_name(dest.name + ".part")
    failures = []
    for source in urls:
        start = part.stat().st_size if part.exists() else 0
        if size is not None and start > size:
            part.unlink()
            start = 0
        try:
            if size is None or start < size:
                fetch_range(source, part, start, timeout, progress, manual_hint="")
        except DownloadError as err:
            failures.append(f"- {err}")
            continue
        problem = file_problem(part, size, md5, sha256)
        if problem:
            part.unlink()
            failures.append(f"- the download from {source} is corrupt ({problem}); the partial file was deleted.")
            continue
        os.replace(part, dest)
        return dest
    raise DownloadError(
        f"could not download {dest.name} from {'any of its ' + str(len(urls)) + ' sources' if len(urls) > 1 else urls[0]}:\n"
        + "\n".join(failures)
        + (f"\n{manual_hint}" if manual_hint else "")
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


def _recorded_sha256(record: Path) -> str | None:
    """The sha256 recorded by a previous good download (``sha256sum`` format), or None."""
    if not record.is_file():
        return None
    words = record.read_text().split()
    digest = words[0].lower() if words else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DownloadError(f"{record} does not hold a sha256; delete it (the next good download records it again).")
    return digest


def _record_sha256(record: Path, digest: str, filename: str) -> None:
    tmp = record.with_name(f".{record.name}.tmp-{os.getpid()}")
    tmp.write_text(f"{digest}  {filename}\n")
    os.replace(tmp, record)


def download_dataset(
    name: str = "zebrafish",
    root: str | Path | None = None,
    *,
    url: str | Sequence[str] | None = None,
    from_file: str | Path | None = None,
    keep_archive: bool = False,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download (or take ``from_file``) and unpack an openly available dataset; returns the
    folder the loaders read.

    ``root`` defaults to ``data_dir()/<name>`` (``$TEACHDIFF_DATA`` or the user data dir).
    Nothing is downloaded if the dataset is already there and complete. ``url`` replaces the
    registry's sources (one URL or several, tried in order: a mirror, or a local server in
    tests). ``from_file`` is an archive downloaded by hand; it is checked (not HTML, the sha256
    recorded by an earlier download, a readable tar of the expected layout) and never deleted.
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
    record = root / f"{spec.filename}.sha256"
    recorded = _recorded_sha256(record)
    if from_file is not None:
        archive = Path(from_file).expanduser()
        _check_manual_archive(archive, spec, recorded, record)
    else:
        archive = download_file(
            spec.urls if url is None else url,
            root / spec.filename,
            size=spec.size_bytes,
            md5=spec.md5,
            sha256=recorded,
            timeout=timeout,
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
                + ("" if from_file is not None else f"Delete {archive} and download again. ") + hint
            )
        if recorded is None:
            _record_sha256(record, file_digest(archive, "sha256"), spec.filename)
        os.replace(extracted, final)
    except tarfile.TarError as err:
        raise DownloadError(f"{archive} is not a readable tar archive ({err}); "
                            + ("download it again." if from_file is not None else "delete it and download again.")) \
            from err
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if not keep_archive and from_file is None:
        archive.unlink()
    return final


def _check_manual_archive(archive: Path, spec: DownloadSpec, recorded: str | None, record: Path) -> None:
    """An archive downloaded by hand: present, not an HTML page saved under the archive's name,
    of the registry's size and checksums where known, and of the sha256 recorded earlier."""
    if not archive.is_file():
        raise DownloadError(f"{archive} is not a file. Give the path of the downloaded {spec.filename}.")
    with open(archive, "rb") as f:
        head = f.read(4096)
    if _looks_like_html(None, head):
        raise DownloadError(
            f"{archive} is an HTML page, not the {spec.filename} archive: the browser saved the page the server "
            f"answered with (a challenge or login page). Download it again from {spec.landing_page}."
        )
    problem = file_problem(archive, spec.size_bytes, spec.md5, None)
    if problem:
        raise DownloadError(f"{archive} is not the published {spec.filename} ({problem}).")
    if recorded is not None and file_digest(archive, "sha256") != recorded:
        raise DownloadError(
            f"{archive} differs from the {spec.filename} downloaded before (sha256 recorded in {record}). If the "
            f"publisher has changed the file, delete {record} and run again."
        )


def _manual_hint(info: DatasetInfo, root: Path) -> str:
    spec = info.download
    mirrors = "".join(f" or {m}" for m in spec.mirrors)
    return (
        f"To install by hand: download {spec.filename} in a browser from {spec.landing_page}{mirrors}, then run "
        f"`teachdiff data download {info.name} --from <the downloaded {spec.filename}>`; or unpack it so that "
        f"{root / spec.filename.removesuffix('.tar')}/raw and .../gt exist. "
        f"Without internet, use 'synthetic-{info.name}'."
    )
