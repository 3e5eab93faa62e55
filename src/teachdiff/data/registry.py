"""The one place where the paper's four datasets (and their synthetic stand-ins) are configured.

Every dataset has a :class:`DatasetInfo`: where it comes from, how to cite it, its licence,
the folder layout the loaders expect, its pixel size (for the decorrelation resolution
metric), bit depth, whether pairs need rigid registration (paper §S1.1) and the split of the
paper's Table S1. The CLI (``teachdiff data list``), the loaders, the tests and the book all
read this registry, so a number changed here changes everywhere.

Pixel sizes: the paper states 25 nm (microtubules) and 20 nm (mitochondria), §3.1.1. It does
not state them for the synapse and zebrafish data, and we could not confirm them from the
original publications offline. We use the largest pixel size compatible with the paper's own
Table S5: the decorrelation resolution is ``R = 2 p / k_c`` with ``k_c <= 1`` (Nyquist), so
``p <= min R / 2`` over the rows of Table S5 (synapses: 143.14 nm for Raw -> 71.6 nm;
zebrafish: 730.05 nm for pix2pix -> 365 nm). Absolute resolutions in nm of these two datasets
are therefore upper-bound conversions; the resolution *ratio* (Eq. 14) does not depend on
the pixel size. Override with ``dataclasses.replace(info, pixel_size_nm=...)`` when known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The synthetic structures (teachdiff.data.synthetic simulates each).
CASES = ("microtubules", "mitochondria", "synapses", "zebrafish")

__all__ = [
    "CASES",
    "DatasetInfo",
    "DownloadSpec",
    "DATASETS",
    "PAPER_DATASETS",
    "REAL_DATASETS",
    "get_dataset_info",
    "data_dir",
    "default_root",
    "PAIRED_FOLDER_LAYOUT",
]

PAPER_CITATION = (
    "Osuna-Vargas P., Wehrheim M. H., Zinz L., Rahm J., Balakrishnan A., Kaminer A., Heilemann M., "
    "Kaschube M. Denoising diffusion models for high-resolution microscopy image restoration. WACV 2025."
)

PAIRED_FOLDER_LAYOUT = """\
ROOT/raw/<name>.tif   low-quality input x (TIFF or PNG; 8- or 16-bit grayscale;
                      2-D (H, W) or a z-stack (Z, H, W) whose slices are paired one by one)
