"""bench_design_gpu.py runs (at a tiny size) on the CPU and on the stand-in CUDA device and reports every figure."""

from ppl_attention.testing import fake_cuda

TINY = ["--image-size", "32", "--glimpse", "8", "--side", "3", "--samples", "2", "-T", "2", "--batch-size", "8"]
FIGURES = {
    "seconds_per_step",
    "passes_per_step",
    "passes_per_second",
    "avp_images_per_step",
    "avp_images_per_second",
    "seconds_per_sequence",
    "peak_memory_mb",
}


def test_the_design_benchmark_reports_every_search(load_benchmark, one_thread):
    bench = load_benchmark("bench_design_gpu")
    out = bench.main(["--device", "cpu", *TINY])
    assert out["precision"] == "float32" and out["locations"] == 9
    assert set(out["searches"]) == {"exhaustive", "halving", "amortised"}
    assert all(set(s) == FIGURES for s in out["searches"].values())
    ex = out["searches"]["exhaustive"]
    assert ex["avp_images_per_step"] == 9 * 2 and ex["passes_per_step"] == 3  # 9 candidates x 2 completions
    assert out["searches"]["halving"]["avp_images_per_step"] <= ex["avp_images_per_step"]
    with fake_cuda():
        out = bench.main(["--device", "cuda", *TINY, "--searches", "exhaustive", "amortised"])
    assert out["device"].startswith("cuda") and out["precision"] == "bfloat16"
