"""``check_dataset``: what a dataset folder contains and what the loaders will make of it."""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path

from teachdiff.data.io import read_image
from teachdiff.data.pairs import SPLITS, resolve_root, find_pairs
from teachdiff.data.prepare import prepare_dataset
from teachdiff.data.registry import get_dataset_info

__all__ = ["SplitReport", "DatasetReport", "check_dataset", "check_folder"]


@dataclass
class SplitReport:
    fovs: int
    pairs: int  # image pairs (a z-stack counts once)
    slices: int  # 2-D pairs (z-slices)
    patches: int
    sub_fovs: int  # distinct (FOV, tile) positions: repeated captures share one
    expected_patches: int | None  # Table S1


@dataclass
class DatasetReport:
    name: str
    root: Path
    layout: str
    bit_depth: int
    expected_bit_depth: int
    patch_size: int
    splits: dict[str, SplitReport]
    max_shift: tuple[int, int] | None = None
    problems: list[str] = field(default_factory=list)  # the loaders would fail or train on bad data
    warnings: list[str] = field(default_factory=list)  # usable, but not what the paper's data are
    scaling: str | None = None  # the normalisation, for a user folder
    percentiles: dict[str, dict[float, float]] | None = None  # {"raw": {q: value}, "gt": ...} (train split)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        lines = [
            f"dataset     {self.name}",
            f"folder      {self.root}",
            f"layout      {self.layout}",
        ]
        if self.bit_depth:
            lines.append(f"bit depth   {self.bit_depth} " + (f"(registry expects {self.expected_bit_depth})"
                                                             if self.expected_bit_depth else "(the files' pixel type)"))
        lines.append(f"patches     non-overlapping {self.patch_size}x{self.patch_size}")
        if self.scaling:
            lines.append(f"scaling     {self.scaling}")
        if self.percentiles:
            qs = list(next(iter(self.percentiles.values())))
            lines.append("intensity   " + "".join(f"{f'p{q:g}':>10}" for q in qs) + "   (train split)")
            for what, values in self.percentiles.items():
                lines.append(f"  {what:<10}" + "".join(f"{values[q]:>10.6g}" for q in qs))
        if self.max_shift is not None:
            lines.append(f"registration largest shift (dy, dx) = {self.max_shift} px")
        if self.splits:
            lines.append(f"{'split':<7}{'FOVs':>6}{'pairs':>8}{'slices':>8}{'sub-FOVs':>10}{'patches':>9}{'Table S1':>10}")
        for split, r in self.splits.items():
            expected = "-" if r.expected_patches is None else str(r.expected_patches)
            lines.append(f"{split:<7}{r.fovs:>6}{r.pairs:>8}{r.slices:>8}{r.sub_fovs:>10}{r.patches:>9}{expected:>10}")
        if self.warnings:
            lines.append(f"warnings ({len(self.warnings)}):")
            lines += [f"  - {w}" for w in self.warnings]
        if self.problems:
            lines.append(f"problems ({len(self.problems)}):")
            lines += [f"  - {p}" for p in self.problems]
        else:
            lines.append("problems    none")
        return "\n".join(lines)


def check_dataset(
    name: str,
    root: str | Path | None = None,
    patch_size: int = 256,
    decode: bool = True,
    progress: bool = True,
) -> DatasetReport:
    """Inspect a dataset folder: pairing, bit depth, FOVs and patches per split, problems.

    Layout errors (no pairs, unpaired files, size mismatch) raise, as in the loaders; problems
    that do not stop indexing (unreadable pixel data, a split without patches) are collected in
    ``report.problems``. What the loaders handle but differs from the paper's data (a bit depth
    other than the registry's, patch counts other than Table S1, e.g. a smaller or simulated
    folder) goes to ``report.warnings``; ``report.ok`` is False only for problems. With
    ``decode`` every file is fully decoded once, which finds truncated files that headers do
    not reveal.
    """
    info = get_dataset_info(name)
    if info.is_synthetic:
        raise ValueError(f"'{name}' is generated on the fly; there is no folder to check.")
    folder = resolve_root(info, root)
    found = find_pairs(folder, info)
    problems = _decode_problems(found, progress) if decode else []
    warnings: list[str] = []
    sets = _indexed(warnings, lambda: prepare_dataset(name, folder, patch_size, progress=progress,
                                                      register=None if not problems else False))
    if problems and info.register:
        problems.append("registration was skipped because some files cannot be decoded")
    bit_depth = sets["train"].bit_depth
    if bit_depth != info.bit_depth:
        warnings.append(
            f"files are {bit_depth}-bit but '{name}' is expected to be {info.bit_depth}-bit; intensities are "
            f"scaled from the files' bit depth ({bit_depth})"
        )
    if None in found:
        layout = "fixed split " + ", ".join(f"{s}={list(v)}" for s, v in info.fixed_split.items()) if info.fixed_split else (
            "FOVs split automatically in the proportions of Table S1" + _merged_words(sets["train"].merged_fovs)
        )
    else:
        layout = "train/ val/ test/ folders"
    splits = _split_reports(sets, info.table_s1, patch_size, problems)
    shifts = [s for ps in sets.values() for s in ps.shifts]
    max_shift = max(shifts, key=lambda s: abs(s[0]) + abs(s[1])) if info.register and shifts else None
    if info.table_s1 and patch_size == 256:
        got = tuple(splits[s].patches for s in SPLITS)
        if got != info.table_s1:
            warnings.append(f"patch counts {got} differ from the paper's Table S1 {info.table_s1} (train, val, "
                            "test): not the paper's complete dataset; training and scoring work all the same")
    return DatasetReport(
        name=name,
        root=folder,
        layout=layout,
        bit_depth=bit_depth,
        expected_bit_depth=info.bit_depth,
        patch_size=patch_size,
        splits=splits,
        max_shift=max_shift,
        problems=problems,
        warnings=warnings,
    )


