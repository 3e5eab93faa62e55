"""The training loop: resume to identical weights, DDP equivalence, safe checkpoints, the CLI."""

import dataclasses
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from teachdiff.cli.main import main as cli_main
from teachdiff.data.synthetic import simulate_pair
from teachdiff.methods.ddpm import DiffusionConfig
from teachdiff.training.config import TrainConfig
from teachdiff.store.checkpoint import load_checkpoint, save_checkpoint
from teachdiff.store.resolve import load_method
from teachdiff.training.loop import train
from teachdiff.core.unet import UNetConfig

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
    from teachdiff.evaluation.metrics import mae, psnr

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


# ----------------------------------------------------------------------------------------------
# One run per folder (a lock) and a clean stop on Ctrl-C / SIGTERM (issue 16)
# ----------------------------------------------------------------------------------------------

# A process that holds the lock of a folder the way `teachdiff train` does, then waits to be
# killed. It loads teachdiff/guards.py by path so as not to import torch (seconds per process).
HOLD_LOCK = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("guards", sys.argv[1])
guards = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guards)
lock = guards.FolderLock(sys.argv[2]).__enter__()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def lock_holder(tmp_path):
    import subprocess
    import sys

    import teachdiff.store.guards

    folder = tmp_path / "run"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, teachdiff.store.guards.__file__, str(folder)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_second_run_on_the_same_folder_fails_at_once_naming_the_lock_and_pid(lock_holder, data, capsys):
    folder, holder = lock_holder
    with pytest.raises(FileExistsError, match=rf"in use by another training run \(PID {holder.pid} on .*train\.lock"):
        train(_config(epochs=1), TINY, folder, datasets=data, progress=False)
    assert not (folder / "last.pt").exists()
    # the CLI: exit 1 and the same one-line message, before any data is built
    assert cli_main(["train", "--dataset", "synthetic-microtubules", "--out", str(folder), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("teachdiff train: error:") and f"PID {holder.pid}" in err and err.count("\n") == 1


def test_lock_of_a_killed_run_is_taken_over_with_a_note(lock_holder, data, capsys):
    folder, holder = lock_holder
    holder.kill()  # like a crash or kill -9: no chance to release anything
    holder.wait()
    result = train(_config(epochs=1, steps_per_epoch=1), TINY, folder, datasets=data, progress=False)
    assert result.finished
    err = capsys.readouterr().err
    assert f"taking over the lock {folder / 'train.lock'}" in err and f"PID {holder.pid}" in err
    # a run that ends normally leaves no owner behind, so the next one takes the lock without a note
    assert not (folder / "train.lock.json").exists()


class SignalAtItem(SmallPairs):
    """Sends this process a signal when training item number ``at`` is read (once): Ctrl-C mid-step.
    The trainer first reads min(64, n) items to calibrate the model and min(CARD_PATCHES, n) for
    the training data card; those are not counted."""

    def __init__(self, signum, at, n=16, seed=0):
        from teachdiff.store.datacard import CARD_PATCHES

        super().__init__(n, seed)
        self.signum, self.at, self.reads = signum, min(64, n) + min(CARD_PATCHES, n) + at, 0

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.at:
            os.kill(os.getpid(), self.signum)
        return super().__getitem__(i)


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_before_the_first_epoch_ends_checkpoints_and_resume_continues(signum, tmp_path, data, capsys):
    import signal

    handler = signal.getsignal(getattr(signal, signum))
    # 4 items per step: the signal arrives while step 2 (items 5-8) is being read, in epoch 0 of 2
    interrupted = {"train": SignalAtItem(getattr(signal, signum), at=6), "val": data["val"]}
    part = train(_config(), TINY, tmp_path / "run", datasets=interrupted, progress=False)
    assert not part.finished and part.stop_reason == signum
    assert signal.getsignal(getattr(signal, signum)) is handler  # the previous handler is back
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 0, 2)
    out = capsys.readouterr().out
    assert f"stopped at step 2 ({signum})" in out and f"--resume --out {tmp_path / 'run'}" in out
    rest = train(_config(), TINY, tmp_path / "run", resume=True, datasets=data, progress=False)
    assert rest.finished and load_checkpoint(rest.last_checkpoint)["step"] == 8
    if signum == "SIGINT":  # the resumed run ends with the weights of an uninterrupted one
        full = train(_config(), TINY, tmp_path / "full", datasets=data, progress=False)
        a, b = _weights(full.last_checkpoint), _weights(rest.last_checkpoint)
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_second_ctrl_c_aborts_at_once(tmp_path):
    import signal

    class TwoSignals(SignalAtItem):
        def __getitem__(self, i):
            if self.reads == self.at:
                os.kill(os.getpid(), signal.SIGINT)
            return super().__getitem__(i)

    twice = {"train": TwoSignals(signal.SIGINT, at=2), "val": SmallPairs(2, 100)}
    # Not always Python's default_int_handler: a job started in the background inherits SIG_IGN.
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(_config(), TINY, tmp_path / "run", datasets=twice, progress=False)
    assert signal.getsignal(signal.SIGINT) is handler_before  # the trainer's handler was removed
    assert not (tmp_path / "run" / "train.lock.json").exists()  # the lock was released


def test_ema_warms_up_like_tensorflows_num_updates(tmp_path, data):
    """After the first step the EMA is min(0.999, 1/10) = 0.1 of the initial weights and 0.9 of the
    new ones (tf.train.ExponentialMovingAverage with num_updates=0), not 0.999 of the initial."""
    initial = _weights(train(_config(lr=0.0, max_steps=1), TINY, tmp_path / "init", datasets=data,
                             progress=False).last_checkpoint)
    state = load_checkpoint(train(_config(max_steps=1, ema_decay=0.999), TINY, tmp_path / "ema", datasets=data,
                                  progress=False).last_checkpoint)
    key = "unet.out_conv.gain"  # zero at initialisation, so it moves in the first step
    assert not torch.equal(state["model"][key], initial[key])
    expected = 0.1 * initial[key] + 0.9 * state["model"][key]
    assert torch.allclose(state["ema"][key], expected, atol=1e-7)


def test_care_and_n2v_standardise_with_the_training_inputs(tmp_path, data):
    """The trainer calibrates CARE and Noise2Void: the saved config holds the mean and std of the
    training inputs (flips do not change them), and a config without them means no scaling."""
    from teachdiff.methods.base import build_method

    xs = torch.stack([torch.from_numpy(p.x.astype("float32") / 127.5 - 1) for p in data["train"].pairs]).double()
    for model in ("care", "n2v"):
        result = train(_config(model=model, max_steps=1), build_method(model).config, tmp_path / model,
                       datasets=data, progress=False)
        saved = load_checkpoint(result.last_checkpoint)["method_config"]
        assert saved["input_mean"] == pytest.approx(xs.mean().item(), abs=1e-6)
        assert saved["input_std"] == pytest.approx(xs.std().item(), rel=1e-5)
        old = {k: v for k, v in saved.items() if k not in ("input_mean", "input_std")}
        plain = build_method(model, old)
        x = torch.rand(1, 1, 32, 32) * 2 - 1
        assert torch.equal(plain.restore(x), plain.net(x).clamp(-1, 1))
