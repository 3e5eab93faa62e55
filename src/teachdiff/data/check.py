"""``check_dataset``: what a dataset folder contains and what the loaders will make of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from teachdiff.data.io import read_image
from teachdiff.data.prepare import SPLITS, _resolve_root, find_pairs, prepare_dataset
from teachdiff.data.registry import get_dataset_info

__all__ = ["SplitReport", "DatasetReport", "check_dataset"]


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

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        lines = [
            f"dataset     {self.name}",
            f"folder      {self.root}",
            f"layout      {self.layout}",
            f"bit depth   {self.bit_depth} (registry expects {self.expected_bit_depth})",
            f"patches     non-overlapping {self.patch_size}x{self.patch_size}",
        ]
        if self.max_shift is not None:
            lines.append(f"registration largest shift (dy, dx) = {self.max_shift} px")
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
    from tqdm.auto import tqdm

    info = get_dataset_info(name)
    if info.is_synthetic:
        raise ValueError(f"'{name}' is generated on the fly; there is no folder to check.")
    folder = _resolve_root(info, root)
    found = find_pairs(folder, info)
    problems: list[str] = []
    warnings: list[str] = []
    if decode:
        files = sorted({p for pairs in found.values() for pair in pairs for p in (pair.x_path, pair.y_path)})
        for path in tqdm(files, desc="decoding", disable=not progress, leave=False):
            try:
                read_image(path)
            except ValueError as err:
                problems.append(str(err))
    sets = prepare_dataset(name, folder, patch_size, progress=progress, register=None if not problems else False)
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
            "FOVs split automatically in the proportions of Table S1"
        )
    else:
        layout = "train/ val/ test/ folders"
    splits = {}
    for i, split in enumerate(SPLITS):
        ps = sets[split]
        splits[split] = SplitReport(
            fovs=len(ps.fovs),
            pairs=len(ps.pairs),
            slices=sum(p.shape[0] for p in ps.pairs),
            patches=len(ps),
            sub_fovs=len({ps.sub_fov(j) for j in range(len(ps))}),
            expected_patches=info.table_s1[i] if info.table_s1 else None,
        )
        if splits[split].patches == 0:
            problems.append(f"the {split} split has no {patch_size}x{patch_size} patches")
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
