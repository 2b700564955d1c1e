"""Run folders are owned and crash-consistent: a new run never writes over an earlier one, two runs never share a
folder, and a run interrupted at any instant of saving resumes from its last finished epoch with nothing lost."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import torch
from safetensors.torch import load_file

import tinynet_zoo as tz
from tinynet_zoo.training import loop
from tinynet_zoo.training.checkpoint import generations
from sample_data import export_digits
from tinynet_zoo.files import write_atomic
from tinynet_zoo.training.run_folder import RunFolder

SMALL = tz.Twist(r=0.3, d=0.4, w=0.35, resolution=32)
CONFIG = dict(epochs=2, batch_size=16, progress=False, ema_decay=0.9, seed=1, pretrained=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Bit-identical comparisons between runs need the same thread count in every run (as the CLI runs get)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return export_digits(tmp_path_factory.mktemp("digits"), size=32, limit=80)


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    tz.finetune(SMALL, digits, out, **CONFIG)
    return load_file(str(generations(out)[-1] / "weights.safetensors"))


def _same(state, reference):
    return state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in reference)


def test_a_new_run_never_writes_over_an_earlier_one(digits, tmp_path):
    out = tmp_path / "run"
    tz.finetune(SMALL, digits, out, **{**CONFIG, "epochs": 1})
    (out / "notes.txt").write_text("mine")
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(tz.InvalidArgumentError, match="already holds a run .*--resume .*--overwrite"):
        tz.finetune(SMALL, digits, out, **{**CONFIG, "epochs": 1})
    assert (out / "metrics.jsonl").read_text() == before  # untouched
    tz.finetune(SMALL, digits, out, overwrite=True, **{**CONFIG, "epochs": 1})
    assert (out / "notes.txt").read_text() == "mine"  # overwrite removes only the run's own files
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]


def test_two_runs_never_share_a_folder(digits, tmp_path):
    out = tmp_path / "run"
    with RunFolder(out, resume=False):  # another run holds the folder
        with pytest.raises(tz.InvalidArgumentError, match=f"in use by process {os.getpid()} on "):
            tz.finetune(SMALL, digits, out, **CONFIG)
    assert not (out / "metrics.jsonl").exists()


class _Interrupt:
    """Raises KeyboardInterrupt at the n-th file-system change (before or after it) while epoch 2 is saved."""

    OPS = ((os, "replace"), (os, "fsync"), (os, "unlink"), (shutil, "rmtree"), (tempfile, "mkdtemp"))

    def __init__(self, monkeypatch, at, after, replace_best):
        self.at, self.after, self.count, self.armed = at, after, 0, False
        for module, name in self.OPS:
            monkeypatch.setattr(module, name, self._wrap(getattr(module, name)))
        record = loop._record

        def armed_record(run, row, extra):
            self.armed = row["epoch"] == 2
            if self.armed and replace_best:  # epoch 2 counts as an improvement: best/ is replaced too
                run.best["top1"] = -1.0
            try:
                record(run, row, extra)
            finally:
                self.armed = False
        monkeypatch.setattr(loop, "_record", armed_record)

    def _wrap(self, fn):
        def inner(*args, **kwargs):
            if not self.armed:
                return fn(*args, **kwargs)
            self.count += 1
            mine = self.count  # operations nested inside this one (rmtree's unlinks) count after it
            if mine == self.at and not self.after:
                raise KeyboardInterrupt
            try:
                return fn(*args, **kwargs)
            finally:  # also right after an operation that failed (and whose error the caller would ignore)
                if mine == self.at and self.after:
                    raise KeyboardInterrupt
        return inner


def _quick_curves(folder, history):
    """The curves file written as plot_curves writes it (one atomic replace), without matplotlib's second."""
    return write_atomic(folder / "curves.png", lambda path: path.write_bytes(b"curves"))


def _operations(digits, tmp_path, monkeypatch, replace_best):
    with monkeypatch.context() as patch:
        counter = _Interrupt(patch, at=0, after=False, replace_best=replace_best)
        tz.finetune(SMALL, digits, tmp_path / "count", **CONFIG)
    return counter.count


