"""The model zoo: trained checkpoints to load instead of training, and ``teachdiff weights``.

Every released checkpoint has one entry in ``teachdiff/weights/manifest.json``: its name, the
dataset, model and preset it was trained with, the architecture, the file's sha256 and size,
where the file lives (bundled in the package and/or a URL), the exact training command and
seed, how long training took on which machine, the test-split scores it reached, and its
training data card (:mod:`teachdiff.store.datacard`: modality, input -> target relation, pixel size,
patch size, scaling and the training inputs' intensity percentiles). The manifest lists only
checkpoints that exist: no placeholders.

Choosing a model: ``teachdiff weights list`` shows each model's data card;
``teachdiff weights suggest IMAGE...`` (:func:`suggest`) ranks the models by how close the
images' intensities, scaled as each model scales its inputs, are to its training inputs'.

Finding a file (:func:`fetch`) tries, in order,

1. the user cache (``$TEACHDIFF_WEIGHTS`` or the platform's cache folder, ``weights/``),
2. the file bundled with the package (``teachdiff/weights/<file>``),
3. a download from the entry's URL into the cache.

Each candidate must have the manifest's sha256; a cached file that does not (truncated,
corrupt, replaced) is fetched again. Downloads go through pooch, which writes to a temporary
file and moves it into place only after the hash matched; the bytes themselves are fetched by
teachdiff's resumable downloader (HTTP ``Range``), so an interrupted download continues where
it stopped. Offline, the error names the file, the URL and where to put a copy fetched by hand.

Python::

    from teachdiff.store import zoo
    method = load_zoo_model("synthetic-microtubules-ddpm-quick")   # teachdiff.store.resolve

Command line::

    teachdiff weights list
    teachdiff weights suggest capture.tif            # which model fits these images?
    teachdiff weights fetch synthetic-microtubules-ddpm-quick
    teachdiff restore --model synthetic-microtubules-ddpm-quick capture.tif --out restored/
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from teachdiff.core.errors import CommandError

__all__ = ["ZooError", "ZooEntry", "manifest_path", "read_manifest", "write_manifest", "entries", "is_zoo_name", "get", "find", "cache_dir", "file_sha256", "fetch", "verify", "export_checkpoint", "reported_mae", "card_groups"]


BUNDLED_DIR = Path(__file__).resolve().parents[1] / "weights"
MANIFEST_FORMAT = "teachdiff-zoo-v1"


class ZooError(CommandError):
    """A zoo checkpoint that cannot be found, fetched or verified."""


@dataclass(frozen=True)
class ZooEntry:
    """One released checkpoint (see the module docstring for what each field means)."""

    name: str
    dataset: str
    model: str
    preset: str
    config: dict
    sha256: str
    size: int
    file: str  # file name: in the bundled folder, in the cache, and the last part of the URL
    bundled: bool = False
    url: str | None = None
    command: str = ""
    seed: int = 0
    train_seconds: float | None = None
    machine: str = ""
    steps: int | None = None
    scores: dict = field(default_factory=dict)
    notes: str = ""
    training: dict = field(default_factory=dict)  # what the training protocol gave it (teachdiff.training.protocol)
    data_card: dict = field(default_factory=dict)  # what it was trained on: teachdiff.store.datacard

    @classmethod
    def from_dict(cls, d: dict) -> "ZooEntry":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ZooError(f"zoo manifest entry {d.get('name', '?')!r} has unknown fields {unknown}; it was written "
                           "by a newer teachdiff: upgrade teachdiff.")
        return cls(**d)


def manifest_path(folder: str | Path | None = None) -> Path:
    return Path(folder) / "manifest.json" if folder is not None else BUNDLED_DIR / "manifest.json"


def read_manifest(path: str | Path | None = None) -> list[ZooEntry]:
    """The entries of a manifest file (default: the package's); an absent file has none."""
    path = Path(path) if path is not None else manifest_path()
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    if data.get("format") != MANIFEST_FORMAT:
        raise ZooError(f"{path} is not a teachdiff zoo manifest (format {MANIFEST_FORMAT!r} expected).")
    return [ZooEntry.from_dict(d) for d in data["models"]]


def write_manifest(entries_: list[ZooEntry], path: str | Path | None = None) -> Path:
    """Write entries (sorted by name) atomically."""
    path = Path(path) if path is not None else manifest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": MANIFEST_FORMAT,
               "models": [dataclasses.asdict(e) for e in sorted(entries_, key=lambda e: e.name)]}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def entries() -> list[ZooEntry]:
    """Every released checkpoint of this version of teachdiff."""
    return read_manifest()


