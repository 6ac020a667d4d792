"""rosbags' bag Writer, completed with what rosbag2 writes and rosbags (0.11) leaves out.

- mcap: real CRC-32s (each chunk's `uncompressed_crc`, the data section's in DataEnd,
  the footer's `summary_crc`) where rosbags writes 0, which tells readers "not
  available", so a corrupted bag went unnoticed; each message's `publish_time` (when
  it was sent) beside its `log_time` (when it was received), where rosbags repeats the
  log time; and each channel's `topic_type_hash` metadata, as rosbag2_storage_mcap.
- Both storages: the ROS distro (`ros_distro` in metadata.yaml and in the copy of the
  metadata inside the bag file, and sqlite3's `schema` table), where rosbags writes
  "rosbags".

rosbags still lays out every record: this module hands it its own storage classes
(Writer.STORAGE_PLUGINS) that fill in those fields before the bytes reach the disk.
sqlite3 bags (rosbag2 schema 4) have no column for the publish time; only mcap keeps it.
"""
import os
import re
import sys
from contextlib import contextmanager
from io import BytesIO, StringIO
from pathlib import Path
from typing import Optional
from zlib import crc32

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import Channel, McapWriter, write_channel, write_string
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer
from ruamel.yaml import YAML

# rclpy's major version in each ROS 2 release (Rolling's moves on, so it is not here)
RCLPY_DISTROS = {3: 'humble', 4: 'iron', 7: 'jazzy', 9: 'kilted'}

# MCAP opcodes and field offsets (https://mcap.dev/spec) of the records completed here
OP_CHUNK, OP_DATA_END, OP_FOOTER = 0x06, 0x0F, 0x02
RECORD_HEAD = 9                       # opcode (1) + record length (8)
CHUNK_SIZE_AT, CHUNK_CRC_AT = 25, 33  # uncompressed_size, uncompressed_crc
PUBLISH_TIME_AT = 23                  # in a Message: channel 2, sequence 4, log_time 8
FOOTER_SIZE, MAGIC_SIZE = RECORD_HEAD + 20, 8
FOOTER_CRC_AT = RECORD_HEAD + 16      # after summary_start and summary_offset_start


def ros_distro() -> str:
    """The ROS 2 distro for a bag's metadata: ROS_DISTRO when set (what rosbag2 writes),
    else the release of the installed rclpy (e.g. the PyPI wheels, which set no
    ROS_DISTRO), else '' (unknown; rosbag2 too writes '' without ROS_DISTRO)."""
    if os.environ.get('ROS_DISTRO'):
        return os.environ['ROS_DISTRO']
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    for prefix in prefixes + [sys.prefix]:
        try:
            xml = Path(prefix, 'share', 'rclpy', 'package.xml').read_text()
        except OSError:
            continue
        version = re.search(r'<version>\s*(\d+)\.', xml)
        return RCLPY_DISTROS.get(int(version.group(1)), '') if version else ''
    return ''


def _with_distro(metadata: str, distro: str, key: Optional[str] = None) -> str:
    """rosbags' metadata YAML text with `ros_distro` set (under `key`, if given)."""
    safe = YAML(typ='safe')
    safe.default_flow_style = False   # as rosbags dumps it
    data = safe.load(metadata)
    (data[key] if key else data)['ros_distro'] = distro
    out = StringIO()
    safe.dump(data, out)
    return out.getvalue() if key else out.getvalue().strip()


def _put(buf, offset: int, value: int, size: int) -> None:
    buf[offset:offset + size] = value.to_bytes(size, 'little')


def _get(buf, offset: int, size: int = 8) -> int:
    return int.from_bytes(buf[offset:offset + size], 'little')


class _CrcFile:
    """The open .mcap file, keeping a CRC-32 of every byte written (from the magic on)."""

    def __init__(self, file, crc: int):
        self.file, self.crc = file, crc

    def write(self, data) -> int:
        self.crc = crc32(data, self.crc)
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


class _Spool:
    """Stands in for the file while rosbags writes a run of records, so that they can be
    completed before they are written; tell() still counts file offsets."""

    def __init__(self, start: int):
        self.start, self.buf = start, BytesIO()

    def write(self, data) -> int:
        return self.buf.write(data)

    def tell(self) -> int:
        return self.start + self.buf.tell()

    def close(self) -> None:
        pass


