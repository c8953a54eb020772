"""Training system: exact resume, data-parallel replicas, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from vcodec.training.run import load_init
from vcodec.training.run import main as train_main
from vcodec.zoo import load_keyframe

TINY = """
[model]
n = 16
m = 16
[data]
videos = ["{data}"]
video_stride = 8
crop = 64
[train]
batch = 2
lr = 1e-3
warmup = 2
total_steps = 6
checkpoint_minutes = 10
"""


@pytest.fixture()
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(data=REPO / "data"))
    return path


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def test_stop_and_resume_equals_uninterrupted_run(tmp_path, tiny_config):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train_main([str(tiny_config), "--run-dir", str(tmp_path / "a"), "--steps", "6", "--quiet"])
        train_main([str(tiny_config), "--run-dir", str(tmp_path / "b"), "--steps", "3", "--quiet"])
        train_main([str(tiny_config), "--run-dir", str(tmp_path / "b"), "--steps", "6", "--quiet"])
    finally:
        torch.set_num_threads(threads)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_bf16_autocast_trains_on_cpu(tmp_path, tiny_config):
    """--precision bf16 really changes the arithmetic (the weights differ from an fp32 run of the same
    steps) and keeps the parameters float32 and finite."""
    for precision in ("fp32", "bf16"):
        train_main([str(tiny_config), "--run-dir", str(tmp_path / precision), "--steps", "2", "--quiet",
                    "--precision", precision])
    fp32, bf16 = _weights(tmp_path / "fp32"), _weights(tmp_path / "bf16")
    assert all(t.dtype == fp32[k].dtype and torch.isfinite(t).all() for k, t in bf16.items())
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)


def test_export_is_loadable_and_codes(tmp_path, tiny_config, sample_frames):
    out = tmp_path / "tiny.pt"
    train_main([str(tiny_config), "--run-dir", str(tmp_path / "r"), "--steps", "2", "--quiet",
                "--export", str(out)])
    loaded = load_keyframe(out)
    assert loaded.meta["steps"] == 2 and loaded.model.config.n == 16
    from tests.conftest import crop
    from vcodec.color import frame_to_tensor

    x = frame_to_tensor(crop(sample_frames[0], 64, 64))
    lat = loaded.model.compress(x, 3.0)
    y_hat = loaded.model.decompress(lat.substream(), 32, 32)
    assert torch.equal(y_hat, lat.y_hat)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["keyframe", "inter_multi"])
def test_torchrun_two_processes_keep_replicas_identical(tmp_path, tiny_config, stage):
    """Replicas stay identical, also when a step leaves parts of the model out of some replicas' loss
    (block-motion P-frames skip the motion codec, drawn per replica)."""
    if stage == "inter_multi":
        tiny_config.write_text(TINY_INTER.format(stage=stage, data=REPO / "data") + "block_motion = [0, 8]\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(REPO / "tools" / "train.py"), str(tiny_config), "--run-dir", str(tmp_path / "ddp"), "--steps", "3",
           "--quiet", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    digests = [(tmp_path / "ddp" / f"replica_{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)["step"] == 3


TINY_INTER = """
stage = "{stage}"
[model]
motion_n = 16
motion_m = 16
residual_n = 16
residual_m = 16
refine_width = 16
flow_width = 16
[data]
videos = ["{data}"]
crop = 64
[train]
batch = 2
p_frames = 2
warmup = 1
mc_weight = 1.0
mc_steps = 2
"""


@pytest.mark.parametrize("stage", ["flow", "motion", "inter", "inter_multi"])
def test_inter_stages_train_and_export(tmp_path, stage):
    from vcodec.zoo import load_inter

    cfg = tmp_path / f"{stage}.toml"
    cfg.write_text(TINY_INTER.format(stage=stage, data=REPO / "data"))
    out = tmp_path / "inter.pt"
    train_main([str(cfg), "--run-dir", str(tmp_path / "run"), "--steps", "2", "--quiet", "--export", str(out)])
    log = (tmp_path / "run" / "checkpoint.pt")
    assert torch.load(log, weights_only=True)["step"] == 2
    assert load_inter(out).meta["steps"] == 2


@pytest.mark.parametrize("option", ["flow_refine_steps = 2", "propagate = true", "block_motion = [0, 8, 16]"])
def test_inter_chain_training_options(tmp_path, option):
    """`flow_refine_steps` trains the P-frame codec on the encoder's sharpened fields; `propagate` unrolls the
    chain with gradients through each reference; `block_motion` sends some P-frames' motion as block vectors."""
    cfg = tmp_path / "inter.toml"
    cfg.write_text(TINY_INTER.format(stage="inter_multi", data=REPO / "data") + option + "\n")
    train_main([str(cfg), "--run-dir", str(tmp_path / "run"), "--steps", "1", "--quiet"])
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 1


