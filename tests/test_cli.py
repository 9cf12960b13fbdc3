"""sage-fuse end to end, and each bad-input case: one line, exit status 2, nothing half-written."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sage_core.checkpoint import save_checkpoint
from sage_core.cli.fuse import main
from sage_core.models import LiteFuse
from sage_core.synthetic import SyntheticScene


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    scene = SyntheticScene(160, 128, seed=1)
    for index, ext in enumerate(("png", "jpg", "bmp")):
        frame = scene.frame(float(index))
        (tmp_path / "ir").mkdir(exist_ok=True)
        (tmp_path / "vis").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "ir" / f"f{index}.png"), frame.thermal_mono16)
        cv2.imwrite(str(tmp_path / "vis" / f"f{index}.{ext}"), frame.visible)
    return tmp_path / "ir", tmp_path / "vis"


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("sage-fuse: error: ")
    return lines[0]


def test_fuses_folders_with_mosaics(folders, tmp_path):
    out = tmp_path / "out"
    assert main(["--ir", str(folders[0]), "--vis", str(folders[1]), "--out", str(out), "--mosaic",
                 "--device", "cpu", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["f0.png", "f1.png", "f2.png"]
    assert sorted(p.name for p in (out / "mosaic").glob("*.png")) == ["f0.png", "f1.png", "f2.png"]
    fused = cv2.imread(str(out / "f1.png"))
    assert fused.shape == (128, 160, 3) and fused.std() > 5
    assert cv2.imread(str(out / "mosaic" / "f1.png")).shape[1] > 3 * 160
    assert not list(out.rglob("*.tmp"))


def test_accepts_the_released_checkpoint(folders, tmp_path, official_checkpoint):
    out = tmp_path / "out"
    assert main(["--ir", str(folders[0] / "f0.png"), "--vis", str(folders[1] / "f0.png"), "--out", str(out),
                 "--weights", str(official_checkpoint), "--quiet"]) == 0
    assert (out / "f0.png").is_file()


def test_missing_partner(folders, tmp_path, capsys):
    (folders[0] / "extra.png").write_bytes((folders[0] / "f0.png").read_bytes())
    assert main(["--ir", str(folders[0]), "--vis", str(folders[1]), "--out", str(tmp_path / "o")]) == 2
    assert "extra" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_size_mismatch_names_both_files(folders, tmp_path, capsys):
    cv2.imwrite(str(folders[1] / "f1.jpg"), np.zeros((100, 100, 3), np.uint8))
    assert main(["--ir", str(folders[0]), "--vis", str(folders[1]), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert "f1.png" in line and "f1.jpg" in line and "same size" in line
    assert not list((tmp_path / "o").rglob("*.tmp"))


def test_unreadable_image(folders, tmp_path, capsys):
    (folders[0] / "f2.png").write_bytes(b"not a png")
    assert main(["--ir", str(folders[0]), "--vis", str(folders[1]), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "f2.png: cannot decode" in _one_error_line(capsys)


def test_empty_folder_and_missing_input(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["--ir", str(tmp_path / "a"), "--vis", str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 2
    assert "no thermal images" in _one_error_line(capsys)
    assert main(["--ir", str(tmp_path / "zz"), "--vis", str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in _one_error_line(capsys)


def test_output_path_is_a_file(folders, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["--ir", str(folders[0]), "--vis", str(folders[1]), "--out", str(target)]) == 2
    assert "is a file" in _one_error_line(capsys)
    assert target.read_text() == "x"


def test_corrupt_and_foreign_checkpoints(folders, tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 64)
    args = ["--ir", str(folders[0]), "--vis", str(folders[1]), "--out", str(tmp_path / "o")]
    assert main(args + ["--weights", str(tmp_path / "bad.pt")]) == 2
    assert "bad.pt: not a readable PyTorch checkpoint" in _one_error_line(capsys)
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "foreign.pt")
    assert main(args + ["--weights", str(tmp_path / "foreign.pt")]) == 2
    assert "foreign.pt: not a sage_ros checkpoint" in _one_error_line(capsys)
    save_checkpoint(LiteFuse(width=4), tmp_path / "ok.pt")
    assert main(args + ["--weights", str(tmp_path / "ok.pt"), "--quiet"]) == 0


def test_console_script_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys

    script = Path(sys.executable).parent / "sage-fuse"
    if not script.exists():
        pytest.skip(f"{script} not installed (tests run from a checkout without pip install)")
    done = subprocess.run([str(script), "--ir", str(tmp_path / "none"), "--vis", str(tmp_path), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "thermal input not found" in done.stderr


def _hot_minus_cold(fused: np.ndarray, thermal01: np.ndarray) -> float:
    gray = cv2.cvtColor(fused, cv2.COLOR_BGR2GRAY).astype(float)
    return float(gray[thermal01 > 0.8].mean() - gray[thermal01 < 0.2].mean())


def test_16_bit_and_float_thermal_get_the_nodes_normalisation(tmp_path):
    """Raw counts in a 16-bit file (as radiometric cameras save them) keep their contrast, like the 8-bit scene."""
    frame = SyntheticScene(160, 128, seed=2).frame(1.0)
    (tmp_path / "vis.png").write_bytes(cv2.imencode(".png", frame.visible)[1].tobytes())
    outputs = {}
    for name, thermal in (("raw16.png", frame.thermal_mono16), ("gray8.png", frame.thermal_mono8),
                          ("kelvin.tiff", (280.0 + 30.0 * frame.thermal).astype(np.float32))):
        cv2.imwrite(str(tmp_path / name), thermal)
        out = tmp_path / name.split(".")[0]
        assert main(["--ir", str(tmp_path / name), "--vis", str(tmp_path / "vis.png"), "--out", str(out),
                     "--device", "cpu", "--quiet"]) == 0
        outputs[name] = cv2.imread(str(next(out.glob("*.png"))))
    contrast = {name: _hot_minus_cold(fused, frame.thermal) for name, fused in outputs.items()}
    assert contrast["gray8.png"] > 60, contrast
    assert contrast["raw16.png"] > 0.7 * contrast["gray8.png"] and contrast["kelvin.tiff"] > 0.7 * contrast["gray8.png"]


def test_unwritable_output_folder_is_refused_before_the_model_loads(folders, capsys, monkeypatch):
    import sage_core.cli.fuse as cli

    monkeypatch.setattr(cli.Fuser, "from_options", lambda options: pytest.fail("the model must not load"))
    assert main(["--ir", str(folders[0]), "--vis", str(folders[1]), "--out", "/proc/sage_fuse_out"]) == 2
    assert "/proc/sage_fuse_out: cannot write to the output folder" in _one_error_line(capsys)


def test_unusable_float_thermal_names_the_file(tmp_path, capsys):
    frame = SyntheticScene(96, 64, seed=4).frame(0.0)
    cv2.imwrite(str(tmp_path / "vis.png"), frame.visible)
    cv2.imwrite(str(tmp_path / "nan.tiff"), np.full((64, 96), np.nan, np.float32))
    assert main(["--ir", str(tmp_path / "nan.tiff"), "--vis", str(tmp_path / "vis.png"), "--out",
                 str(tmp_path / "o"), "--device", "cpu", "--quiet"]) == 2
    assert "nan.tiff" in _one_error_line(capsys)


def test_bad_thermal_settings_are_one_line(folders, tmp_path, capsys):
    assert main(["--ir", str(folders[0]), "--vis", str(folders[1]), "--out", str(tmp_path / "o"),
                 "--thermal-low-percentile", "90", "--thermal-high-percentile", "10"]) == 2
    assert "percentiles" in _one_error_line(capsys)


@pytest.fixture()
def rig_files(tmp_path: Path) -> Path:
    """A rendered rig's thermal, visible and depth files, its camera_info files and rig file."""
    from sage_core.camera_info_file import camera_info_yaml
    from sage_core.lens import LensModel
    from tests.rig_helpers import BASELINE, near_person

    frames = near_person()
    for folder, image in (("ir", frames.thermal), ("vis", frames.rgb), ("depth", frames.depth)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "f0.png"), image)
    for camera in ("thermal", "rgb"):
        info = frames.camera_info(camera)
        lens = LensModel(info["width"], info["height"], "plumb_bob", info["d"], info["k"], info["r"], info["p"])
        (tmp_path / f"{camera}.yaml").write_text(camera_info_yaml(lens, camera))
    (tmp_path / "rig.yaml").write_text(f"translation: [{BASELINE}, 0, 0]\nrotation: [0, 0, 0, 1]\n"
                                       "thermal_camera_info: thermal.yaml\nrgb_camera_info: rgb.yaml\n")
    return tmp_path