class McapStorage(McapWriter):
    """rosbags' mcap storage with CRCs, publish times and topic_type_hash (see above)."""

    ros_distro = ''

    def __init__(self, path: Path, compression):
        super().__init__(path, compression)   # writes the magic and the Header record
        self.bio.flush()
        self.bio = _CrcFile(self.bio, crc32(self.path.read_bytes()))
        self.next_publish_time = None   # set by BagFileWriter.write for the next message
        self._publish_times = []        # (offset in the open chunk, publish time)

    def add_connection(self, connection, offered_qos_profiles: str) -> None:
        """A Channel as rosbag2 writes it: metadata `offered_qos_profiles` and
        `topic_type_hash` (rosbags writes only the first)."""
        metadata = BytesIO()
        for key, value in (('offered_qos_profiles', offered_qos_profiles),
                           ('topic_type_hash', connection.digest)):
            write_string(metadata, key)
            write_string(metadata, value)
        self.channels.append(Channel(connection.id, connection.msgtype, connection.topic,
                                     connection.ext.serialization_format,
                                     metadata.getvalue()))
        self.channel_stats[connection.id] = 0
        write_channel(self.chunk.bio, self.channels[-1], self.schemas)

    def write(self, connection, timestamp: int, data) -> None:
        publish_time, self.next_publish_time = self.next_publish_time, None
        if publish_time is not None and publish_time != timestamp:
            # rosbags writes the log time twice; the second is set when the chunk closes
            self._publish_times.append((self.chunk.bio.tell() + PUBLISH_TIME_AT, publish_time))
        super().write(connection, timestamp, data)   # may close the chunk

    @contextmanager
    def _spooled(self):
        """Collect what rosbags writes meanwhile; yields the buffer, written out after."""
        file, spool = self.bio, _Spool(self.bio.tell())
        self.bio = spool
        try:
            yield spool.buf
        finally:
            self.bio = file
        file.write(spool.buf.getbuffer())

    def close_chunk(self) -> None:
        chunk = self.chunk.bio
        for offset, publish_time in self._publish_times:
            chunk.seek(offset)
            chunk.write(publish_time.to_bytes(8, 'little'))
        chunk.seek(0, 2)
        self._publish_times = []
        size = chunk.tell()
        with chunk.getbuffer() as records:
            crc = crc32(records)
        with self._spooled() as out:   # the Chunk record, then its MessageIndex records
            super().close_chunk()
            with out.getbuffer() as rec:
                if rec[0] != OP_CHUNK or _get(rec, CHUNK_SIZE_AT) != size:
                    raise RuntimeError('rosbags wrote an unexpected mcap chunk record')
                _put(rec, CHUNK_CRC_AT, crc, 4)

    def close(self, version: int, metadata: str) -> None:
        if self.chunk.bio.tell():
            self.close_chunk()
        file, start = self.bio, self.bio.tell()
        with self._spooled() as out:
            # the rest of the data section (a Metadata record), DataEnd, the summary
            # section, the Footer and the closing magic
            super().close(version, _with_distro(metadata, self.ros_distro))
            with out.getbuffer() as tail:
                pos = 0
                while tail[pos] != OP_DATA_END:
                    pos += RECORD_HEAD + _get(tail, pos + 1)
                _put(tail, pos + RECORD_HEAD, crc32(tail[:pos], file.crc), 4)
                footer = len(tail) - MAGIC_SIZE - FOOTER_SIZE
                if tail[footer] != OP_FOOTER:
                    raise RuntimeError('rosbags wrote an unexpected mcap footer')
                summary = _get(tail, footer + RECORD_HEAD)   # summary_start, 0 if none
                summary = summary - start if summary else footer
                _put(tail, footer + FOOTER_CRC_AT,
                     crc32(tail[summary:footer + FOOTER_CRC_AT]), 4)
        file.close()


class Sqlite3Storage(Sqlite3Writer):
    """rosbags' sqlite3 storage, with the real ROS distro."""

    ros_distro = ''
    next_publish_time = None   # sqlite3 bags keep only the receive time

    def close(self, version: int, metadata: str) -> None:
        self.cursor.execute('UPDATE schema SET ros_distro = ?', (self.ros_distro,))
        super().close(version, _with_distro(metadata, self.ros_distro))


class BagFileWriter(Writer):
    """rosbags' Writer using the storages above; write() also takes the publish time."""

    STORAGE_PLUGINS = {StoragePlugin.MCAP: McapStorage, StoragePlugin.SQLITE3: Sqlite3Storage}

    def __init__(self, path, *, version, storage_plugin, distro: Optional[str] = None):
        super().__init__(path, version=version, storage_plugin=storage_plugin)
        self.ros_distro = ros_distro() if distro is None else distro

    def open(self) -> None:
        super().open()
        self.storage.ros_distro = self.ros_distro

    def write(self, connection, timestamp: int, data, publish_time: Optional[int] = None):
        """Write a message received at `timestamp` and sent at `publish_time` (ns; None:
        unknown, the receive time is stored for both, as rosbag2 does)."""
        if self.storage is not None:
            self.storage.next_publish_time = publish_time
        try:
            super().write(connection, timestamp, data)
        finally:
            if self.storage is not None:
                self.storage.next_publish_time = None

    def close(self) -> None:
        super().close()   # metadata.yaml says ros_distro: rosbags
        tmp = self.metapath.with_suffix('.yaml.tmp')
        tmp.write_text(_with_distro(self.metapath.read_text('utf8'), self.ros_distro,
                                    'rosbag2_bagfile_information'), 'utf8')
        tmp.replace(self.metapath)
