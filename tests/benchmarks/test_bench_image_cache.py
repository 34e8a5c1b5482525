"""The image-cache benchmark runs at a tiny size and reports each figure."""


def test_bench_image_cache_tiny(load_benchmark, capsys):
    result = load_benchmark("bench_image_cache").main(
        ["--images", "3", "--side", "40", "--size", "16", "--epochs", "1"]
    )
    assert result["images"] == 3
    for key in ("decode_images_per_s", "first_epoch_images_per_s", "cached_images_per_s", "speedup_cached_over_decode"):
        assert result[key] > 0
    assert '"cached_images_per_s"' in capsys.readouterr().out
