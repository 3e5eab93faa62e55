"""From a name to a model: a checkpoint file, a run folder or a zoo name, loaded as a method."""

from __future__ import annotations

from pathlib import Path
import teachdiff
from teachdiff.store import datacard, zoo
from teachdiff.core.capping import cap_network_calls
from teachdiff.data.folder import Normalization
from teachdiff.methods.base import RestorationMethod, build_method
from teachdiff.core.precision import prepare_network
from teachdiff.store.checkpoint import checkpoint_file, load_checkpoint

__all__ = ["resolve_checkpoint", "checkpoint_kind", "method_to_finetune", "load_method", "load_zoo_model"]


def resolve_checkpoint(name: str | Path) -> Path:
    """The checkpoint file that an ``--init`` (or ``--checkpoint``) argument names.

    A checkpoint file is itself; a run folder (``teachdiff train --out DIR``) means its
    ``best.pt``; the name of a zoo model (``teachdiff weights list``) means its fetched file.
    """
    from teachdiff.store import zoo

    path = Path(name).expanduser()
    if not path.exists() and zoo.is_zoo_name(str(name)):
        return zoo.fetch(str(name))
    path = checkpoint_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {name} does not exist; pass a checkpoint file, the --out folder of a "
                                "`teachdiff train` run, or a zoo name (`teachdiff weights list`).")
    return path


def checkpoint_kind(path: str | Path) -> str:
    """The model kind (``ddpm``, ``care``, ...) stored in a checkpoint."""
    return load_checkpoint(resolve_checkpoint(path))["kind"]


def method_to_finetune(init: str | Path, model: str) -> RestorationMethod:
    """The method that a run with ``--init`` starts from, in training mode: the architecture and
    weights (the EMA weights if any) of checkpoint ``init``, which must hold a ``model``."""
    path = resolve_checkpoint(init)
    payload = load_checkpoint(path, map_location="cpu")
    if payload["kind"] != model:
        raise ValueError(f"--init {path} holds a {payload['kind']!r} model, but this run trains {model!r}; "
                         f"fine-tuning keeps the architecture of the checkpoint: use --model {payload['kind']} "
                         f"(or leave --model out), or train {model} from scratch without --init.")
    method = load_method(path, map_location="cpu")
    return method.train()


def load_method(path: str | Path, map_location="cpu", expect_kind: str | None = None,
                use_ema: bool = True) -> RestorationMethod:
    """Rebuild a trained method from a checkpoint, in eval mode (EMA weights when present).

    ``path`` is anything :func:`resolve_checkpoint` accepts: a checkpoint file, a run folder or the
    name of a zoo model (``teachdiff weights list``).
    ``method.normalization`` is the intensity mapping it was trained with
    (:class:`teachdiff.data.folder.Normalization`), or None for the paper's: the file's bit depth.
    """
    path = resolve_checkpoint(path)
    payload = load_checkpoint(path, map_location)
    kind = payload["kind"]
    if expect_kind is not None and kind != expect_kind:
        raise ValueError(f"checkpoint {path} holds a {kind!r} model, not {expect_kind!r}; pass a {expect_kind} "
                         f"checkpoint or use --model {kind}.")
    method = build_method(kind, payload["method_config"])
    weights = payload["ema"] if use_ema and payload.get("ema") is not None else payload["model"]
    try:
        loaded = method.load_state_dict(weights, strict=False)
        released = tuple(f"{name}." for name in method.training_only)  # left out of zoo files
        absent = [k for k in loaded.missing_keys if not k.startswith(released)]
        if absent or loaded.unexpected_keys:
            raise RuntimeError(f"missing keys {absent[:3]}, unexpected keys {loaded.unexpected_keys[:3]}")
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit its recorded {kind} configuration ({str(err)[:200]}...); "
                         "it was made by another version of the model code.") from None
    stored = payload.get("normalization")
    method.normalization = Normalization.from_dict(stored) if stored else None
    method.data_card = datacard.stored(payload)  # what it was trained on (teachdiff.store.datacard)
    method = prepare_network(method.to(map_location), map_location, training=False).eval()
    return cap_network_calls(method) if teachdiff.capped_mode() else method


def load_zoo_model(name: str, map_location=None):
    """The trained method of zoo entry ``name``, in eval mode, on ``map_location`` (default: best device)."""
    entry = zoo.get(name)
    return load_method(zoo.fetch(name), map_location=map_location or teachdiff.device(), expect_kind=entry.model)