def _indexed(warnings: list[str], index):
    """``index()`` with the warnings it raises (e.g. FOVs grouped for duplicated targets,
    :func:`teachdiff.data.duplicates.duplicate_target_groups`) added to ``warnings``, not printed."""
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        sets = index()
    warnings += [str(w.message) for w in caught]
    return sets


def _merged_words(groups: list[list[str]]) -> str:
    if not groups:
        return ""
    return (f"; {sum(len(g) for g in groups)} FOVs with duplicated targets grouped into {len(groups)} "
            "(see warnings)")


def _decode_problems(found, progress: bool) -> list[str]:
    """Decode every file once; the errors of those that fail (truncated files pass header checks)."""
    from tqdm.auto import tqdm

    problems = []
    files = sorted({p for pairs in found.values() for pair in pairs for p in (pair.x_path, pair.y_path)})
    for path in tqdm(files, desc="decoding", disable=not progress, leave=False):
        try:
            read_image(path)
        except ValueError as err:
            problems.append(str(err))
    return problems


def _split_reports(sets, table_s1, patch_size: int, problems: list[str]) -> dict[str, SplitReport]:
    splits = {}
    for i, split in enumerate(SPLITS):
        ps = sets[split]
        splits[split] = SplitReport(
            fovs=len(ps.fovs),
            pairs=len(ps.pairs),
            slices=sum(p.shape[0] for p in ps.pairs),
            patches=len(ps),
            sub_fovs=len({ps.sub_fov(j) for j in range(len(ps))}),
            expected_patches=table_s1[i] if table_s1 else None,
        )
        if splits[split].patches == 0:
            problems.append(f"the {split} split has no {patch_size}x{patch_size} patches")
    return splits


def check_folder(config, patch_size: int = 256, decode: bool = True, progress: bool = True) -> DatasetReport:
    """Inspect a folder of your own pairs (a :class:`teachdiff.data.folder.FolderConfig`).

    Reports FOVs, pairs and patches per split, the bit depth, intensity percentiles of the
    training inputs and targets, the normalisation training would use, the problems found
    (undecodable files, an empty split, values beyond ``--bit-depth``) and, as a warning, 16-bit
    files with 12-bit-like content (:func:`teachdiff.data.folder.bit_depth_warning`). Layout
    errors (no pairs, unpaired names, size mismatch) raise, as in training.
    """
    from teachdiff.data import folder as folders

    info = folders.folder_info(config)
    root = resolve_root(info, config.path)
    found = find_pairs(root, info)
    problems = _decode_problems(found, progress) if decode else []
    if problems:  # indexing would fail on the same files: report them all instead
        return DatasetReport(name="your folder", root=root, layout="not indexed (files cannot be decoded)",
                             bit_depth=0, expected_bit_depth=0, patch_size=patch_size, splits={}, problems=problems)
    warnings: list[str] = []
    sets = _indexed(warnings, lambda: folders.prepare_folder(config, patch_size, progress=progress))
    splits = _split_reports(sets, None, patch_size, problems)
    train = sets["train"]
    stats = folders.intensity_stats(train, (config.pmin, config.pmax))
    scaling = None
    if config.bit_depth is not None and stats.max_value > 2**config.bit_depth - 1:
        problems.append(f"values up to {stats.max_value:.0f} (e.g. in {stats.x_max_file}) exceed the "
                        f"{config.bit_depth}-bit range given by --bit-depth {config.bit_depth}")
    else:
        if config.bit_depth is None and config.normalize == "bitdepth":
            message = folders.bit_depth_warning(stats.max_value, train.bit_depth, "bit depth")
            if message:
                warnings.append(message)
        try:
            scaling = folders.fit_normalization(config, train, stats).describe()
        except ValueError as err:
            problems.append(str(err))
    layout = "train/ val/ test/ folders" if None not in found else (
        "FOVs split by a seeded shuffle, fractions " + "/".join(f"{f:g}" for f in config.split_fractions)
        + _merged_words(train.merged_fovs))
    shifts = [s for ps in sets.values() for s in ps.shifts]
    return DatasetReport(
        name="your folder", root=root, layout=layout, bit_depth=train.container_bits, expected_bit_depth=0,
        patch_size=patch_size, splits=splits,
        max_shift=max(shifts, key=lambda s: abs(s[0]) + abs(s[1])) if config.register and shifts else None,
        problems=problems, warnings=warnings, scaling=scaling,
        percentiles={"raw": {q: stats.x[q] for q in folders.REPORTED_PERCENTILES},
                     "gt": {q: stats.y[q] for q in folders.REPORTED_PERCENTILES}},
    )
