"""Data: a synthetic microscope, the registry of the paper's datasets, preparation and loaders.

Quick start::

    pass
    loaders = make_dataloaders("synthetic-microtubules", quick=True)   # offline, CPU-sized
    batch = next(iter(loaders["train"]))    # {"x", "y": (8, 1, 64, 64) in [-1, 1], "name", "index"}

    loaders = make_dataloaders("zebrafish")  # after `teachdiff data download zebrafish`

    datasets = make_folder_datasets(FolderConfig("~/my-pairs", bit_depth=12))  # your raw/ + gt/ folder

See :mod:`teachdiff.data.registry` for the datasets; for the preparation steps (paper §S1)
:mod:`teachdiff.data.pairs` (which files pair up, the splits), :mod:`teachdiff.data.register`
(the shift between input and target), :mod:`teachdiff.data.duplicates` (repeated targets) and
:mod:`teachdiff.data.prepare` (patches); :mod:`teachdiff.data.loaders` for the batch format and
:mod:`teachdiff.data.folder` for your own folders of image pairs and their normalisation.
"""

from __future__ import annotations

import importlib

# Name -> submodule that defines it. The submodules are imported on first use (PEP 562), not
# here: `teachdiff --help` and `teachdiff data list` need the registry, not torch and scipy.
_EXPORTS = {
    "check": ("DatasetReport", "check_dataset"),
    "folder": ("FolderConfig", "Normalization", "make_folder_datasets"),
    "download": ("DownloadError", "download_dataset", "download_file"),
    "io": ("read_image", "write_image"),
    "teachdiff.core.scale": ("from_model_range", "to_display_range", "to_model_range"),  # owned by core
    "loaders": ("Augmentation", "EpochSampler", "PairedPatchDataset", "SyntheticSizes", "make_dataloaders",
                "make_datasets", "synthetic_patch_sets"),
    "prepare": ("PatchSet", "prepare_dataset"),
    "register": ("apply_shift", "estimate_shift", "register_pair"),
    "registry": ("CASES", "DATASETS", "PAPER_DATASETS", "DatasetInfo", "data_dir", "get_dataset_info"),
    "synthetic": ("MicroscopeConfig", "SyntheticPair", "make_synthetic_dataset", "simulate_pair"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _MODULE_OF[name]
    value = getattr(importlib.import_module(module if "." in module else f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    "Augmentation",
    "CASES",
    "DATASETS",
    "DatasetInfo",
    "DatasetReport",
    "DownloadError",
    "EpochSampler",
    "FolderConfig",
    "Normalization",
    "MicroscopeConfig",
    "PAPER_DATASETS",
    "PairedPatchDataset",
    "PatchSet",
    "SyntheticPair",
    "SyntheticSizes",
    "apply_shift",
    "check_dataset",
    "data_dir",
    "download_dataset",
    "download_file",
    "estimate_shift",
    "from_model_range",
    "get_dataset_info",
    "make_dataloaders",
    "make_folder_datasets",
    "make_datasets",
    "make_synthetic_dataset",
    "prepare_dataset",
    "read_image",
    "register_pair",
    "simulate_pair",
    "synthetic_patch_sets",
    "to_display_range",
    "to_model_range",
    "write_image",
]
