"""Re-card the bundled zoo files of one dataset: the data card from the grid crops of the training
images (``store.datacard.from_training_set`` ignores random crops since 2026-12-04; files trained
before kept the random crops' statistics) and no training state. The weights are untouched.

    python benchmarks/zoo/recard.py synthetic-microtubules
"""
import dataclasses
import sys

import torch
from teachdiff.data import make_datasets
from teachdiff.store import datacard, zoo
from teachdiff.store.checkpoint import atomic_write, without_training_state

DATASET = sys.argv[1]
entries = zoo.read_manifest()
train = make_datasets(DATASET, patch_size=64, quick=True, seed=0, random_crops=True,
                      progress=False)["train"]
card = datacard.from_training_set(DATASET, train, 64, None, None)
out = []
for e in entries:
    if e.dataset != DATASET:
        out.append(e)
        continue
    path = zoo.BUNDLED_DIR / e.file
    payload = torch.load(path, map_location="cpu", weights_only=False)
    assert (payload.get("data_card") or card)["patch_size"] == card["patch_size"]
    payload = without_training_state(payload)
    payload["data_card"] = card
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    out.append(dataclasses.replace(e, data_card=card, sha256=zoo.file_sha256(path), size=path.stat().st_size))
    print(e.name, card["input_percentiles"])
zoo.write_manifest(out)