def is_zoo_name(name) -> bool:
    return isinstance(name, str) and any(e.name == name for e in entries())


def get(name: str) -> ZooEntry:
    """The entry called ``name``; a clear error listing the names there are otherwise."""
    for entry in entries():
        if entry.name == name:
            return entry
    names = [e.name for e in entries()]
    listing = ", ".join(names) if names else "none in this version"
    raise ZooError(f"no zoo model called {name!r}; released models: {listing}. See `teachdiff weights list`.")


def find(dataset: str, model: str, preset: str) -> ZooEntry | None:
    """The entry trained on ``dataset`` with ``model`` and ``preset``, or None."""
    return next((e for e in entries() if (e.dataset, e.model, e.preset) == (dataset, model, preset)), None)


def cache_dir() -> Path:
    """Where fetched checkpoints are kept: ``$TEACHDIFF_WEIGHTS`` or the user cache folder."""
    if os.environ.get("TEACHDIFF_WEIGHTS"):
        return Path(os.environ["TEACHDIFF_WEIGHTS"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("teachdiff")) / "weights"


def file_sha256(path: str | Path) -> str:
    from teachdiff.data.download import file_digest

    return file_digest(path, "sha256")


def _matches(path: Path, entry: ZooEntry) -> bool:
    from teachdiff.data.download import file_problem

    return path.is_file() and file_problem(path, entry.size, None, entry.sha256) is None


def _resumable_downloader(entry: ZooEntry, folder: Path, progress: bool, timeout: float):
    """A pooch downloader that keeps the bytes of an interrupted download in ``<file>.part``."""
    from teachdiff.data.download import DownloadError, fetch_range

    part = folder / f"{entry.file}.part"

    def download(url: str, output_file, pooch_instance) -> None:
        start = part.stat().st_size if part.exists() else 0
        if start > entry.size:
            part.unlink()
            start = 0
        try:
            if start < entry.size:
                fetch_range(url, part, start, timeout, progress, manual_hint="")
        except DownloadError as err:
            raise ZooError(f"cannot download zoo model {entry.name!r} from {url}: {err}\n{_manual_hint(entry)}") \
                from None
        if not _matches(part, entry):
            part.unlink()  # never resume from bytes that do not belong to the file
            raise ZooError(f"the download of {entry.file} from {url} does not match the manifest's sha256 "
                           f"{entry.sha256[:12]}... (and size {entry.size}); it was deleted. Run the fetch again; "
                           f"if it fails the same way the published file has changed.\n{_manual_hint(entry)}")
        os.replace(part, output_file)

    return download


def _manual_hint(entry: ZooEntry) -> str:
    target = cache_dir() / entry.file
    where = f"from {entry.url} " if entry.url else ""
    return (f"To install it by hand, fetch {entry.file} {where}on a machine with internet and copy it to {target} "
            f"(sha256 {entry.sha256}); `teachdiff weights verify` checks it.")


def fetch(name: str, progress: bool = True, timeout: float = 15.0) -> Path:
    """The local path of zoo checkpoint ``name``: cache, then bundled file, then download (module docstring)."""
    entry = get(name)
    cached = cache_dir() / entry.file
    if _matches(cached, entry):
        return cached
    bundled = BUNDLED_DIR / entry.file
    if entry.bundled and _matches(bundled, entry):
        return bundled
    if entry.url is None:
        problem = (f"its bundled file {bundled} is missing or does not match the manifest's sha256"
                   if entry.bundled else "it has no URL")
        raise ZooError(f"zoo model {name!r} is not available: {problem}. Reinstall teachdiff, or rebuild the "
                       f"model with: {entry.command}")
    import pooch

    folder = cached.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(f"cannot create the weights cache {folder} ({err.strerror}); set TEACHDIFF_WEIGHTS to a "
                       "writable folder.") from None
    path = pooch.retrieve(entry.url, known_hash=f"sha256:{entry.sha256}", fname=entry.file, path=folder,
                          downloader=_resumable_downloader(entry, folder, progress, timeout), progressbar=False)
    return Path(path)


def verify(names: list[str] | None = None) -> list[tuple[str, str]]:
    """(name, status) for each entry: where a good copy is, or what is wrong. Downloads nothing."""
    report = []
    for entry in entries() if names is None else [get(n) for n in names]:
        cached, bundled = cache_dir() / entry.file, BUNDLED_DIR / entry.file
        if _matches(cached, entry):
            status = f"ok (cache: {cached})"
        elif entry.bundled and _matches(bundled, entry):
            status = "ok (bundled)"
        elif cached.exists() or (entry.bundled and bundled.exists()):
            status = "CORRUPT: a copy exists but its sha256 differs; `teachdiff weights fetch` replaces it"
        else:
            status = "not downloaded" if entry.url else "MISSING: bundled file absent"
        report.append((entry.name, status))
    return report


def released_weights(checkpoint: str | Path, half: bool = False) -> dict:
    """The checkpoint a release stores: the weights it restores with (the EMA weights when the
    run kept them, without the method's ``training_only`` parts such as pix2pix's
    discriminator) and its configuration, without the state that only continues training
    (:data:`teachdiff.store.checkpoint.TRAINING_STATE_KEYS`). ``half``: floating-point
    weights rounded to float16, half the bytes; ``load_state_dict`` copies them back into the
    float32 network, so only the rounding (a relative 2**-11) remains."""
    from teachdiff.methods.base import method_class
    from teachdiff.store.checkpoint import load_checkpoint, without_training_state

    payload = load_checkpoint(checkpoint)
    if payload.get("ema") is not None:
        payload["model"] = payload["ema"]
    dropped = tuple(f"{name}." for name in method_class(payload["kind"]).training_only)
    payload["model"] = {k: v.half() if half and v.is_floating_point() else v
                        for k, v in payload["model"].items() if not k.startswith(dropped)}
    released = without_training_state(payload)
    released["weights_dtype"] = "float16" if half else "float32"
    return released


def export_checkpoint(checkpoint: str | Path, dest: str | Path, metadata: dict | None = None,
                      half: bool = False) -> tuple[str, int]:
    """Write a released copy of a training checkpoint (:func:`released_weights`) with ``metadata``.
    Returns (sha256, size in bytes) for the manifest."""
    import torch

    from teachdiff.store.checkpoint import atomic_write

    released = released_weights(checkpoint, half)
    released["zoo"] = dict(metadata or {})
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, lambda tmp: torch.save(released, tmp))
    return file_sha256(dest), dest.stat().st_size


def reported_mae(entry: ZooEntry) -> float | None:
    """The test MAE of what `teachdiff restore` writes: DDPM-avg for the DDPM, else the model's."""
    return entry.scores.get("avg_mae", entry.scores.get("mae"))


def card_groups(rows: list[ZooEntry]) -> list[tuple[dict, list[ZooEntry]]]:
    """Entries grouped by identical data card, in manifest order."""
    groups: dict[str, tuple[dict, list[ZooEntry]]] = {}
    for e in rows:
        groups.setdefault(json.dumps(e.data_card, sort_keys=True), (e.data_card, []))[1].append(e)
    return list(groups.values())
