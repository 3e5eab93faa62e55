"""Re-card the rebuilt synthetic-microtubules zoo files: the data card from the grid crops of the
training images (store.datacard.from_training_set now ignores random crops), and no training state."""
import dataclasses
import torch
from teachdiff.data import make_datasets
from teachdiff.store import datacard, zoo
from teachdiff.store.checkpoint import atomic_write, without_training_state

entries = zoo.read_manifest()
train = make_datasets("synthetic-microtubules", patch_size=64, quick=True, seed=0, random_crops=True,
                      progress=False)["train"]
card = datacard.from_training_set("synthetic-microtubules", train, 64, None, None)
out = []
for e in entries:
    if e.dataset != "synthetic-microtubules":
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