ROOT/gt/<name>.tif    high-quality target y, same <name> (extension may differ), same size
Each <name> is one field of view (FOV); FOVs are split into train/val/test as a whole.
Alternatives:
  ROOT/raw/<fov>/<name>.tif + ROOT/gt/<fov>/<name>.tif   several images per FOV, paired by name
  ROOT/raw/<fov>/<name>.png + ROOT/gt/<fov>/<one file>   many captures of a FOV, one target (FMD)
  ROOT/{train,val,test}/raw/... and .../gt/...           to fix the split yourself"""


@dataclass(frozen=True)
class DownloadSpec:
    """Where an openly downloadable dataset comes from and how to check it.

    ``url`` and then ``fallback_urls`` are tried in order by ``teachdiff data download``;
    ``mirrors`` are pages for a download by hand (in a browser).
    """

    url: str
    filename: str
    landing_page: str
    md5: str | None = None  # checksum, where the publisher states one
    size_bytes: int | None = None
    mirrors: tuple[str, ...] = ()
    fallback_urls: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        """Every source, in the order they are tried."""
        return (self.url, *self.fallback_urls)


@dataclass(frozen=True)
class DatasetInfo:
    """Everything the library knows about one dataset."""

    name: str
    title: str
    modality: str  # raw -> GT
    source: str
    citation: str
    licence: str
    layout: str
    pixel_size_nm: float
    pixel_size_source: str
    bit_depth: int
    register: bool  # rigid registration of raw onto GT before cutting patches (§S1.1)
    n_fov: int | None = None  # Table S1
    fov_shape: tuple[int, ...] | None = None  # Table S1, (H, W) or (H, W, Z)
    table_s1: tuple[int, int, int] | None = None  # train / val / test patches (Table S1)
    table_s1_sub_fovs: tuple[int, int, int] | None = None  # zebrafish: distinct sub-FOVs
    fixed_split: dict[str, tuple[str, ...]] = field(default_factory=dict)  # split -> FOV names
    download: DownloadSpec | None = None
    synthetic_case: str | None = None
    notes: str = ""
    fractions: tuple[float, float, float] | None = None  # train/val/test FOV fractions (default: Table S1's)
    bundled: str | None = None  # folder inside the package that holds the data (offline, no download)

    @property
    def bundled_root(self) -> Path | None:
        """The folder of a dataset that ships with teachdiff, else None."""
        return None if self.bundled is None else Path(__file__).parent / self.bundled
    # The microscope technique of the inputs (and of the targets, where it differs): what a user
    # compares with their own capture when choosing a model. ``modality`` above is the relation.
    imaging: str = ""
    # How ``pixel_size_nm`` is known: "stated" (by the data's publication), "upper bound" (derived,
    # see the module docstring), "nominal" (simulated data: the pixel size of the data imitated).
    pixel_size_kind: str = "stated"

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic_case is not None

    @property
    def split_fractions(self) -> tuple[float, float, float]:
        """Fractions of FOVs for train/val/test: ``fractions``, else from the patch counts of Table S1."""
        if self.fractions is not None:
            return self.fractions
        if self.table_s1 is None:
            return (0.8, 0.1, 0.1)
        total = sum(self.table_s1)
        return tuple(n / total for n in self.table_s1)  # type: ignore[return-value]


FMD_CITATION = (
    "Zhang Y., Zhu Y., Nichols E., Wang Q., Zhang S., Smith C., Howard S. A Poisson-Gaussian "
    "Denoising Dataset with Real Fluorescence Microscopy Images. CVPR 2019, pp. 11710-11718."
)
SYNAPSE_CITATION = (
    "Xu Y. K. T., Graves A. R., Coste G. I., Huganir R. L., Bergles D. E., Charles A. S., "
    "Sulam J. Cross-modality supervised image restoration enables nanoscale tracking of "
    "synaptic plasticity in living mice. Nature Methods 20(6):935-944, 2023."
)

_FMD_LAYOUT = """\
ROOT/Confocal_FISH/raw/<fov>/*.png   50 single captures per FOV, <fov> = 1..20 (8-bit, 512x512)
ROOT/Confocal_FISH/gt/<fov>/avg50.png the average of the 50 captures (target)
(FMD's avg2..avg16 folders may be present and are ignored.) ROOT may also be the
Confocal_FISH folder itself. `teachdiff data download zebrafish` creates this layout."""

# The two STED sets are the paper authors' own and share these descriptions.
STED_MODALITY = "STED low light dose -> STED high light dose"
AUTHORS_SOURCE = ("The paper's authors (novel dataset published alongside the paper, §3.1.1); no "
                  "public download is known to teachdiff: provide the folder yourself.")
AUTHORS_LICENCE = "Set by the authors where they publish the data; not known to teachdiff."

PAPER_DATASETS: dict[str, DatasetInfo] = {
    "microtubules": DatasetInfo(
        name="microtubules",
        title="Microtubules (fixed cells, alpha-tubulin), STED",
        modality=STED_MODALITY,
        source=AUTHORS_SOURCE,
        citation=PAPER_CITATION,
        licence=AUTHORS_LICENCE,
        layout=PAIRED_FOLDER_LAYOUT,
        pixel_size_nm=25.0,
        pixel_size_source="paper §3.1.1",
        bit_depth=8,
        register=True,
        imaging="STED (fixed cells)",
        n_fov=104,
        fov_shape=(2560, 2560),
        table_s1=(1272, 89, 265),
    ),
    "mitochondria": DatasetInfo(
        name="mitochondria",
        title="Mitochondria (living cells, TOM20), STED",
        modality=STED_MODALITY,
        source=AUTHORS_SOURCE,
        citation=PAPER_CITATION,
        licence=AUTHORS_LICENCE,
        layout=PAIRED_FOLDER_LAYOUT,
        pixel_size_nm=20.0,
        pixel_size_source="paper §3.1.1",
        bit_depth=8,
        register=False,
        imaging="STED (living cells)",
        n_fov=345,
        fov_shape=(600, 600),
        table_s1=(2646, 153, 306),
    ),
    "synapses": DatasetInfo(
        name="synapses",
        title="Synapses (fixed mouse brain slices, SEP-GluA1), confocal -> Airyscan",
        modality="confocal -> Airyscan super-resolution (z-stacks, each slice a pair)",
        source="Xu et al., Nature Methods 2023 (data availability statement of that paper); no "
        "download is built into teachdiff: provide the folder yourself.",
        citation=SYNAPSE_CITATION,
        licence="Set by Xu et al. where they publish the data; not known to teachdiff.",
        layout=PAIRED_FOLDER_LAYOUT,
        pixel_size_nm=71.6,
        pixel_size_source="not stated in the paper; upper bound from Table S5 (R_raw = 143.14 nm "
        ">= 2 p), see teachdiff.data.registry",
        bit_depth=16,
        register=True,
        imaging="confocal (input), Airyscan (target)",
        pixel_size_kind="upper bound",
        n_fov=24,
        fov_shape=(550, 550, 20),
        table_s1=(1198, 56, 112),
        notes="bit depth: the expected value; the loaders detect it from the files.",
    ),
    "zebrafish": DatasetInfo(
        name="zebrafish",
        title="Zebrafish embryos (fixed, sox10:mEGFP), FMD Confocal_FISH",
        modality="single confocal capture -> average of 50 captures",
        source="Fluorescence Microscopy Denoising (FMD) dataset, University of Notre Dame "
        "(https://github.com/yinhaoz/denoising-fluorescence)",
        citation=FMD_CITATION,
        licence="As stated on the FMD record at CurateND (curate.nd.edu); not checked offline.",
        layout=_FMD_LAYOUT,
        pixel_size_nm=365.0,
        pixel_size_source="not stated in the paper; upper bound from Table S5 (R = 730.05 nm "
        ">= 2 p), see teachdiff.data.registry",
        bit_depth=8,
        register=False,
        imaging="confocal",
        pixel_size_kind="upper bound",
        n_fov=20,
        fov_shape=(512, 512),
        table_s1=(3600, 200, 200),
        table_s1_sub_fovs=(72, 4, 4),
        # FOV 19 is FMD's own test FOV; FOV 20 (the other FOV FMD's training code never
        # reserves) is our validation FOV. Each 512^2 FOV gives 4 sub-FOVs of 256^2, so
        # test = val = 4 sub-FOVs x 50 captures = 200 pairs and train = 72 x 50 = 3600.
        fixed_split={"test": ("19",), "val": ("20",)},
        download=DownloadSpec(
            url="https://ndownloader.figshare.com/files/43648074",
            filename="Confocal_FISH.tar",
            landing_page="https://curate.nd.edu/articles/dataset/Fluorescence_Microscopy_Denoising_FMD_dataset/24744648",
            mirrors=("https://drive.google.com/drive/folders/1aygMzSDdoq63IqSk-ly8cMq0_owup8UM",),
            # figshare's API serves the same file; the Google Drive id is FMD's own
            # (Confocal_FISH in download_dataset.sh of github.com/yinhaoz/denoising-fluorescence).
            fallback_urls=(
                "https://api.figshare.com/v2/file/download/43648074",
                "https://drive.google.com/uc?export=download&id=1SxmsythWfxnfKJfGWpT_7Adebi8jUK98",
            ),
        ),
    ),
}

HAGEN_CITATION = (
    "Hagen G. M., Bendesky J., Machado R., Nguyen T.-A., Kumar T., Ventura J. Fluorescence microscopy "
    "datasets for training deep neural networks. GigaScience 10(5):giab032, 2021 (data: GigaDB, doi:10.5524/100888)."
)

REAL_DATASETS: dict[str, DatasetInfo] = {
    "hagen": DatasetInfo(
        name="hagen",
        title="Real BPAE cells (actin, mitochondria, membrane, nuclei), widefield 20x/60x and confocal",
        modality="short exposure (low SNR) -> long exposure (high SNR), same field, 8-bit display images",
        source="Sample crops of Hagen et al.'s GigaDB release, as copied into github.com/ND-HowardGroup/"
        "Instant-Image-Denoising; bundled with teachdiff (provenance and checks: data/bundled/hagen/README.md)",
        citation=HAGEN_CITATION,
        licence="CC0 1.0 (GigaDB's terms for its datasets)",
        layout="bundled: {train,val,test}/raw/<name>.tif (low SNR) + {train,val,test}/gt/<name>.tif (high SNR); "
        "spatially disjoint regions of each field, fixed",
        pixel_size_nm=1.0,
        pixel_size_source="not stated with these files (20x and 60x objectives differ): 1, so that "
        "resolutions read in pixels",
        imaging="widefield (20x and 60x objectives) and confocal fluorescence",
        bit_depth=8,
        register=False,
        n_fov=7,
        notes="Display images: intensities are relative and the low- and high-SNR captures were scaled "
        "separately; the nucleus field is in the test split only (a structure no model trains on).",
        bundled="bundled/hagen",
    ),
}

_SYNTHETIC_LAYOUT = "none: generated on the fly by teachdiff.data.synthetic (deterministic in the seed)"

DATASETS: dict[str, DatasetInfo] = {**PAPER_DATASETS, **REAL_DATASETS}
for _case in CASES:
    _paper = PAPER_DATASETS[_case]
    DATASETS[f"synthetic-{_case}"] = DatasetInfo(
        name=f"synthetic-{_case}",
        title=f"Synthetic {_case} (simulated microscope; stand-in for '{_case}')",
        modality=_paper.modality,
        source="teachdiff.data.synthetic (no download, works offline)",
        citation="teachdiff (this library); imitates " + _paper.citation,
        licence="MIT (generated data)",
        layout=_SYNTHETIC_LAYOUT,
        pixel_size_nm=_paper.pixel_size_nm,
        pixel_size_source=f"same as '{_case}' (nominal)",
        bit_depth=8,
        register=False,
        table_s1=_paper.table_s1,
        synthetic_case=_case,
        imaging=f"simulated {_paper.imaging}",
        pixel_size_kind="nominal",
    )


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (clear error listing the known names otherwise)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None


def data_dir() -> Path:
    """Where downloads and prepared data live: ``$TEACHDIFF_DATA``, else the user data dir."""
    override = os.environ.get("TEACHDIFF_DATA", "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("teachdiff", appauthor=False))


def default_root(name: str) -> Path:
    """The folder a dataset is looked for in when no root is given: the package's own folder for a
    bundled dataset, else ``data_dir()/<name>``."""
    info = get_dataset_info(name)
    return info.bundled_root if info.bundled else data_dir() / info.name
