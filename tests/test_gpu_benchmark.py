"""benchmarks/gpu/bench_gpu.py runs on the CPU (tiny sizes), so a session that is lent a GPU for
a few minutes does not lose them to a broken script. The compile row is left out: on the CPU
it compiles for over a minute, and a GPU compiles with another backend anyway."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "bench_gpu.py"


def test_gpu_benchmark_smoke_writes_every_row(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "gpu_cpu.md"
    assert bench.main(["--device", "cpu", "--smoke", "--no-compile", "--out", str(out)]) == 0
    text = out.read_text()
    assert "(SMOKE: tiny sizes)" in text
    training = [line for line in text.splitlines() if line.startswith(("| authors' recipe", "| fp32 |", "| auto ("))]
    sampling = [line for line in text.splitlines() if line.startswith(("| authors (fp32)", "| auto |"))]
    assert len(training) == 3 and len(sampling) == 4
    for line in training:  # img/s and s/step are measured numbers
        img_per_s, s_per_step = (float(cell) for cell in line.split("|")[4:6])
        assert img_per_s > 0 and abs(img_per_s * s_per_step - 2) < 0.1  # batch 2
    assert {line.split("|")[3].strip() for line in sampling} == {"ddpm x 200", "ddim x 20"}
