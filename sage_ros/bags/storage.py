"""Reading a rosbag2 bag (folder, or a bare ``.mcap`` / ``.db3`` file) and writing one atomically.

Whatever rosbags raises on a bag that cannot be read (missing, truncated, not a bag, unsupported) becomes
one :class:`BagError` naming the path and the reason. An output bag is written in a temporary folder
beside its destination and renamed into place when complete: a reader never sees half a bag, and a
failed run leaves nothing behind.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError

from sage_core.errors import SageError
from sage_ros.bags.messages import TYPESTORE

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
FILE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}
ROSBAG2_VERSION = 9  # what Jazzy and later write; readers since Humble take it


class BagError(SageError):
    """A bag that cannot be read or written; the message names it and says why."""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    if "end magic" in text or "malformed" in text:
        text += " (truncated: a recording cut short? `mcap recover` or `ros2 bag reindex` may repair it)"
    return text


class InputBag:
    """An open bag: its topics and a stream of (connection, log time ns, raw CDR bytes)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag (expected a rosbag2 folder, or a .mcap or .db3 file)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except (ReaderError, FileNotFoundError, OSError, ValueError, KeyError) as exc:
            raise BagError(f"{self.path}: not a readable rosbag2 bag: {_reason(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - storage libraries raise their own types on damaged files
            raise BagError(f"{self.path}: not a readable rosbag2 bag: {type(exc).__name__}: {_reason(exc)}") from None
        self.connections: list[Connection] = list(self._reader.connections)

    @property
    def topics(self) -> dict[str, tuple[str, int]]:
        """Topic name -> (message type, message count)."""
        out: dict[str, tuple[str, int]] = {}
        for conn in self.connections:
            msgtype, count = out.get(conn.topic, (conn.msgtype, 0))
            out[conn.topic] = (msgtype, count + conn.msgcount)
        return out

    def count(self, topics: Iterable[str] | None = None) -> int:
        wanted = None if topics is None else set(topics)
        return sum(c.msgcount for c in self.connections if wanted is None or c.topic in wanted)

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[Connection, int, bytes]]:
        """Messages of ``topics`` (all when None) in log-time order; a read failure is a BagError."""
        wanted = None if topics is None else set(topics)
        connections = [c for c in self.connections if wanted is None or c.topic in wanted]
        read = 0
        try:
            for conn, log_ns, raw in self._reader.messages(connections=connections):
                read += 1
                yield conn, log_ns, raw
        except (ReaderError, OSError, ValueError, KeyError, EOFError) as exc:
            raise BagError(f"{self.path}: unreadable after {read} messages: {_reason(exc)}") from None

    def first(self, topic: str) -> tuple[str, bytes] | None:
        """(type, raw bytes) of the topic's first message, or None."""
        try:
            for conn, _, raw in self.messages([topic]):
                return conn.msgtype, raw
        except BagError:
            return None
        return None

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> InputBag:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def output_storage(path: Path, storage: str | None) -> str:
    """The storage to write ``path`` with: a .mcap / .db3 file name implies it; else ``storage`` or mcap."""
    implied = FILE_SUFFIXES.get(path.suffix)
    if implied and storage and storage != implied:
        raise BagError(f"{path}: a {path.suffix} file is {implied} storage, but --storage {storage} was given")
    return implied or storage or "mcap"


