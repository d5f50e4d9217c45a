"""Training: the schedule, weight decay groups, EMA, a tiny run, exact resume, DDP (with EMA) over 2 gloo processes,
no per-step host syncs, the options (amp, clip, compile, drop path), bad input."""

import csv
import errno
import logging
import math
import os
import socket

import pytest
import torch
from click.testing import CliRunner

from rexnet import ReXNet, save_arch
from rexnet.cli import main
from rexnet.training.train import TIMING_COLUMNS, format_epoch, lr_at, make_ema, param_groups, train

from ..train_helpers import TINY, tiny_config


@pytest.fixture
def arch_json(tmp_path):
    return save_arch(TINY, tmp_path / "tiny.json")


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def _rows(path, drop=TIMING_COLUMNS):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_lr_warmup_then_cosine():
    total, warm = 100, 10
    lrs = [lr_at(s, total, warm, 0.4, 0.0) for s in range(total)]
    assert lrs[:warm] == pytest.approx([0.4 * (s + 1) / warm for s in range(warm)])
    assert lrs[warm] == pytest.approx(0.4)  # cosine starts at the peak
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1 :]))
    mid = warm + (total - warm) // 2
    assert lrs[mid] == pytest.approx(0.2, rel=1e-9)  # half-way down the cosine
    assert lr_at(total, total, warm, 0.4, 0.01) == pytest.approx(0.01)


