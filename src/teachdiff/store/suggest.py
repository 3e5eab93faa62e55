"""`teachdiff weights suggest`: which of the zoo's training sets looks most like your images.

Each zoo entry carries the card of the data it was trained on (:mod:`teachdiff.store.datacard`);
:func:`suggest` compares every card with the images and ranks the training sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teachdiff.store import datacard, zoo

__all__ = ["Suggestion", "suggest"]


@dataclass(frozen=True)
class Suggestion:
    """One training data set of the zoo against a set of images (:func:`suggest`).

    ``distances``: per image, :class:`teachdiff.store.datacard.Comparison` distance (NaN: the card has
    no statistics); ``models``: the zoo entries trained on it, best test MAE first; ``why``: the
    largest differences of the image that fits worst, in words; ``small``: size warnings."""

    card: dict
    models: list
    distances: list
    why: str
    small: list

    @property
    def distance(self) -> float:

        return float(np.median(self.distances))

    @property
    def within(self) -> int:
        from teachdiff.store.datacard import FAR_OUTSIDE

        return sum(d <= FAR_OUTSIDE for d in self.distances)


def suggest(images, bit_depth: int | None = None) -> list[Suggestion]:
    """The zoo's training data sets ranked for ``images`` (paths): closest median distance first.

    Each image is scaled as each model scales its inputs (:func:`teachdiff.data.folder.restore_normalization`)
    and compared with the model's training inputs (:func:`teachdiff.store.datacard.compare`). Intensities
    only: the modality and the structure in the images are the user's to check."""

    from teachdiff.data.folder import Normalization, restore_normalization
    from teachdiff.data.io import read_image

    if not images:
        raise ValueError("no images given; pass one or more TIFF/PNG files.")
    loaded = []
    for path in images:
        if not Path(path).is_file():
            raise FileNotFoundError(f"image {path} does not exist.")
        loaded.append((str(path), read_image(path)))
    ranked = []
    for card, members in zoo.card_groups(zoo.entries()):
        trained = Normalization.from_dict(card["normalization"]) if card.get("normalization") else None
        distances, worst, small = [], (-1.0, ""), []
        for path, image in loaded:
            scaling, _ = restore_normalization(trained, image, path, bit_depth)
            comparison = datacard.compare(card, scaling.input_to_model(image))
            distance = comparison.distance if comparison is not None else math.nan
            distances.append(distance)
            if comparison is not None and distance > worst[0]:
                levels = datacard.input_levels(scaling.to_dict(), scaling.bit_depth)
                worst = (distance, f"{Path(path).name}: {comparison.explain(levels)} (in its file intensities)")
            too_small = datacard.check_sizes(card, image.shape)
            if too_small:
                small.append(f"{Path(path).name}: {too_small}")
        models = sorted(members, key=lambda e: (zoo.reported_mae(e) is None, zoo.reported_mae(e) or 0.0))
        ranked.append(Suggestion(card, models, distances, worst[1], small))
    return sorted(ranked, key=lambda s: (math.isnan(s.distance), s.distance))
