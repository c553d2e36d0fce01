"""Run folders are owned and locked: shiftrl never deletes or overwrites what it did not write.

A folder shiftrl creates for a run holds `.shiftrl-run` (the ownership marker) from the first
moment; restarting such a run removes only the files shiftrl writes (`OWN_FILES`), never a
user's notes or analysis beside them. A folder without the marker is never cleaned: a fresh
run into it is refused unless it is empty, and `--resume` takes it over only when it already
holds a shiftrl run written before the marker existed (config.json with checkpoints, or
nothing but files a run writes).

While a run trains, it holds an exclusive `fcntl` lock on `.shiftrl-lock` in its folder (and
`bench` on its study folder): a second writer, or a `--resume` of a live run, is refused with
the holder's pid. The kernel drops the lock when its process dies, so a lock file left by a
killed run never blocks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiftrl import __version__
from shiftrl.core.errors import ConfigError, DataError, ShiftRLError
from shiftrl.core.jsonfile import read_json_object
from shiftrl.data.preprocess import Preprocessor
from shiftrl.training import checkpoint

MARKER = ".shiftrl-run"
LOCK = ".shiftrl-lock"
MODELS_FILE = "models.json"
"""What an add-on's `prepare` trained or loaded (see `AddOn.prepared_records`)."""
OWN_FILES = (
    MARKER,
    "config.json",
    "metrics.jsonl",
    "metrics.csv",
    "metrics.jsonl.tmp",
    "metrics.csv.tmp",
    "checkpoints",
    "learning_curve.png",
    "tensorboard",
    "wandb",
    "finetune.json",
    MODELS_FILE,
    "snapshots",
)
"""What a run writes into its folder (LOCK is kept: removing a lock file others may hold
open would let two writers lock two different files)."""


def is_marked(run_dir: Path) -> bool:
    return (Path(run_dir) / MARKER).is_file()


def is_empty(run_dir: Path) -> bool:
    """Nothing in it but the marker and a lock file (what a cleaned-up run leaves)."""
    return not any(p.name not in (MARKER, LOCK) for p in Path(run_dir).iterdir())