def test_no_weight_decay_on_bn_and_bias():
    model = ReXNet(TINY, 10)
    decay, no_decay = param_groups(model, 1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("bias") or p.ndim == 1 for p in no_decay["params"])
    assert all(p.ndim > 1 for p in decay["params"])
    bn_weights = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {f"{n}.weight" for n in bn_weights} <= {names[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_ema_update_known_answer():
    model = torch.nn.BatchNorm2d(2)
    with torch.no_grad():
        model.weight.zero_()
    ema = make_ema(model, 0.75)  # starts at the model's weights (0)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.running_mean.fill_(4.0)
    model.num_batches_tracked += 7
    ema.update()
    assert torch.equal(ema.module.weight, torch.full((2,), 0.5))  # 0.75·0 + 0.25·2
    assert torch.equal(ema.module.running_mean, torch.full((2,), 1.0))  # BN statistics are averaged too
    assert ema.module.num_batches_tracked == model.num_batches_tracked == 7  # integers are copied


def test_ema_matches_the_per_tensor_lerp_it_replaced():
    # Reference: the previous implementation, a lerp of every floating state_dict tensor per step.
    torch.manual_seed(0)
    model = ReXNet(TINY, 10).train()
    reference = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema = make_ema(model, 0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(4, 3, 16, 16)).square().mean().backward()
        optimizer.step()
        ema.update()
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                reference[name].lerp_(value, 0.1)
            else:
                reference[name].copy_(value)
    ours = ema.module.state_dict()
    assert ours.keys() == reference.keys() and all(torch.equal(ours[k], reference[k]) for k in ours)


def test_tiny_epoch_writes_a_consistent_run_folder(tmp_path, arch_json, capsys, caplog):
    cfg = tiny_config(tmp_path / "run", arch_json, epochs=1)
    rows = []
    with caplog.at_level(logging.INFO, logger="rexnet.training"):
        row = train(cfg, on_epoch=rows.append)
    # train() prints nothing: it logs one line per epoch and hands the row to on_epoch
    assert capsys.readouterr().out == "" and rows == [row]
    assert [r.getMessage() for r in caplog.records if r.name == "rexnet.training"] == [format_epoch(row, 1)]
    assert format_epoch(row, 1).startswith("epoch 1/1  loss ")
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pth", "config.json", "metrics.csv", "model.pth"]
    rows = _rows(run / "metrics.csv", drop=())
    assert len(rows) == 1 and float(rows[0]["img_per_s"]) > 0
    assert set(rows[0]) >= {"train_loss", "test_top1", "test_top5", "lr"}
    assert math.isfinite(row["train_loss"]) and 0 <= row["test_top1"] <= row["test_top5"] <= 100
    ckpt = torch.load(run / "checkpoint.pth", map_location="cpu", weights_only=True)  # untrusted-safe loading
    assert ckpt["epoch"] == 1 and "ema" in ckpt["extra"] and ckpt["optimizer"]["state"]


def test_resume_is_exact(tmp_path, arch_json, monkeypatch):
    straight = tiny_config(tmp_path / "straight", arch_json)
    train(straight)

    import rexnet.training.train as train_module

    real = train_module.write_metrics_csv

    def stop_after_first_epoch(path, rows):
        real(path, rows)
        if len(rows) == 1:
            raise KeyboardInterrupt  # as if the process were killed after epoch 1 was saved

    interrupted = tiny_config(tmp_path / "resumed", arch_json)
    monkeypatch.setattr(train_module, "write_metrics_csv", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted)
    monkeypatch.setattr(train_module, "write_metrics_csv", real)
    assert len(_rows(tmp_path / "resumed" / "metrics.csv")) == 1
    train(interrupted, resume=True)

    assert _rows(tmp_path / "resumed" / "metrics.csv") == _rows(tmp_path / "straight" / "metrics.csv")
    for name in ("checkpoint.pth", "model.pth"):
        a, b = _weights(tmp_path / "straight" / name), _weights(tmp_path / "resumed" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_the_last_checkpoint_writes_model_pth(tmp_path, arch_json, monkeypatch):
    """Killed after the last epoch's checkpoint.pth but before model.pth: resuming finishes the run."""
    import rexnet.training.train as train_module

    cfg = tiny_config(tmp_path / "run", arch_json)
    real = train_module.save_model

    def killed(run, row):
        raise KeyboardInterrupt  # as if the process were killed right before writing model.pth

    monkeypatch.setattr(train_module, "save_model", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(train_module, "save_model", real)
    assert (tmp_path / "run" / "checkpoint.pth").is_file() and not (tmp_path / "run" / "model.pth").exists()
    row = train(cfg, resume=True)
    straight = tiny_config(tmp_path / "straight", arch_json)
    timing = set(TIMING_COLUMNS)
    assert {k: v for k, v in row.items() if k not in timing} == {
        k: v for k, v in train(straight).items() if k not in timing
    }
    a, b = _weights(tmp_path / "straight" / "model.pth"), _weights(tmp_path / "run" / "model.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cfg, out_dir):
    """One torchrun-like process: the env variables torchrun sets, then the public train()."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    import rexnet.training.train as train_module

    runs = []
    real_setup = train_module.setup

    def keep(*args, **kwargs):
        runs.append(real_setup(*args, **kwargs))
        return runs[-1]

    train_module.setup = keep
    row = train_module.train(cfg)
    run = runs[0]
    weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    ema = {k: v.detach().clone() for k, v in run.ema.module.state_dict().items()} if run.ema is not None else {}
    torch.save({"row": row, "weights": weights, "ema": ema}, f"{out_dir}/rank{rank}.pt")


@pytest.mark.slow
def test_ddp_two_gloo_processes_agree(tmp_path, arch_json):
    import torch.multiprocessing as mp

    cfg = tiny_config(tmp_path / "ddp", arch_json, epochs=1, batch_size=16, ema_decay=0.9)
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])  # DDP kept them in step
    fresh = ReXNet(TINY, 10).state_dict()
    assert not all(torch.equal(r0["weights"][k], fresh[k]) for k in fresh)  # and they did train
    # The EMA, BN statistics included, is the same on both processes (each saw other batches).
    assert r0["ema"].keys() == fresh.keys()
    assert all(torch.equal(r0["ema"][k], r1["ema"][k]) for k in r0["ema"])
    assert not torch.equal(r0["ema"]["features.1.running_mean"], r0["weights"]["features.1.running_mean"])
    same = [k for k in r0["row"] if k not in TIMING_COLUMNS]
    assert all(r0["row"][k] == r1["row"][k] for k in same)  # metrics are all-reduced over both ranks
    assert len(_rows(tmp_path / "ddp" / "metrics.csv")) == 1  # rank 0 wrote the run folder
    saved = _weights(tmp_path / "ddp" / "model.pth")  # the EMA, evaluated and saved
    assert all(torch.equal(saved[k], r1["ema"][k]) for k in saved)


# --- bad input: one line, exit 2, the run folder left as it was ----------------------------------------


def test_cli_trains_a_block_table(tmp_path, arch_json):
    result = _invoke(
        "train",
        "--arch",
        arch_json,
        "--data",
        "fake",
        "--img-size",
        16,
        "--train-limit",
        32,
        "--test-limit",
        16,
        "--epochs",
        1,
        "--batch-size",
        16,
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.output
    assert "done:" in result.output and (tmp_path / "run" / "model.pth").is_file()
    assert result.output.startswith("epoch 1/1  loss ")  # the CLI prints each epoch's line


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "rexnet_100", "--data", "mnist-digits"], "unknown dataset"),
        (["--model", "rexnet_100", "--data", "imagefolder:/nonexistent/place"], "ImageFolder"),
        (["--model", "nosuchnet", "--data", "fake"], "unknown model"),
        (["--data", "fake"], "exactly one of --model"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, words):
    line = _one_error_line(_invoke("train", *args, "--out", tmp_path / "run", "--no-progress"))
    assert words in line
    assert not (tmp_path / "run" / "checkpoint.pth").exists()


def _cli_tiny(arch_json, out, *extra):
    return _invoke(
        "train",
        "--arch",
        arch_json,
        "--data",
        "fake",
        "--img-size",
        16,
        "--train-limit",
        32,
        "--test-limit",
        16,
        "--epochs",
        2,
        "--batch-size",
        16,
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        out,
        *extra,
    )


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_resume_with_other_settings_is_refused(tmp_path, arch_json):
    run = tmp_path / "run"
    assert _cli_tiny(arch_json, run).exit_code == 0
    before = _snapshot(run)
    line = _one_error_line(_cli_tiny(arch_json, run, "--resume", "--lr", "0.3"))
    assert "other settings" in line and "lr=0.1" in line
    line = _one_error_line(_cli_tiny(arch_json, run))  # same folder, no --resume
    assert "already holds a run" in line
    _one_error_line(_cli_tiny(arch_json, tmp_path / "empty", "--resume"))
    assert _snapshot(run) == before


def test_out_of_disk_leaves_the_last_complete_epoch(tmp_path, arch_json, monkeypatch):
    run = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def disk_fills_up(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:  # epoch 1's checkpoint fits, epoch 2's does not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    line = _one_error_line(_cli_tiny(arch_json, run))
    assert "out of disk space" in line and "--resume" in line
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pth", "config.json", "metrics.csv"]  # no temp files
    assert len(_rows(run / "metrics.csv")) == 1
    assert torch.load(run / "checkpoint.pth", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(torch, "save", real_save)
    assert _cli_tiny(arch_json, run, "--resume").exit_code == 0
    assert len(_rows(run / "metrics.csv")) == 2


# --- the named steps: device placement, host syncs, options --------------------------------------------


def _setup(tmp_path, arch_json, train=64, **changes):
    from rexnet.training.train import setup

    from ..train_helpers import tiny_data

    return setup(tiny_config(tmp_path / "run", arch_json, **changes), data=tiny_data(train=train))


def test_metric_sums_are_reduced_on_the_training_device(tmp_path, arch_json, monkeypatch):
    # NCCL reduces CUDA tensors only: every all_reduce must get a tensor on the model's device. The meta device
    # stands in for a GPU here (a CPU tensor would be the bug); the reduction is where the check stops.
    import rexnet.training.train as train_module

    class Reduced(Exception):
        pass

    def all_reduce(tensor, *args, **kwargs):
        devices.append(tensor.device.type)
        raise Reduced

    monkeypatch.setattr(train_module.dist, "all_reduce", all_reduce)
    run = _setup(tmp_path, arch_json, ema_decay=0.0)
    meta = torch.device("meta")
    run.model.to(meta)
    run.device = meta
    for step in (
        lambda: train_module.evaluate_loss_acc(run.model, run.test_loader, meta, distributed=True),
        lambda: train_module.train_one_epoch(run, 0),
    ):
        devices = []
        run.world = 2
        with pytest.raises(Reduced):
            step()
        assert devices == ["meta"]


def test_no_host_sync_per_step(tmp_path, arch_json, monkeypatch):
    from rexnet.training.train import train_one_epoch

    calls = []
    for name in ("item", "tolist", "__int__", "__float__", "__bool__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(
            torch.Tensor, name, lambda self, *a, _real=real, _name=name: calls.append(_name) or _real(self, *a)
        )
    counts = []
    for size in (32, 128):  # 2 and 8 steps
        run = _setup(tmp_path / str(size), arch_json, train=size)
        run.train_loader = list(run.train_loader)  # the batches made beforehand: count the step's reads only
        calls.clear()
        train_one_epoch(run, 0)
        counts.append(len(calls))
    assert counts[0] == counts[1] <= 1, counts  # one read of the sums per epoch, whatever the number of steps


def test_clip_grad_bounds_the_first_update(tmp_path, arch_json):
    from rexnet.training.train import train_one_epoch

    moved = {}
    for clip in (None, 1e-3):
        run = _setup(tmp_path / str(clip), arch_json, train=16, clip_grad=clip, weight_decay=0.0, ema_decay=0.0)
        before = [p.detach().clone() for p in run.model.parameters()]
        lr = train_one_epoch(run, 0)["lr"]
        delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(run.model.parameters(), before)])
        moved[clip] = (delta.norm().item(), lr * (1 + run.cfg.momentum) * 1e-3)  # Nesterov's first step: (1+m)·g
    assert moved[1e-3][0] <= moved[1e-3][1] * 1.0001 < moved[None][0]


def test_compile_drop_path_and_amp_options(tmp_path, arch_json, monkeypatch):
    from rexnet.errors import RexnetError
    from rexnet.training.train import cpu_has_bfloat16, train_one_epoch

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compiled.append(module) or module)
    run = _setup(tmp_path / "c", arch_json, compile=True, drop_path=0.2)
    assert compiled == [run.model] and run.step_model is run.model
    assert [b.drop_path for b in run.model.features[3:6]] == pytest.approx(
        [0.0, 0.0, 0.2]
    )  # only block 2 has a shortcut
    if cpu_has_bfloat16():
        run = _setup(tmp_path / "a", arch_json, train=16, amp=True)
        dtypes = []
        run.model.features[0].register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
        train_one_epoch(run, 0)
        assert dtypes == [torch.bfloat16] and run.model.features[0].weight.dtype == torch.float32
    else:
        with pytest.raises(RexnetError, match="no native bfloat16"):
            _setup(tmp_path / "a", arch_json, amp=True)
    assert _setup(tmp_path / "d", arch_json).autocast_dtype is None  # default on CPU: float32


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="NCCL needs a CUDA GPU")
def test_nccl_reduces_metrics_on_cuda(tmp_path, arch_json, monkeypatch):
    import torch.distributed as dist

    from rexnet.training.train import evaluate_loss_acc, train_one_epoch

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        run = _setup(tmp_path, arch_json, device="cuda")
        run.world = 2  # take the distributed code paths; a world of one reduces to the same numbers
        assert train_one_epoch(run, 0)["train_loss"] > 0
        assert 0 <= evaluate_loss_acc(run.model, run.test_loader, run.device, distributed=True)["test_top1"] <= 100
    finally:
        dist.destroy_process_group()
