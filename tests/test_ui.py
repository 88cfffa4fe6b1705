"""What the command line says: quiet runs, sizes, listings at 80 columns, provenance."""

import numpy as np
from PIL import Image

from convcli.kernels import Catalogue


def _wide_image(path, width=20, height=10):
    pixels = (np.arange(width * height * 3) % 251).astype(np.uint8).reshape(height, width, 3)
    Image.fromarray(pixels).save(path)
    return path


def test_apply_prints_image_sizes_width_by_height(run, tmp_path):
    source = _wide_image(tmp_path / "wide.png")
    result = run("apply", source, "-k", "box:3", "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert "(20×10 W×H, 3 channels" in result.stdout


def test_quiet_prints_nothing_on_success(run, tmp_path):
    (tmp_path / "in").mkdir()
    source = _wide_image(tmp_path / "in" / "a.png")
    _wide_image(tmp_path / "in" / "b.png")
    single = run("apply", source, "-k", "box:3", "-q", "-o", tmp_path / "one.png")
    batch = run("apply", tmp_path / "in", "-k", "box:3", "-q", "-o", tmp_path / "many/")
    assert single.exit_code == 0 and batch.exit_code == 0
    assert single.stdout == "" and batch.stdout == ""
    assert (tmp_path / "one.png").exists()
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["a_box-size3.png", "b_box-size3.png"]


def test_pad_mode_choices_list_modes_not_a_placeholder(run):
    help_text = run("apply", "--help").stdout
    assert "[zeros|reflect|symmetric|replicate|circular]" in help_text
    assert "alias" not in help_text


def test_kernels_show_takes_kernels_after_show(run, tmp_path):
    catalogue = tmp_path / "mine.yaml"
    catalogue.write_text("kernels:\n  mine: {weights: [[1, 2], [3, 4]]}\n")
    result = run("kernels", "show", "mine", "--kernels", catalogue)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["  1 2", "  3 4"]


def test_kernels_show_prints_provenance_as_lines_not_a_dict(run):
    result = run("kernels", "show", "learned_deblur")
    assert result.exit_code == 0
    fit = Catalogue.load().get("learned_deblur").learned["fit"]
    lines = result.stdout.splitlines()
    assert "{" not in result.stdout and "'" not in result.stdout
    assert "  fit:" in lines and f"    r2: {fit['r2']}" in lines
    assert "    size: 7, 7" in lines


def test_kernels_listing_is_readable_at_80_columns(run):
    result = run("kernels", env={"COLUMNS": "80"})
    lines = result.stdout.splitlines()
    catalogue = Catalogue.load()
    assert max(map(len, lines)) <= 80
    assert len(lines) <= 2 * len(catalogue.names()) + 10
    # every description is on lines of its own, whole (not squeezed into a narrow column)
    description = catalogue.get("identity").description
    assert f"    {description}" in lines
    assert lines[lines.index(f"    {description}") - 1].split() == ["identity", "3×3", "1",
                                                                    "yes", "clip"]


def test_kernels_listing_is_a_table_on_wide_terminals(run):
    result = run("kernels", env={"COLUMNS": "200"})
    assert "┃ description" in result.stdout
    assert any("│ identity" in line and "a check of borders and ranges" in line
               for line in result.stdout.splitlines())


def test_learn_size_mismatch_names_sizes_width_by_height(run, tmp_path):
    source = _wide_image(tmp_path / "x.png", 20, 10)
    target = tmp_path / "y.npy"
    np.save(target, np.zeros((9, 20), np.float32))
    result = run("learn", source, target, "-s", "3")
    assert result.exit_code != 0
    assert "the target is 20×9 (W×H)" in result.output and "20×10 input gives 20×10" in result.output


def test_a_kernel_summing_to_16_that_clips_suggests_normalize(run, tmp_path, samples):
    loud = run("apply", samples / "camera.png", "-k", "[[1,2,1],[2,4,2],[1,2,1]]",
               "-o", tmp_path / "loud.png")
    quiet = run("apply", samples / "camera.png", "-k", "[[1,2,1],[2,4,2],[1,2,1]]/16",
                "-o", tmp_path / "fine.png")
    assert loud.exit_code == 0 and quiet.exit_code == 0
    assert "94% of values clipped" in loud.stderr
    assert "sums to 16, not 1; --normalize scales it to sum 1" in loud.stderr
    assert "--normalize" not in quiet.stderr


def test_learn_from_an_abs_mapped_png_says_the_target_is_not_linear(run, tmp_path, samples):
    edges = tmp_path / "edges.png"
    assert run("apply", samples / "camera.png", "-k", "sobel_x", "-o", edges).exit_code == 0
    result = run("learn", samples / "camera.png", edges, "-s", "3")
    assert result.exit_code == 0
    assert "R² 0.00" in result.stdout                       # |sobel_x| is not linear
    assert f"R² 0.003: {edges} is not a linear map" in result.stderr
    assert "--range float -o edges.npy" in result.stderr
    signed = tmp_path / "edges.npy"
    run("apply", samples / "camera.png", "-k", "sobel_x", "--range", "float", "-o", signed)
    assert "not a linear map" not in run("learn", samples / "camera.png", signed, "-s", "3").stderr


def test_grid_of_a_random_layer_stretches_each_map(run, tmp_path, samples):
    weights = tmp_path / "w.npy"
    np.save(weights, np.random.default_rng(0).standard_normal((4, 3, 3, 3)))
    out = tmp_path / "grid.png"
    result = run("apply", samples / "astronaut.png", "-k", f"@{weights}", "--grid", "-o", out)
    assert result.exit_code == 0 and "--range minmax, 0.00% clipped" in result.stdout
    tiles = np.asarray(Image.open(out))
    assert (tiles == 0).mean() < 1e-4                       # clipping blacked out ~half before
    h, w = (tiles.shape[0] - 6) // 2, (tiles.shape[1] - 6) // 2   # 2×2 tiles, 2-pixel borders
    for tile in (tiles[2:2 + h, 2:2 + w], tiles[-2 - h:-2, -2 - w:-2]):
        assert tile.min() == 0 and tile.max() == 255


def test_an_output_name_too_long_for_the_file_system_is_one_usage_line(run, tmp_path, samples):
    name = "a" * 300 + ".png"
    result = run("apply", samples / "camera.png", "-k", "box:3", "-o", tmp_path / name)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: Invalid value for '-o': the file name aaaaaaaaaaaaaaaaaaaa…aaaaaaaa.png is "
        "304 bytes long; the file system allows 255"]
    assert list(tmp_path.iterdir()) == [samples]