class WriteQueue:
    """Writes messages on a thread of its own, in the order given, so that disk writes overlap decoding and
    fusion (file writes are a large share of a big bag's time; MCAP only: SQLite stays on its thread). At most
    ``depth`` messages wait; a write error is raised by the next :meth:`put` or by :meth:`close`."""

    def __init__(self, write, lock: threading.Lock, depth: int = 16) -> None:
        self._write, self._lock = write, lock
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sage_bag_writer", daemon=True)
        self._thread.start()

    def put(self, *message) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(message)

    def close(self) -> None:
        """Wait until everything is written; raises the first write error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            if self._error is None:  # after an error, only drain: the producer learns of it on its next put
                try:
                    with self._lock:
                        self._write(*message)
                except Exception as exc:  # noqa: BLE001 - handed to the producer
                    self._error = exc


class OutputBag:
    """A bag written under a temporary name and renamed to ``path`` when the ``with`` block succeeds.

    ``path`` is a rosbag2 folder (``metadata.yaml`` + one storage file), or a bare ``.mcap`` / ``.db3``
    file, which Foxglove and ``ros2 bag`` (Jazzy and later) open as it is.
    """

    def __init__(self, path: str | os.PathLike, storage: str | None = None, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.storage = output_storage(self.path, storage)
        self.single_file = self.path.suffix in FILE_SUFFIXES
        if self.path.exists() and not overwrite:
            raise BagError(f"{self.path}: exists already; choose another output or pass --overwrite")
        if self.path.exists() and self.single_file != self.path.is_file():
            raise BagError(f"{self.path}: exists and is a {'folder' if self.path.is_dir() else 'file'}; "
                           f"not replacing it with a bag {'file' if self.single_file else 'folder'}")
        self._tmp: Path | None = None
        self._writer: Writer | None = None
        self._queue: WriteQueue | None = None
        self._lock = threading.Lock()  # the writer is not thread-safe: topics are added while messages go out
        self._copies: dict[tuple[str, str], Connection] = {}

    def __enter__(self) -> OutputBag:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
            self._writer = Writer(self._tmp / self.path.stem, version=ROSBAG2_VERSION,
                                  storage_plugin=STORAGES[self.storage])
            self._writer.open()
            if self.storage == "mcap":  # SQLite connections are bound to the thread that made them
                self._queue = WriteQueue(self._writer.write, self._lock)
        except (OSError, WriterError) as exc:
            self._discard()
            raise BagError(f"{self.path}: cannot write a bag there: {_reason(exc)}") from None
        return self

    def add_topic(self, topic: str, msgtype: str) -> Connection:
        """A new topic of a type our typestore knows (sensor_msgs/Image, ...)."""
        with self._lock:
            return self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)

    def copy_topic(self, conn: Connection) -> Connection | None:
        """A connection taking the input's messages as they are (type, definition, QoS); None when the input
        bag carries no definition of a type our typestore does not know either (it cannot be described)."""
        key = (conn.topic, conn.msgtype)
        if key not in self._copies:
            msgdef = conn.msgdef.data if conn.msgdef.format != MessageDefinitionFormat.NONE else ""
            if msgdef and conn.digest:
                described = {"msgdef": msgdef, "rihs01": conn.digest}
            elif conn.msgtype in TYPESTORE.types:  # SQLite3 bags before Iron store no definitions
                described = {"typestore": TYPESTORE}
            else:
                return None
            with self._lock:
                self._copies[key] = self._writer.add_connection(
                    conn.topic, conn.msgtype, offered_qos_profiles=getattr(conn.ext, "offered_qos_profiles", ()),
                    **described)
        return self._copies[key]

    def write(self, conn: Connection, log_ns: int, raw: bytes) -> None:
        """Queue one message (immutable bytes: written later, on the writer thread); a failed earlier write
        is raised here as a BagError."""
        try:
            if self._queue is not None:
                self._queue.put(conn, log_ns, raw)
            else:
                self._writer.write(conn, log_ns, raw)
        except (OSError, WriterError) as exc:
            raise BagError(f"{self.path}: cannot write to the bag: {_reason(exc)}") from None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            if self._queue is not None:
                self._queue.close()
                self._queue = None
            self._writer.close()
            self._writer = None
            built = self._tmp / self.path.stem
            if self.single_file:
                built = built / f"{self.path.stem}{self.path.suffix}"
            replaced = self._tmp / "replaced"
            if self.path.exists():  # --overwrite: the old one goes only once the new one is complete
                self.path.rename(replaced)
            try:
                built.rename(self.path)
            except OSError:
                if replaced.exists():  # put the old output back rather than lose it with the temporary folder
                    replaced.rename(self.path)
                raise
        except (OSError, WriterError) as error:
            raise BagError(f"{self.path}: cannot finish writing the bag: {_reason(error)}") from None
        finally:
            self._discard()

    def _discard(self) -> None:
        for stop in (self._queue and self._queue.close, self._writer and self._writer.abort):
            try:
                if stop:
                    stop()
            except Exception:  # noqa: BLE001 - cleaning up after a failure: the first error is the one to report
                pass
        self._queue = self._writer = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
