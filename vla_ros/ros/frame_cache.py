"""Thread-safe holder of the latest camera frame, with counters.

Subscribers put every valid message here (a cheap header check, no decoding); the
inference side takes the latest one when it is ready. Frames that were replaced before
anyone used them are counted as dropped: that is the intended behaviour (results describe
the newest frame, nothing queues), and the count shows how much of the stream was skipped.

Decoding is lazy (`Frame.rgb()`, once per frame): at 30 Hz a 640x480 JPEG stream would
otherwise spend ~10% of a core decoding frames that are replaced before they are used.
"""
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..preprocess import ImageError


@dataclass
class Frame:
    msg: object                     # sensor_msgs/Image or CompressedImage, as received
    seq: int                        # position in the cache's stream, from 1
    received: float                 # time.monotonic() at arrival
    decode: Callable                # msg -> RGB uint8; raises preprocess.ImageError
    used: bool = False
    _rgb: Optional[np.ndarray] = field(default=None, repr=False)
    _error: Optional[ImageError] = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def header(self):
        return self.msg.header

    def age(self, now: Optional[float] = None) -> float:
        """Seconds since the frame arrived (our clock: camera stamps may be on another)."""
        return (time.monotonic() if now is None else now) - self.received

    def rgb(self) -> np.ndarray:
        """The frame as (H, W, 3) uint8 RGB, read-only, decoded on first use. Raises
        ImageError.

        Both outcomes are remembered: a frame is decoded (or found undecodable) once.
        """
        with self._lock:
            self.used = True
            if self._rgb is None and self._error is None:
                try:
                    self._rgb = self.decode(self.msg)
                    # Read-only: every user sees the frame as received, and the engine
                    # may remember its encoding (engine/bundled.py, BundledEngine._visual).
                    self._rgb.flags.writeable = False
                except ImageError as e:
                    self._error = e
            if self._error is not None:
                raise self._error
            return self._rgb


def _stamp_key(msg):
    s = msg.header.stamp
    return (s.sec, s.nanosec, msg.header.frame_id) if (s.sec or s.nanosec) else None


class FrameCache:
    """Latest frame + counts of messages received (all), dropped (replaced unused),
    duplicate and invalid."""

    def __init__(self):
        self._lock = threading.Lock()
        self._latest: Optional[Frame] = None
        self.received = self.dropped = self.duplicates = self.invalid = 0

    def put(self, msg, decode: Callable) -> Optional[Frame]:
        """Make `msg` the latest frame; returns it, or None when it repeats the latest.

        A repeat is the same stamped frame over a second transport (a driver publishing
        both `image` and `image/compressed`): keeping the first copy means it is not
        captioned twice. Unstamped frames (stamp 0) are never treated as repeats.
        """
        with self._lock:
            self.received += 1
            old = self._latest
            key = _stamp_key(msg)
            if old is not None and key is not None and key == _stamp_key(old.msg):
                self.duplicates += 1
                return None
            if old is not None and not old.used:
                self.dropped += 1
            self._latest = Frame(msg, self.received, time.monotonic(),
                                 lambda m: self._decode_counted(decode, m))
            return self._latest

    def _decode_counted(self, decode, msg):
        try:
            return decode(msg)
        except ImageError:   # passed the header checks, but the pixels are bad (e.g. JPEG)
            with self._lock:
                self.invalid += 1
            raise

    def count_invalid(self) -> int:
        """Count a message that failed validation on arrival; returns the invalid total."""
        with self._lock:
            self.received += 1
            self.invalid += 1
            return self.invalid

    def latest(self) -> Optional[Frame]:
        with self._lock:
            return self._latest

    def stats(self) -> dict:
        with self._lock:
            return {'received': self.received, 'dropped': self.dropped,
                    'duplicates': self.duplicates, 'invalid': self.invalid}
