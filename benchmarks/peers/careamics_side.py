"""CAREamics' half of the side-by-side comparison (run by ``compare_careamics.py`` with the Python of
CAREamics' own venv; imports nothing from teachdiff).

Trains CARE and Noise2Void with CAREamics 0.3.5 on ``FOLDER/train`` (validation on ``FOLDER/val``)
with the settings the comparison fixes (``SETTINGS`` in a JSON file written by the orchestrator), then
predicts every ``FOLDER/test/raw`` image whole and in tiles, and writes per model:

* ``OUT/<model>_whole/<name>.tif`` and ``OUT/<model>_tiled/<name>.tif`` (float32, grey levels);
* ``OUT/<model>_timing.json``: training seconds, patches seen, inference seconds per image.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from careamics import CAREamist
from careamics.config.factories.care_n2n_factory import create_advanced_care_config
from careamics.config.factories.n2v_factory import create_advanced_n2v_config


def read_split(folder: Path, split: str, kind: str) -> tuple[list[np.ndarray], list[str]]:
    files = sorted((folder / split / kind).glob("*.tif"))
    return [tifffile.imread(f).astype(np.float32) for f in files], [f.stem for f in files]


def main(folder: str, out: str, settings_file: str) -> None:
    folder, out = Path(folder), Path(out)
    s = json.loads(Path(settings_file).read_text())
    train_x, _ = read_split(folder, "train", "raw")
    train_y, _ = read_split(folder, "train", "gt")
    val_x, _ = read_split(folder, "val", "raw")
    val_y, _ = read_split(folder, "val", "gt")
    test_x, names = read_split(folder, "test", "raw")
    stats = {"input_means": [s["input_mean"]], "input_stds": [s["input_std"]]}
    common = dict(data_type="array", axes="YX", patch_size=[s["patch"], s["patch"]], batch_size=s["batch"],
                  num_epochs=s["epochs"], augmentations=["x_flip", "y_flip", "rotate_90"], num_workers=0,
                  model_params={"depth": s["depth"], "num_channels_init": s["filters"]},
                  optimizer="Adam", optimizer_params={"lr": s["lr"]},
                  lr_scheduler="StepLR", lr_scheduler_params={"step_size": 10**9, "gamma": 1.0},  # constant
                  trainer_params={"accelerator": "cpu", "devices": 1}, seed=s["seed"] + 1)  # CAREamics wants > 0
    for model in s["models"]:
        if model == "n2v":
            config = create_advanced_n2v_config(experiment_name="n2v", normalization="mean_std",
                                                normalization_params=stats, **common)
            data = dict(train_data=train_x, val_data=val_x)
        else:
            config = create_advanced_care_config(
                experiment_name="care", normalization="mean_std",
                normalization_params=dict(stats, target_means=[s["target_mean"]], target_stds=[s["target_std"]]),
                **common)
            data = dict(train_data=train_x, train_data_target=train_y, val_data=val_x, val_data_target=val_y)
        careamist = CAREamist(config, work_dir=out / f"{model}_work", enable_progress_bar=False)
        start = time.perf_counter()
        careamist.train(**data)
        train_s = time.perf_counter() - start
        steps = careamist.trainer.global_step if hasattr(careamist, "trainer") else None
        timing = {"train_s": train_s, "steps": steps, "batch": s["batch"]}
        for mode, tiling in (("whole", {}), ("tiled", {"tile_size": (s["tile"], s["tile"]),
                                                         "tile_overlap": (s["tile_overlap"], s["tile_overlap"])})):
            (out / f"{model}_{mode}").mkdir(parents=True, exist_ok=True)
            seconds = []
            for image, name in zip(test_x, names):
                start = time.perf_counter()
                prediction, _ = careamist.predict(image, axes="YX", data_type="array", num_workers=0,
                                                  checkpoint="last", **tiling)  # both tools: the last weights
                seconds.append(time.perf_counter() - start)
                tifffile.imwrite(out / f"{model}_{mode}" / f"{name}.tif", np.squeeze(prediction[0]).astype(np.float32))
            timing[f"{mode}_s_per_image"] = float(np.mean(seconds))
        (out / f"{model}_timing.json").write_text(json.dumps(timing, indent=1))
        print(model, json.dumps(timing), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
