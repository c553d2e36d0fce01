"""Ctrl-C stops a run within seconds and leaves a checkpoint that resumes, even where one
compiled call would once have run for minutes (a run whose evaluations and loss logs are
1,000,000 steps apart was a single 1,000,000-step call)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import shiftrl
from shiftrl.data.io import save_npz
from shiftrl.envs.toy import POINT_REACH_ID
from shiftrl.training import checkpoint
from shiftrl.training.logger import RunLogger
from tests.conftest import tiny_overrides


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)


def test_sigint_stops_a_long_chunk_run_with_a_resumable_checkpoint(point_reach_data, tmp_path):
    data = save_npz(point_reach_data, tmp_path / "data.npz")
    out = tmp_path / "run"
    sets = {"eval_every": 1_000_000, "log_every": 1_000_000, "eval_episodes": 2}
    sets.update(tiny_overrides("td3bc", batch_size=64))
    argv = [sys.executable, "-m", "shiftrl.cli", "train", "--algo", "td3bc"]
    argv += ["--dataset", str(data), "--steps", "1000000", "--out", str(out), "--no-progress"]
    for k, v in sets.items():
        argv += ["--set", f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"]
    env = {**os.environ, "PYTHONPATH": str(Path(shiftrl.__file__).parents[1])}
    proc = subprocess.Popen(
        argv,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        # a test run started in the background of a non-interactive shell ignores SIGINT,
        # and so would the child: reset it (Python then installs its Ctrl-C handling)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while not (out / "config.json").exists():  # data loaded; compiling, then training
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)  # generous: a chunk of ~2 s (or the compilation)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.2)
    seen = []
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert code == 130, text
    assert "saved a checkpoint at training step" in text and "interrupted" in text, text
    assert "Traceback" not in text
    step = int(checkpoint.latest(out).stem.split("_")[1])
    assert 0 < step < 1_000_000
    assert "window" in checkpoint.load_extra(checkpoint.latest(out))

    # the checkpoint loads into the run's own config (resuming from such a checkpoint is
    # checked bitwise below, in-process)
    assert shiftrl.load_policy(out).step == step


class _StopAtOnce:
    """A StopRequest whose Ctrl-C came before the first chunk finished."""

    requested = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def check(self):
        raise KeyboardInterrupt


def test_stops_in_pretraining_and_mid_window_resume_bitwise(
    point_reach_data, tmp_path, monkeypatch
):
    """A run stopped during SPOT's VAE pretraining, resumed and stopped again between two
    evaluations, then resumed to the end, ends bitwise where an uninterrupted run ends,
    with the same logged rows (training-loss means up to float32 rounding: the resumed run
    may split the steps into chunks differently). Training losses go to the
    TensorBoard / W&B sinks every `log_every` steps."""
    from flax import serialization

    from shiftrl.training import run as run_module

    common = dict(
        steps=40,
        eval_envs=[POINT_REACH_ID],
        addons=[{"name": "spot", "hidden": (16, 16), "pretrain_steps": 20}],
        overrides=tiny_overrides(
            "td3bc", eval_every=20, log_every=10, batch_size=64, eval_episodes=1
        ),
        progress=False,
    )
    logged = []  # training losses reach TensorBoard / W&B every log_every steps
    with monkeypatch.context() as m:
        m.setattr(RunLogger, "log_scalars", lambda self, step, s: logged.append((step, set(s))))
        full = shiftrl.train("td3bc", point_reach_data, out=tmp_path / "full", **common)
    train_logs = [step for step, keys in logged if "critic/q" in keys]
    assert train_logs == [10, 20, 30, 40]
    out = tmp_path / "stopped"
    with monkeypatch.context() as m:
        m.setattr(run_module, "StopRequest", _StopAtOnce)
        with pytest.raises(KeyboardInterrupt):  # after the first pretraining chunk
            shiftrl.train("td3bc", point_reach_data, out=out, **common)
        assert checkpoint.load_extra(checkpoint.latest(out)) == {"pretrain_done": 10}
        with pytest.raises(KeyboardInterrupt):  # pretraining done, after 10 training steps
            shiftrl.train("td3bc", point_reach_data, out=out, resume=True, **common)
        assert checkpoint.latest(out).name == "step_0000000010.msgpack"
    resumed = shiftrl.train("td3bc", point_reach_data, out=out, resume=True, **common)

    def carry(run):
        return serialization.msgpack_restore(checkpoint.latest(run.dir).read_bytes())["carry"]

    jax.tree.map(np.testing.assert_array_equal, carry(full), carry(resumed))
    drop = ("elapsed_s",)
    strip = [
        [{k: v for k, v in r.items() if k not in drop} for r in x.rows] for x in (full, resumed)
    ]
    assert [r["step"] for r in strip[1]] == [20, 40]
    for a, b in zip(*strip, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if a[k] is None or isinstance(a[k], str):
                assert a[k] == b[k], k
            else:
                np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_pretraining_progress_is_saved_so_a_killed_run_does_not_redo_it(
    point_reach_data, tmp_path, monkeypatch
):
    """Pretraining writes its progress every `PRETRAIN_SAVE_EVERY_S` and once complete, so a
    run killed afterwards (no Ctrl-C, no chance to save) resumes without redoing it."""
    from shiftrl.training import run as run_module
    from shiftrl.training.runloop import RunLoop

    common = dict(
        steps=20,
        eval_envs=[POINT_REACH_ID],
        addons=[{"name": "spot", "hidden": (16, 16), "pretrain_steps": 20}],
        overrides=tiny_overrides("td3bc", eval_every=20, batch_size=64, eval_episodes=1),
        progress=False,
    )
    saves: list[tuple[int, bool]] = []
    save = RunLoop.save_pretraining

    def spy(self, carry, done, interrupted=True):
        saves.append((done, interrupted))
        save(self, carry, done, interrupted)

    class Killed(BaseException):
        pass

    def killed(*a, **k):
        raise Killed

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(run_module, "PRETRAIN_SAVE_EVERY_S", 0.0)  # every chunk
        m.setattr(run_module.ChunkPacer, "next", lambda self, left: min(left, 10))
        m.setattr(RunLoop, "save_pretraining", spy)
        m.setattr(RunLoop, "run", killed)  # dies as training starts
        with pytest.raises(Killed):
            shiftrl.train("td3bc", point_reach_data, out=out, **common)
    assert saves == [(10, False), (20, False)]  # periodic, then complete; both silent
    assert checkpoint.load_extra(checkpoint.latest(out)) == {"pretrain_done": 20}

    chunks = []
    make = run_module.make_pretrain_chunk
    monkeypatch.setattr(run_module, "make_pretrain_chunk", lambda *a: chunks.append(1) or make(*a))
    resumed = shiftrl.train("td3bc", point_reach_data, out=out, resume=True, **common)
    assert chunks == []  # the pretraining phase was not run again
    assert [r["step"] for r in resumed.rows if "return" in r] == [20]


def _skip_unless_deliverable(*sigs: int) -> None:
    """These tests signal their own process: skip where that would stop it (its own SIGTERM
    handler) or where the signal is ignored (a run started in the background of a
    non-interactive shell), so StopRequest leaves it alone."""
    if signal.SIGTERM in sigs and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("this test process handles SIGTERM itself; sending it one could stop it")
    if any(signal.getsignal(s) is signal.SIG_IGN for s in sigs):
        pytest.skip("this test process ignores the signal, so StopRequest leaves it alone")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_request_a_stop_then_the_handlers_are_restored(sig):
    """A scheduler's SIGTERM (SLURM preemption, a time limit) stops a loop like Ctrl-C does:
    the first one only sets the flag the loop reads between chunks, a second one stops at
    once; leaving the loop puts back what was there."""
    from shiftrl.core.interrupt import StopRequest

    _skip_unless_deliverable(sig)
    before = signal.getsignal(sig)
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), sig)
        time.sleep(0.05)  # delivered to the main thread at the next bytecode
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
            time.sleep(0.05)
        with pytest.raises(KeyboardInterrupt):
            stop.check()
    assert signal.getsignal(sig) is before


def test_ctrl_c_then_a_sweeps_sigterm_is_one_request():
    """A benchmark worker gets the terminal's Ctrl-C and then its stopping sweep's SIGTERM:
    still one stop request, so its run saves; only the same signal twice stops at once."""
    from shiftrl.core.interrupt import StopRequest

    _skip_unless_deliverable(signal.SIGINT, signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.requested  # and no KeyboardInterrupt yet
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)


def test_a_programs_own_sigterm_handler_is_left_alone():
    from shiftrl.core.interrupt import StopRequest

    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with StopRequest():
            assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_sweep_takes_sigterm_as_an_interrupt():
    """A benchmark sweep runs no training loop itself: `kill PID` raises KeyboardInterrupt
    in it, so it stops through its cleanup (workers told to save) instead of dying."""
    from shiftrl.core.interrupt import sigterm_as_interrupt

    _skip_unless_deliverable(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
