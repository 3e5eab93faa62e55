"""The training loop: resume to identical weights, DDP equivalence, safe checkpoints, the CLI."""

import dataclasses
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from teachdiff.cli import main as cli_main
from teachdiff.data.synthetic import simulate_pair
from teachdiff.methods import DiffusionConfig
from teachdiff.train import TrainConfig, load_checkpoint, load_method, save_checkpoint, train
from teachdiff.unet import UNetConfig

TINY = DiffusionConfig(unet=dataclasses.replace(UNetConfig.tiny(), image_size=32), T=50, val_steps=3)


class SmallPairs(Dataset):
    """16 synthetic 32x32 pairs in [-1, 1], with a random flip so augmentation randomness matters."""

    def __init__(self, n=16, seed=0):
        self.pairs = [simulate_pair("microtubules", size=32, seed=seed + i) for i in range(n)]

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        p = self.pairs[i]
        x, y = (torch.from_numpy(a.astype("float32") / 127.5 - 1)[None] for a in (p.x, p.y))
        if torch.rand(()) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        return {"x": x, "y": y}


@pytest.fixture(scope="module")
def data():
    return {"train": SmallPairs(16, 0), "val": SmallPairs(4, 100)}


def _config(**kw):
    base = dict(dataset="custom", patch_size=32, batch_size=4, lr=1e-2, epochs=2, steps_per_epoch=4,
                val_images=2, sample_every=0)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    return load_checkpoint(path)["model"]


def test_resume_gives_identical_weights(tmp_path, data):
    full = train(_config(), TINY, tmp_path / "full", datasets=data, progress=False)
    assert full.finished
    part = train(_config(max_steps=3), TINY, tmp_path / "split", datasets=data, progress=False)
    assert not part.finished and load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 3
    rest = train(_config(), TINY, tmp_path / "split", resume=True, datasets=data, progress=False)
    assert rest.finished
    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "split" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # ... and training really changes the weights: one step differs from the end
    first = train(_config(max_steps=1), TINY, tmp_path / "one", datasets=data, progress=False)
    assert not torch.equal(_weights(first.last_checkpoint)["unet.out_conv.gain"], a["unet.out_conv.gain"])


def test_logs_and_checkpoints_written(tmp_path, data):
    result = train(_config(), TINY, tmp_path / "run", datasets=data, progress=False)
    for name in ("best.pt", "last.pt", "log.csv", "log.json", "config.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert [r["epoch"] for r in result.history] == [0, 1]
    assert all("val_mae" in r and "train_loss" in r for r in result.history)
    method = load_method(result.best_checkpoint)
    assert method.kind == "ddpm" and not method.training


def test_existing_run_is_never_clobbered(tmp_path, data):
    train(_config(epochs=1), TINY, tmp_path / "run", datasets=data, progress=False)
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(epochs=1), TINY, tmp_path / "run", datasets=data, progress=False)
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_out_folder_that_is_a_file(tmp_path, data):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        train(_config(), TINY, tmp_path / "file", datasets=data, progress=False)


def test_unwritable_out_folder(tmp_path, data):
    """A folder that cannot be written (a read-only mount, a full disk) stops the run before any
    work, with a message. /proc refuses new folders even to root, who ignores permission bits."""
    if os.geteuid() == 0:
        locked = Path("/proc/teachdiff-no-such-folder")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="writable"):
        train(_config(), TINY, locked / "run", datasets=data, progress=False)


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch, data):
    result = train(_config(epochs=1), TINY, tmp_path / "run", datasets=data, progress=False)
    good = result.last_checkpoint.read_bytes()
    method = load_method(result.last_checkpoint)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(result.last_checkpoint, method)
    assert result.last_checkpoint.read_bytes() == good
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []


def test_corrupt_and_foreign_checkpoints(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="teachdiff train"):
        load_method(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_method(bad)
    result = train(_config(epochs=1), TINY, tmp_path / "run", datasets=data, progress=False)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(result.last_checkpoint.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt"):
        load_method(truncated)
    with pytest.raises(ValueError, match="holds a 'ddpm' model"):
        load_method(result.last_checkpoint, expect_kind="care")
    payload = load_checkpoint(result.last_checkpoint)
    payload["method_config"]["unet"]["channels"] = 24  # a checkpoint whose config does not fit its weights
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not fit"):
        load_method(tmp_path / "other.pt")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": 1}, plain)
    with pytest.raises(ValueError, match="not a teachdiff checkpoint"):
        load_method(plain)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, out_dir, data):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        train(_config(batch_size=2), TINY, out_dir, datasets=data, progress=False, device="cpu")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(tmp_path, data):
    single = train(_config(batch_size=4), TINY, tmp_path / "single", datasets=data, progress=False)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), data), nprocs=2, join=True)
    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert [r["step"] for r in ddp["history"]] == [r["step"] for r in single.history]
    for a, b in zip(single.history, ddp["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    a, b = _weights(single.last_checkpoint), ddp["model"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-4), key


@pytest.mark.slow
def test_cli_quick_training_beats_raw_input(tmp_path):
    from teachdiff.data import make_datasets
    from teachdiff.metrics import mae, psnr

    out = tmp_path / "run"
    assert cli_main(["train", "--dataset", "synthetic-microtubules", "--preset", "quick", "--out", str(out),
                     "--no-progress"]) == 0
    method = load_method(out / "best.pt")
    test = make_datasets("synthetic-microtubules", patch_size=64, quick=True)["test"]
    x = torch.stack([test[i]["x"] for i in range(len(test))])
    y = torch.stack([test[i]["y"] for i in range(len(test))])
    pred = method.restore(x, generator=torch.Generator().manual_seed(0), sampler="ddim", steps=20)
    to255 = lambda t: ((t.clamp(-1, 1) + 1) * 127.5).numpy()
    scores = {"input": (x, None), "restored": (pred, None)}
    rows = {}
    for name, (img, _) in scores.items():
        rows[name] = (sum(mae(to255(img[i, 0]), to255(y[i, 0])) for i in range(len(y))) / len(y),
                      sum(psnr(to255(img[i, 0]), to255(y[i, 0])) for i in range(len(y))) / len(y))
    print(f"held-out synthetic test patches: input MAE {rows['input'][0]:.2f} PSNR {rows['input'][1]:.2f}; "
          f"restored MAE {rows['restored'][0]:.2f} PSNR {rows['restored'][1]:.2f}")
    assert rows["restored"][0] < rows["input"][0]
    assert rows["restored"][1] > rows["input"][1]