def test_init_takes_named_parts_of_a_checkpoint(tmp_path):
    """`--init CKPT:motion.` starts a run with that checkpoint's motion codec and nothing else of it."""
    motion_cfg, inter_cfg = tmp_path / "motion.toml", tmp_path / "inter.toml"
    motion_cfg.write_text(TINY_INTER.format(stage="motion", data=REPO / "data"))
    inter_cfg.write_text(TINY_INTER.format(stage="inter", data=REPO / "data") + "seed = 7\n")  # other random init
    train_main([str(motion_cfg), "--run-dir", str(tmp_path / "m"), "--steps", "2", "--quiet"])
    pre = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)["ema"]
    train_main([str(inter_cfg), "--run-dir", str(tmp_path / "i"), "--steps", "1", "--quiet",
                "--init", f"{tmp_path / 'm' / 'checkpoint.pt'}:motion."])
    ema = torch.load(tmp_path / "i" / "checkpoint.pt", weights_only=True)["ema"]
    # The EMA after one step is 0.999 * start + 0.001 * stepped weights: close to the start.
    assert all(torch.allclose(ema[k], pre[k], atol=1e-2) for k in pre if k.startswith("motion."))
    assert not all(torch.allclose(ema[k], pre[k], atol=1e-2) for k in pre if k.startswith("residual.g_a"))


def test_validation_codes_real_bytes_and_plots(tmp_path, tiny_config):
    cfg = tmp_path / "val.toml"
    cfg.write_text(tiny_config.read_text() + f"""
[validation]
videos = ["{REPO / 'data' / 'sample.mp4'}"]
frames = 1
crop = 64
qualities = [1, 6]
every_steps = 1
""")
    train_main([str(cfg), "--run-dir", str(tmp_path / "v"), "--steps", "2", "--quiet"])
    rows = (tmp_path / "v" / "val.csv").read_text().splitlines()
    assert rows[0] == "step,quality,bpp,psnr_yuv" and len(rows) == 1 + 2 * 2
    assert all(float(r.split(",")[2]) > 0 for r in rows[1:])
    from tools.plot_training import main as plot_main

    plot_main([str(tmp_path / "v")])
    assert (tmp_path / "v" / "training.png").read_bytes()[:4] == b"\x89PNG"


def test_frozen_parameters_do_not_move(tmp_path):
    """`freeze = ["flow_net."]` keeps the flow network as it started (weights and EMA) while the rest trains."""
    cfg = tmp_path / "inter.toml"
    cfg.write_text(TINY_INTER.format(stage="inter", data=REPO / "data") + 'freeze = ["flow_net."]\n')
    run = tmp_path / "run"
    train_main([str(cfg), "--run-dir", str(run), "--steps", "1", "--quiet"])
    first = _weights(run)
    train_main([str(cfg), "--run-dir", str(run), "--steps", "3", "--quiet"])
    last = _weights(run)
    ema = torch.load(run / "checkpoint.pt", weights_only=True)["ema"]
    assert all(torch.equal(first[k], last[k]) for k in first if k.startswith("flow_net."))
    assert all(torch.equal(first[k], ema[k]) for k in first if k.startswith("flow_net."))
    assert not all(torch.equal(first[k], last[k]) for k in first if k.startswith("residual.g_a"))
    cfg.write_text(TINY_INTER.format(stage="inter", data=REPO / "data") + 'freeze = ["no_such_module."]\n')
    with pytest.raises(ValueError, match="no parameter name starts with"):
        train_main([str(cfg), "--run-dir", str(tmp_path / "bad"), "--steps", "1", "--quiet"])