@pytest.fixture(scope="module")
def after_epoch_one(digits, tmp_path_factory):
    """A run folder as a 2-epoch run leaves it when stopped right after epoch 1 was saved."""
    out = tmp_path_factory.mktemp("epoch1") / "run"
    train_epoch = loop._train_epoch

    def stop_at_epoch_two(run, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return train_epoch(run, epoch)
    loop._train_epoch = stop_at_epoch_two
    try:
        with pytest.raises(KeyboardInterrupt):
            tz.finetune(SMALL, digits, out, **CONFIG)
    finally:
        loop._train_epoch = train_epoch
    assert [p.name for p in generations(out)] == ["epoch-0001"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("replace_best", [False, True], ids=["checkpoint", "checkpoint+best"])
@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_interrupted_at_every_step_of_a_save_resumes_with_nothing_lost(digits, tmp_path, monkeypatch, reference,
                                                                        after_epoch_one, after, replace_best):
    monkeypatch.setattr(loop, "plot_curves", _quick_curves)
    operations = _operations(digits, tmp_path, monkeypatch, replace_best)
    assert operations >= (14 if replace_best else 8)  # metrics, curves, best/, checkpoint: each several steps
    for at in range(1, operations + 1):  # each step of saving epoch 2, interrupted before or after it
        out = shutil.copytree(after_epoch_one, tmp_path / f"run-{at}")
        with monkeypatch.context() as patch:
            _Interrupt(patch, at, after, replace_best)
            try:
                tz.finetune(SMALL, digits, out, resume=out, **CONFIG)
            except KeyboardInterrupt:
                pass
            else:
                pytest.fail(f"no interrupt at step {at} of {operations} ({'after' if after else 'before'} it)")
        assert generations(out), f"no complete checkpoint after an interrupt at step {at}"
        result = tz.finetune(SMALL, digits, out, resume=out, **CONFIG)
        assert [r["epoch"] for r in result.history] == [1, 2]
        assert _same(load_file(str(generations(out)[-1] / "weights.safetensors")), reference), (at, after)
        assert tz.load_pretrained(out / "best").num_classes == 10  # best/ survived (or was put back)
        assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]


def _cli(digits, folder, out, *extra):
    """A `tinynet-zoo finetune` process training the model folder `folder` into `out` for 3 epochs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "tinynet_zoo.cli", "finetune", str(folder), "--data", str(digits), "--out",
            str(out), "--epochs", "3", "--batch-size", "16", "--ema-decay", "0.9", "--seed", "1", "--no-progress",
            *extra]
    return argv, env


def _as_from_a_terminal():
    """In the child before it starts: SIGINT and SIGTERM delivered and at their defaults, whatever the test worker
    inherited (a child inherits blocked and ignored signals, and then never sees the Ctrl-C the test sends)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start_and_wait(argv, env, out, epochs_saved):
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)
    deadline = time.time() + 300
    while len(generations(out)) < epochs_saved and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    return proc


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "small"
    torch.manual_seed(0)
    tz.save_pretrained(tz.create(SMALL, num_classes=10), folder)
    return folder