def test_a_rig_is_registered_by_its_geometry_and_per_pixel_by_depth_files(rig_files):
    from sage_core.cli.fuse import build_parser, thermal_config
    from sage_core.cli.fuse_rig import RigFiles
    from sage_core.fuser import Fuser
    from sage_core.image_files import pair_images
    from sage_core.options import InferenceOptions
    from sage_core.pipeline import FramePipeline
    from sage_core.thermal import ThermalNormalizer

    flags = ["--ir", str(rig_files / "ir"), "--vis", str(rig_files / "vis"), "--rig", str(rig_files / "rig.yaml"),
             "--device", "cpu", "--backend", "torch", "--quiet"]
    assert main([*flags, "--out", str(rig_files / "far")]) == 0
    assert main([*flags, "--depth", str(rig_files / "depth"), "--out", str(rig_files / "depth_out")]) == 0
    args = build_parser().parse_args([*flags, "--depth", str(rig_files / "depth"), "--out", "unused"])
    rig = RigFiles(args)
    pipeline = FramePipeline(Fuser.from_options(InferenceOptions(device="cpu", backend="torch")),
                             ThermalNormalizer(thermal_config(args)))
    (pair,) = pair_images(args.ir, args.vis)
    thermal, visible, depth = rig.read(pair)
    expected = pipeline.fuse(thermal, visible, depth=depth, aligner=rig.aligner)
    written = cv2.imread(str(rig_files / "depth_out" / "f0.png"))
    assert np.array_equal(written, expected)
    assert np.abs(written.astype(int) - cv2.imread(str(rig_files / "far" / "f0.png")).astype(int)).mean() > 1.0


@pytest.mark.parametrize("extra, expected", [
    (["--depth", "somewhere"], "--depth and --registration-distance need --rig"),
    (["--rig", "RIG_NO_INFO"], "image files carry no intrinsics: the rig file must name thermal_camera_info and "
                               "rgb_camera_info"),
])
def test_rig_flags_without_what_they_need_are_one_line(rig_files, capsys, extra, expected):
    (rig_files / "bare.yaml").write_text("translation: [0.05, 0, 0]\nrotation: [0, 0, 0, 1]\n")
    extra = [str(rig_files / "bare.yaml") if value == "RIG_NO_INFO" else value for value in extra]
    assert main(["--ir", str(rig_files / "ir"), "--vis", str(rig_files / "vis"), "--out", str(rig_files / "out"),
                 "--device", "cpu", "--quiet", *extra]) == 2
    assert expected in _one_error_line(capsys)
