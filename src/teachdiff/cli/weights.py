"""`teachdiff weights`: list, suggest, fetch, verify and locate the zoo's models."""

from __future__ import annotations

from teachdiff.cli.args import positive_int
from teachdiff.store.suggest import suggest
from teachdiff.store.zoo import card_groups, entries, fetch, reported_mae, verify


# ----------------------------------------------------------------------------------------------
# teachdiff weights
# ----------------------------------------------------------------------------------------------


def add_parser(subparsers) -> None:
    import argparse

    p = subparsers.add_parser("weights", help="list, suggest, fetch and verify the zoo's trained models",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="the released models: what each was trained on, and its test scores"
                   ).set_defaults(func=_cmd_list)
    s = sub.add_parser("suggest", help="rank the models for your images (by their intensities after each "
                       "model's scaling)")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="8/16-bit grayscale TIFF or PNG images or z-stacks")
    s.add_argument("--bit-depth", type=positive_int, metavar="B",
                   help="bits the camera really used, as for `teachdiff restore --bit-depth`")
    s.set_defaults(func=_cmd_suggest)
    f = sub.add_parser("fetch", help="make a model available locally (cache, bundled file or download)")
    f.add_argument("names", nargs="+", metavar="NAME")
    f.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    f.set_defaults(func=_cmd_fetch)
    v = sub.add_parser("verify", help="check the sha256 of every local copy (downloads nothing)")
    v.add_argument("names", nargs="*", metavar="NAME")
    v.set_defaults(func=_cmd_verify)
    pa = sub.add_parser("path", help="print the local path of a model (fetching it if needed)")
    pa.add_argument("name", metavar="NAME")
    pa.set_defaults(func=_cmd_path)


def _cmd_list(args) -> int:
    from teachdiff.store import datacard

    rows = entries()
    if not rows:
        print("no zoo models in this version of teachdiff")
        return 0
    groups = card_groups(rows)
    print(f"{len(rows)} models trained on {len(groups)} data sets. Pick the one trained on images like yours: "
          "same\nmodality, input -> target relation and intensities (`teachdiff weights suggest IMAGE` ranks "
          "them).\nTest MAE: median over the test split on 0..255 (DDPM: of DDPM-avg, what restore writes).")
    for card, members in groups:
        print()
        print("\n".join(datacard.describe(card, width=98)))
        print(f"  {'model name':44s} {'kind':8s} {'MB':>5s}  {'where':8s}  test MAE")
        for e in members:
            mae = reported_mae(e)
            print(f"  {e.name:44s} {e.model:8s} {e.size / 1e6:5.2f}  {'bundled' if e.bundled else 'download':8s}  "
                  f"{'' if mae is None else f'{mae:8.2f}'}")
    return 0


def _cmd_suggest(args) -> int:
    import textwrap

    from teachdiff.store import datacard

    def say(text: str, indent: str = "") -> None:
        print(textwrap.fill(text, width=98, initial_indent=indent, subsequent_indent=indent + "  " * bool(indent),
                            break_on_hyphens=False))

    ranked = suggest(args.images, args.bit_depth)
    n = len(args.images)
    say(f"The zoo's training data sets for {n} image(s), closest first. Distance: how far the images' intensity "
        f"percentiles, scaled as the model scales its inputs, lie from its training inputs', in units of the "
        f"training inputs' range (median over the images; above {datacard.FAR_OUTSIDE:g} is far outside).")
    for rank, s in enumerate(ranked, 1):
        card = s.card
        verdict = ("no statistics recorded" if s.distance != s.distance else
                   f"distance {s.distance:.2f}, {s.within} of {n} image(s) within")
        print(f"\n{rank}. {card.get('dataset')}: {verdict}")
        say(f"modality {card.get('modality') or 'not recorded'}; {card.get('relation') or ''}", "   ")
        if s.why:
            say(f"largest difference, {s.why}", "   ")
        for line in s.small[:3]:
            say(f"size: {line}", "   ")
        names = ", ".join(f"{e.name} ({reported_mae(e):.2f})" if reported_mae(e) is not None else e.name for e in s.models)
        say(f"models, best test MAE first: {names}", "   ")
    best = ranked[0] if ranked else None
    print()
    if best is None or not best.within:
        say("None of the zoo's models was trained on intensities like these images'; their results would be "
            "unreliable. Train or fine-tune on pairs of your own: teachdiff train --data FOLDER [--init MODEL].")
    else:
        say(f"Suggested: {best.models[0].name}. Intensities are all this compares: check that the modality and "
            "the structures match too, and fine-tune on pairs of your own where you can (teachdiff train --init).")
    return 0


def _cmd_fetch(args) -> int:
    for name in args.names:
        print(f"{name}: {fetch(name, progress=not args.no_progress)}")
    return 0


def _cmd_verify(args) -> int:
    report = verify(args.names or None)
    for name, status in report:
        print(f"{name}: {status}")
    return 1 if any(s.startswith(("CORRUPT", "MISSING")) for _, s in report) else 0


def _cmd_path(args) -> int:
    print(fetch(args.name, progress=False))
    return 0