@pytest.fixture(scope="module")
def cli_reference(digits, model_folder, tmp_path_factory):
    """The final weights of an uninterrupted 3-epoch CLI run."""
    full = tmp_path_factory.mktemp("cli") / "full"
    argv, env = _cli(digits, model_folder, full)
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return load_file(str(generations(full)[-1] / "weights.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("saved, delay", [(1, 0.0), (2, 0.05)])
def test_killed_with_sigkill_mid_run_resumes(digits, model_folder, cli_reference, tmp_path, saved, delay):
    part = tmp_path / "part"
    argv, env = _cli(digits, model_folder, part)
    proc = _start_and_wait(argv, env, part, saved)
    time.sleep(delay)
    proc.kill()
    proc.communicate()
    resumed = subprocess.run(argv + ["--resume", str(part)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _same(load_file(str(generations(part)[-1] / "weights.safetensors")), cli_reference)
    rows = [json.loads(line)["epoch"] for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3]


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_exits_130(digits, model_folder, tmp_path):
    argv, env = _cli(digits, model_folder, tmp_path / "run")
    proc = _start_and_wait(argv, env, tmp_path / "run", 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted; epoch" in lines[0] and f"--resume {tmp_path / 'run'}" in lines[0], err


def test_resuming_a_run_killed_before_its_first_epoch_says_to_start_again(tmp_path):
    from tinynet_zoo.training.checkpoint import resume_point

    (tmp_path / "run.json").write_text("{}")  # a run that started but finished no epoch
    with pytest.raises(tz.IncompatibleCheckpointError, match="nothing to resume; start it again with --overwrite"):
        resume_point(tmp_path)


IDENTITY = {"architecture": "twist", "twist": SMALL.to_dict(), "num_classes": 10, "label_names": None}


def _fake_run(out):
    """A run folder as a finished run leaves it (run.json, metrics, a generation, best/), without training."""
    with RunFolder(out, resume=False, identity=IDENTITY):
        pass
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (out / "checkpoints" / "epoch-0001").mkdir(parents=True)
    for name in ("weights.safetensors", "optimizer.pt"):
        (out / "checkpoints" / "epoch-0001" / name).write_bytes(b"ours")
    return out


def _mine(out, *names):
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(f"mine: {name}")


def _still_mine(out, *names):
    return all((out / name).read_text() == f"mine: {name}" for name in names)


def test_overwrite_refuses_files_no_run_json_proves_are_a_runs(tmp_path):
    out, names = tmp_path / "run", ("checkpoints/model_best.pth", "best/labels.txt", "metrics.jsonl")
    _mine(out, *names)
    with pytest.raises(tz.InvalidArgumentError, match=f"{out} holds metrics.jsonl, checkpoints, best but no "
                                                      "run.json, .*nothing was removed"):
        RunFolder(out, resume=False, overwrite=True, identity=IDENTITY)
    assert _still_mine(out, *names) and not (out / "run.json").exists()


@pytest.mark.parametrize("name, named", [("checkpoints/notes.txt", "checkpoints/notes.txt"),
                                         ("checkpoints/epoch-0001/notes.txt", "checkpoints/epoch-0001"),
                                         ("best/labels.txt", "best")])
def test_overwrite_refuses_user_files_inside_a_runs_folders(tmp_path, name, named):
    out = _fake_run(tmp_path / "run")
    _mine(out, name)
    with pytest.raises(tz.InvalidArgumentError, match=f"{out / named} is not a run's own .*nothing was removed"):
        RunFolder(out, resume=False, overwrite=True, identity=IDENTITY)
    assert _still_mine(out, name) and (out / "checkpoints" / "epoch-0001" / "optimizer.pt").is_file()
    (out / name).unlink()  # the user moved their file away: now the run's own files go
    with RunFolder(out, resume=False, overwrite=True, identity=IDENTITY):
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["run.json"]


@pytest.mark.parametrize("text, match", [
    ("{not json", "run.json is not valid JSON"),
    ("[" * 100000 + "]" * 100000, "run.json is nested too deeply"),
    ('{"experiment": "mine"}', "run.json was not written by a tinynet_zoo run"),
])
@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_a_run_json_not_ours_is_refused_and_kept(tmp_path, text, match, resume):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(text)
    with pytest.raises(tz.InvalidArgumentError, match=f"{match}.*nothing was removed"):
        RunFolder(out, resume=resume, overwrite=not resume, identity=IDENTITY)
    assert (out / "run.json").read_text() == text


def test_resuming_refuses_a_run_json_of_another_model(tmp_path):
    out = _fake_run(tmp_path / "run")
    other = {**IDENTITY, "architecture": "tinynet_a", "twist": tz.Twist(0.86, 1.0, 1.2, 192).to_dict()}
    with pytest.raises(tz.InvalidArgumentError, match=r"records a run of twist \(twist .*, 10 classes\), not of this "
                                                      "tinynet_a .*resume with the same model and data"):
        RunFolder(out, resume=True, identity=other)
    with RunFolder(out, resume=True, identity=IDENTITY) as run:
        assert run.identity["twist"] == SMALL.to_dict()


def test_resuming_a_run_from_before_run_json_records_it(tmp_path):
    out = _fake_run(tmp_path / "run")
    (out / "run.json").unlink()  # a run folder written by a release without run.json
    with RunFolder(out, resume=True, identity=IDENTITY) as run:
        assert run.identity["twist"] == SMALL.to_dict()
    recorded = json.loads((out / "run.json").read_text())
    assert {k: recorded[k] for k in IDENTITY} == IDENTITY and recorded["kind"] == "finetune-run"
    other = {**IDENTITY, "num_classes": 7}
    with pytest.raises(tz.InvalidArgumentError, match=r"records a run of twist .*10 classes\), not of this twist "
                                                      r".*7 classes\); resume with the same model"):
        RunFolder(out, resume=True, identity=other)
    with RunFolder(out, resume=False, overwrite=True, identity=IDENTITY):  # now provably a run's own
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["run.json"]


def test_resuming_without_run_json_records_nothing_over_files_not_a_runs(tmp_path):
    out = _fake_run(tmp_path / "run")
    (out / "run.json").unlink()
    _mine(out, "checkpoints/notes.txt")
    with RunFolder(out, resume=True, identity=IDENTITY) as run:
        assert run.identity == IDENTITY
    assert not (out / "run.json").exists() and _still_mine(out, "checkpoints/notes.txt")