def test_resume_point_holds_the_trained_tensors_and_initializes_a_run(tmp_path):
    """`tools/export.py --trainable-only` keeps exactly the EMA tensors the config trains, and `--init` from
    the shipped weights plus the resume point rebuilds the run's EMA (to fp16)."""
    from tools.export import main as export_main
    from vcodec.training.run import initial_weights

    cfg = tmp_path / "inter.toml"
    cfg.write_text(TINY_INTER.format(stage="inter", data=REPO / "data") + 'freeze = ["flow_net.", "motion."]\n')
    run, shipped, resume = tmp_path / "run", tmp_path / "inter.pt", tmp_path / "resume.pt"
    train_main([str(cfg), "--run-dir", str(run), "--steps", "2", "--quiet", "--export", str(shipped)])
    assert export_main([str(cfg), str(run / "checkpoint.pt"), str(resume), "--trainable-only"]) == 0
    ema = torch.load(run / "checkpoint.pt", weights_only=True)["ema"]
    trained = {k for k in ema if not k.startswith(("flow_net.", "motion."))}
    start = initial_weights({"stage": "inter"}, [str(shipped), str(resume)])
    assert set(load_init(str(resume))) == trained
    assert all(torch.equal(start[k].float(), ema[k].half().float()) for k in ema if ema[k].dtype.is_floating_point)


def test_resume_point_exports_over_the_shipped_weights(tmp_path):
    """`tools/export.py RESUME --base SHIPPED` rebuilds the same shipped weights as exporting the run itself."""
    from tools.export import main as export_main
    from vcodec.zoo import read_weights_file

    cfg = tmp_path / "inter.toml"
    cfg.write_text(TINY_INTER.format(stage="inter", data=REPO / "data") + 'freeze = ["flow_net.", "motion."]\n')
    run, shipped, resume, rebuilt = (tmp_path / n for n in ("run", "inter.pt", "resume.pt", "rebuilt.pt"))
    train_main([str(cfg), "--run-dir", str(run), "--steps", "2", "--quiet", "--export", str(shipped)])
    assert export_main([str(cfg), str(run / "checkpoint.pt"), str(resume), "--trainable-only"]) == 0
    assert export_main([str(cfg), str(resume), str(rebuilt), "--base", str(shipped)]) == 0
    want, got = read_weights_file(shipped)["state_dict"], read_weights_file(rebuilt)["state_dict"]
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert json.loads(rebuilt.with_suffix(".json").read_text())["steps"] == 2


def test_lr_scale_groups_parameters_and_survives_resume(tmp_path):
    """`lr_scale` gives a name prefix its own multiple of the schedule's rate, kept across a resume."""
    from vcodec.training.trainer import Schedule, Trainer, param_groups

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    groups = param_groups(model, {"1.": 10.0})
    assert sorted((g["scale"], len(g["params"])) for g in groups) == [(1.0, 2), (10.0, 2)]
    with pytest.raises(ValueError, match="no trainable parameter name starts with"):
        param_groups(model, {"flow_net.": 10.0})

    schedule = Schedule(lr=1e-3, warmup=1, total_steps=4)
    trainer = Trainer(model, tmp_path / "run", schedule, lr_scale={"1.": 10.0})

    def step_fn(step: int):
        return model(torch.ones(1, 2)).pow(2).sum(), {}

    trainer.run(step_fn, steps=2, progress=False)
    trainer.save()
    resumed = Trainer(model, tmp_path / "run", schedule, lr_scale={"1.": 10.0})
    assert resumed.resume()
    rates = sorted(g["lr"] / g["scale"] for g in trainer.optimizer.param_groups)
    assert rates[0] == pytest.approx(rates[1])
    assert sorted(g["scale"] for g in resumed.optimizer.param_groups) == [1.0, 10.0]


def test_motion_warp_stage_trains_only_the_motion_codec(tmp_path):
    """`motion_warp`: the motion codec learns from the warp of real pairs; the frozen parts do not move."""
    cfg = tmp_path / "motion_warp.toml"
    cfg.write_text(TINY_INTER.format(stage="motion_warp", data=REPO / "data")
                   + 'flow_refine_steps = 2\nfreeze = ["flow_net.", "refine.", "residual."]\n')
    run = tmp_path / "run"
    train_main([str(cfg), "--run-dir", str(run), "--steps", "1", "--quiet"])
    first = _weights(run)
    train_main([str(cfg), "--run-dir", str(run), "--steps", "3", "--quiet"])
    last = _weights(run)
    assert all(torch.equal(first[k], last[k]) for k in first if not k.startswith("motion."))
    assert not all(torch.equal(first[k], last[k]) for k in first if k.startswith("motion.g_a"))
