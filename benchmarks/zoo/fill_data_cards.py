"""Give every zoo manifest entry without a training data card its card (teachdiff.store.datacard).

    python benchmarks/zoo/fill_data_cards.py            # entries without a card
    python benchmarks/zoo/fill_data_cards.py --all      # measure every entry again

The zoo released before checkpoints carried cards: for those, :func:`teachdiff.store.datacard.for_checkpoint`
reads the registry's facts about the dataset in the checkpoint's ``train_config`` and measures the
training inputs on the training split that config describes (the synthetic datasets are made
again, deterministically), exactly as the trainer now does when it writes a checkpoint. The
checkpoint files are not changed (their sha256 stays); only the manifest is rewritten.
``build_quick_zoo.py``'s ``release()`` makes the card the same way for rebuilt entries.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from teachdiff.store import datacard, zoo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="measure every entry again, not only those without a card")
    args = parser.parse_args(argv)
    entries = zoo.read_manifest()
    filled = []
    for i, entry in enumerate(entries):
        if entry.data_card and not args.all:
            continue
        card = datacard.for_checkpoint(zoo.fetch(entry.name, progress=False))
        entries[i] = dataclasses.replace(entry, data_card=card)
        filled.append(entry.name)
        print(f"{entry.name}: {card['dataset']}, {card['modality']}, input p50 {card['input_percentiles']['p50']:.4f}",
              flush=True)
    if filled:
        zoo.write_manifest(entries)
    print(f"{len(filled)} of {len(entries)} entries given a data card; manifest: {zoo.manifest_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
