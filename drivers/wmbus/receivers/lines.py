"""Hex telegrams one per line, from a file, a FIFO, a subprocess such as
rtl_wmbus, or a TCP socket; rtl_wmbus's `T1;1;1;...;0x<hex>` lines too."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Sequence

import structlog

from gateway.clock import Clock
from gateway.model import LinkError

from .base import Receiver, Streams

log = structlog.get_logger(__name__)

_MAX_LINE = 4096


def parse_line(line: str) -> bytes | None:
    """Return the telegram on a line, or None for blank, comment or bad lines.

    Accepts plain hex (spaces allowed, optional 0x) and rtl_wmbus output,
    whose fields are mode, CRC ok, 3-of-6 ok, time, RSSI, RSSI, id, 0xHEX;
    a line whose CRC flag is 0 is dropped.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if ";" in text:
        fields = text.split(";")
        if len(fields) >= 3 and fields[1].strip() == "0":
            return None
        text = fields[-1].strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    try:
        frame = bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        return None
    return frame if len(frame) >= 11 else None


class LineReceiver(Receiver):
    """Read telegrams as text lines from a path, a command or host:port.

    Exactly one of `path`, `command` or `tcp` is given. A regular file is
    read to its end and then reports the source as ended.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        command: Sequence[str] | None = None,
        tcp: tuple[str, int] | None = None,
        silence_timeout_s: float = 900.0,
        clock: Clock | None = None,
    ) -> None:
        if sum(x is not None for x in (path, command, tcp)) != 1:
            raise ValueError("give exactly one of path, command or tcp")
        super().__init__(silence_timeout_s, clock)
        self.path = path
        self.command = list(command) if command else None
        self.tcp = tcp
        self._buf = bytearray()
        self._process: asyncio.subprocess.Process | None = None
        self._pipe: asyncio.ReadTransport | None = None
        self.bad_lines = 0

    def __repr__(self) -> str:
        source = self.path or self.command or self.tcp
        return f"LineReceiver({source!r})"

    async def _connect(self) -> Streams:
        loop = asyncio.get_running_loop()
        try:
            if self.tcp is not None:
                return await asyncio.open_connection(*self.tcp)
            if self.command is not None:
                self._process = await asyncio.create_subprocess_exec(
                    *self.command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                )
                assert self._process.stdout is not None
                return self._process.stdout, None
            assert self.path is not None
            reader = asyncio.StreamReader(limit=_MAX_LINE * 4)
            mode = os.stat(self.path).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
                # O_RDWR keeps a FIFO open when its writer goes away.
                fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
                pipe = os.fdopen(fd, "rb", buffering=0)
                self._pipe, _ = await loop.connect_read_pipe(
                    lambda: asyncio.StreamReaderProtocol(reader), pipe
                )
            else:
                data = await asyncio.to_thread(_read_file, self.path)
                reader.feed_data(data)
                reader.feed_eof()
            return reader, None
        except OSError as exc:
            raise LinkError(
                f"cannot open line source {self.path or self.command or self.tcp}:"
                f" {exc.strerror or exc}"
            ) from None

    async def close(self) -> None:
        await super().close()
        # A FIFO has no writer to close; its read transport must be closed
        # itself, or it keeps the pipe open and swallows the lines meant for
        # the reopened receiver.
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            await process.wait()

    def _feed(self, chunk: bytes) -> list[tuple[bytes, int | None]]:
        self._buf += chunk
        out: list[tuple[bytes, int | None]] = []
        while (end := self._buf.find(b"\n")) >= 0:
            line = self._buf[:end].decode("ascii", "replace")
            del self._buf[: end + 1]
            frame = parse_line(line)
            if frame is None:
                if line.strip() and not line.lstrip().startswith("#"):
                    self.bad_lines += 1
                continue
            # rtl_wmbus's RSSI figures are not dBm; report none rather than guess.
            out.append((frame, None))
        if len(self._buf) > _MAX_LINE:
            self.bad_lines += 1
            self._buf.clear()
        return out


def _read_file(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()
