"""The cache of compiled artefacts (TensorRT engines, ONNX files) built from a model at start.

An artefact's file name is a key over everything that makes it invalid (the parts each backend lists:
the checkpoint's sha256, a digest of the model's code, sage_ros's version, the compile settings and
profile, precision, the versions of torch and of every compiler library, the GPU, its compute capability
and driver; see :mod:`sage_core.backends.fingerprint`), so a change to any of them builds a new artefact
and never loads a stale one. Beside each artefact, ``NAME.json`` records the key's parts and the
artefact's own sha256, checked before every load: a file replaced or corrupted since it was built
is rebuilt with a warning, never loaded. Writes are atomic; an unwritable folder falls back to the
user cache folder, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sage_core.atomic import atomic_path
from sage_core.checkpoint import file_sha256
from sage_core.errors import BackendError

log = logging.getLogger("sage_core.backends")


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sage_ros" / "engines"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
        return True
    except OSError:
        return False


class ArtifactCache:
    """Artefacts keyed by everything that makes one invalid; see the module docstring."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        wanted = Path(folder) if folder else user_cache_dir()
        if _writable(wanted):
            self.folder = wanted
        else:
            fallback = user_cache_dir()
            if not _writable(fallback):
                raise BackendError(f"engine cache folder {wanted} is not writable, nor is the fallback {fallback}")
            log.warning("engine cache folder %s is not writable; using %s instead", wanted, fallback)
            self.folder = fallback

    @staticmethod
    def key(parts: dict) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    def path(self, parts: dict, suffix: str) -> Path:
        return self.folder / f"{parts.get('kind', 'artefact')}_{self.key(parts)}{suffix}"

    def subfolder(self, parts: dict) -> Path:
        """A folder of its own for ``parts`` (a library's own cache, e.g. ONNX Runtime's TensorRT engines),
        created if needed: a change to any part gives a new, empty folder."""
        folder = self.folder / f"{parts.get('kind', 'artefact')}_{self.key(parts)}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def record_path(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def _verified(self, path: Path) -> str | None:
        """None when the artefact matches the digest recorded at build time, else why not."""
        try:
            record = json.loads(self.record_path(path).read_text())
        except (OSError, json.JSONDecodeError):
            return "its build record is missing or unreadable"
        expected = record.get("artefact_sha256") if isinstance(record, dict) else None
        if not expected:
            return "its build record holds no digest"
        if file_sha256(path) != expected:
            return "it differs from the file built here (digest mismatch)"
        return None

    def get_or_build(self, parts: dict, suffix: str, build: Callable[[Path], None], load: Callable[[Path], object],
                     force: bool = False) -> tuple[object, str]:
        """Load the cached artefact for ``parts``, or build it (atomically) and load that; returns a status."""
        path = self.path(parts, suffix)
        kind = parts.get("kind", "artefact")
        if force:
            reason = "rebuild forced (force_engine_update)"
        elif not path.is_file():
            reason = "no cached artefact for this key (model, code, settings, libraries, device)"
        else:
            problem = self._verified(path)
            if problem is None:
                try:
                    return load(path), f"loaded cached {kind} {path}"
                except Exception as exc:  # noqa: BLE001 - a corrupt or incompatible engine: rebuild, never crash
                    problem = f"failed to load ({type(exc).__name__}: {str(exc)[:200]})"
            reason = f"cached {path.name} {problem}; rebuilt"
            log.warning(reason)
        started = time.perf_counter()
        with atomic_path(path) as tmp:
            build(tmp)
            digest = file_sha256(tmp)
        with atomic_path(self.record_path(path)) as tmp:
            tmp.write_text(json.dumps({"key": parts, "artefact_sha256": digest}, indent=2, sort_keys=True) + "\n")
        status = f"built {kind} {path} in {time.perf_counter() - started:.1f} s: {reason}"
        return load(path), status