def adoptable(run_dir: Path) -> bool:
    """An unmarked folder `--resume` may take over as a run written before the marker
    existed: it has config.json and checkpoints (resuming deletes nothing), or it holds only
    files a shiftrl run writes, config.json among them."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        return False
    if any((run_dir / "checkpoints").glob("step_*.msgpack")):
        return True
    return all(p.name in (*OWN_FILES, LOCK) for p in run_dir.iterdir())


def make_dir(path: Path, what: str = "run folder") -> Path:
    """mkdir -p with one clear line when `path` is a file, under a file, or unwritable."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ShiftRLError(f"{what} {path} is a file, not a folder; choose another --out") from None
    except NotADirectoryError:
        raise ShiftRLError(f"{what} {path} lies under a file; choose another --out") from None
    except OSError as e:
        raise ShiftRLError(f"cannot create {what} {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ShiftRLError(f"{what} {path} is not writable; choose another --out")
    return path


def check_target(path: Path, what: str = "run folder") -> None:
    """Refuse, before writing anything, an --out that is a file or lies under one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ShiftRLError(f"{what} {path} is a file, not a folder; choose another --out")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ShiftRLError(f"{what} {path} lies under a file; choose another --out")
            if not os.access(parent, os.W_OK | os.X_OK) and not path.exists():
                raise ShiftRLError(f"cannot create {what} {path}: {parent} is not writable")
            break


def mark(run_dir: Path) -> None:
    """Claim a folder as a shiftrl run folder (written before anything else of the run)."""
    marker = Path(run_dir) / MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"format": 1, "written_by": f"shiftrl {__version__}"}) + "\n")


def remove_own_files(run_dir: Path, remove_folder: bool = False) -> None:
    """Delete what a shiftrl run writes in `run_dir` (only in a marked folder), leaving
    everything else. The marker stays while other files do (so `--resume` may restart the
    run); `remove_folder`: the folder goes too when nothing else is left in it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not is_marked(run_dir):
        return
    for name in OWN_FILES:
        p = run_dir / name
        if name == MARKER:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink(missing_ok=True)
    if is_empty(run_dir):
        (run_dir / MARKER).unlink(missing_ok=True)
        if remove_folder:
            (run_dir / LOCK).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()


def clear_run(run_dir: Path) -> None:
    """Empty a run folder of shiftrl's files to train it again from scratch (the demo's
    re-runs); a folder holding files shiftrl did not write is refused, untouched."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    if not is_marked(run_dir):
        if not all(p.name in (*OWN_FILES, LOCK) for p in run_dir.iterdir()):
            raise ConfigError(
                f"{run_dir} holds files shiftrl did not write; refusing to clear it, choose "
                "another --out"
            )
        mark(run_dir)
    with FolderLock(run_dir):
        remove_own_files(run_dir)


class FolderLock:
    """An exclusive, non-blocking `flock` on `folder/.shiftrl-lock`, holding this pid."""

    def __init__(self, folder: Path, what: str = "run folder"):
        self.folder, self.what = Path(folder), what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        path = self.folder / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = _read_pid(path)
            who = f"pid {holder}" if holder else "another process"
            raise ShiftRLError(
                f"{self.what} {self.folder} is in use by another shiftrl process ({who}); "
                "wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def check_unlocked(folder: Path, what: str = "run folder") -> None:
    """Refuse early (before loading data) a folder another live process holds."""
    folder = Path(folder)
    if (folder / LOCK).is_file():
        FolderLock(folder, what).acquire().release()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class OpenRun:
    """A run folder opened for writing: locked; `pre` is the recorded preprocessor when the
    run resumes from a checkpoint (None: a fresh start); `created`: this call made it."""

    path: Path
    lock: FolderLock
    pre: Preprocessor | None
    created: bool


def open_run(run_dir: Path, resume: bool, checksums: list[str]) -> OpenRun:
    """Lock a run folder and say whether to resume it. Nothing is deleted in a folder that
    is not marked as shiftrl's; a marked one restarted without checkpoints loses only
    shiftrl's own files."""
    check_target(run_dir)
    existed = run_dir.exists()
    if existed and not is_empty(run_dir) and not is_marked(run_dir):
        if not resume:
            raise ConfigError(
                f"run folder {run_dir} already exists; pass --resume to continue it or choose "
                "another --out"
            )
        if not adoptable(run_dir):  # runs written before the marker are adopted
            raise ConfigError(
                f"{run_dir} is not a shiftrl run folder (no {MARKER}, files shiftrl did "
                "not write); refusing to touch them, choose another --out"
            )
    make_dir(run_dir)
    lock = FolderLock(run_dir).acquire()
    try:
        mark(run_dir)  # empty, already ours, or an older run adopted (checked above)
        has_config = (run_dir / "config.json").is_file()
        if resume and has_config and checkpoint.latest(run_dir) is not None:
            meta = read_meta(run_dir)
            if meta["checksums"] != checksums:
                raise DataError(
                    f"{run_dir}: the datasets differ from those the run started with "
                    "(checksum mismatch)"
                )
            try:
                pre = Preprocessor.from_json(meta["preprocessor"])
            except (KeyError, TypeError, ValueError) as e:
                raise ShiftRLError(
                    f"{run_dir}/config.json: damaged preprocessor record ({type(e).__name__})"
                ) from None
            return OpenRun(run_dir, lock, pre, not existed)
        if not is_empty(run_dir):
            if not resume:
                raise ConfigError(
                    f"run folder {run_dir} already exists; pass --resume to continue it or "
                    "choose another --out"
                )
            # killed before its first checkpoint: start again, removing only shiftrl's files
            remove_own_files(run_dir)
            mark(run_dir)  # kept by the cleanup only while other files remain
        return OpenRun(run_dir, lock, None, not existed)
    except BaseException:
        lock.release()
        raise


def read_meta(run_dir: Path) -> dict:
    """config.json of a run folder, or one clear line when it is missing or unreadable."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise ShiftRLError(f"{run_dir}: not a shiftrl run folder (no config.json)")
    meta = read_json_object(path, "the run folder is damaged")
    if meta.get("kind") == "online-context":
        raise ShiftRLError(
            f"{run_dir} is an online context run (`shiftrl train-online`): continue it with "
            f"`shiftrl train-online --resume --out {run_dir}`; its scores per dynamics are in "
            "metrics.jsonl"
        )
    needed = ("config", "preprocessor", "obs_dim", "act_dim", "checksums")
    missing = [k for k in needed if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ShiftRLError(
            f"{path}: not a complete shiftrl run config (missing {', '.join(missing)})"
        )
    return meta


def run_config(meta: dict, path: Path) -> Any:
    """The RunConfig recorded in a run's config.json, or one clear line."""
    from shiftrl.training.config import RunConfig, validate_config

    try:
        config = RunConfig.from_json(meta["config"])
    except ShiftRLError as e:
        raise ShiftRLError(f"{path}/config.json: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ShiftRLError(
            f"{path}/config.json: the recorded config is incomplete or damaged ({type(e).__name__}: {e})"
        ) from None
    validate_config(config)
    return config
