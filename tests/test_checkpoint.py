import pytest
import torch

from sage_core.checkpoint import load_model, read_checkpoint, save_checkpoint
from sage_core.errors import CheckpointError
from sage_core.models import LiteFuse, SageStudent


def test_our_format_round_trips_architecture_config_and_weights(tmp_path):
    model = LiteFuse(width=8, dilations=(1, 3))
    path = save_checkpoint(model, tmp_path / "m.pt", meta={"note": "test"})
    loaded, info = load_model(path)
    assert isinstance(loaded, LiteFuse) and loaded.config() == {"width": 8, "dilations": [1, 3]}
    assert info.kind == "sage_ros" and info.meta == {"note": "test"}
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert not loaded.training


def test_bare_student_state_dict_is_recognised(tmp_path):
    torch.save(SageStudent().state_dict(), tmp_path / "official.pt")
    model, info = load_model(tmp_path / "official.pt")
    assert isinstance(model, SageStudent) and info.kind == "sage_official"


def test_released_checkpoint_loads(official_checkpoint):
    model, info = load_model(official_checkpoint)
    assert info.arch == "sage_student"
    assert sum(p.numel() for p in model.parameters()) == 135_617


def test_strict_check_names_missing_unexpected_and_shape(tmp_path):
    state = SageStudent().state_dict()
    del state["module3.3.weight"]
    state["module9.0.weight"] = torch.zeros(1)
    state["final_decoder.0.weight"] = torch.zeros(2, 32, 3, 3)
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path / "broken.pt")
    text = str(info.value)
    assert "missing 1: module3.3.weight" in text
    assert "unexpected 1: module9.0.weight" in text
    assert "final_decoder.0.weight (2, 32, 3, 3) != (1, 32, 3, 3)" in text


def test_ours_with_wrong_config_is_reported(tmp_path):
    save_checkpoint(LiteFuse(width=8), tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["config"]["width"] = 16
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_model(tmp_path / "m.pt")
    payload["arch"] = "resnet"
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="unknown architecture 'resnet'"):
        load_model(tmp_path / "m.pt")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable PyTorch checkpoint"),
        (b"garbage" * 100, "not a readable PyTorch checkpoint"),
    ],
)
def test_corrupt_files(tmp_path, content, message):
    (tmp_path / "c.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(tmp_path / "c.pt")


def test_truncated_and_foreign_and_missing(tmp_path):
    save_checkpoint(LiteFuse(), tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        read_checkpoint(tmp_path / "t.pt")
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a sage_ros checkpoint nor the released"):
        read_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="directory"):
        read_checkpoint(tmp_path)
