"""Velocity safety: what may reach `cmd_vel`, whatever the policy outputs (no ROS here).

- `safe_velocity`: a policy's (linear, angular) fractions -> (m/s, rad/s), clamped to the
  limits; NaN or infinite outputs give zero (both components: a broken output is not
  half trusted).
- `FrameWatchdog`: decides when the latest camera frame is too old to act on, early
  enough that the zero command goes out within `timeout` of the last frame (the same
  0.5 s default as ros2_controllers' diff_drive `cmd_vel_timeout`).
"""
import math
from dataclasses import dataclass
from typing import Optional

# Frames are declared stale this long before the timeout expires, so the zero command is
# published and delivered inside the bound even when a watchdog tick comes late.
STALE_MARGIN_S = 0.15
WATCHDOG_PERIOD_S = 0.02   # how often the node checks frame freshness


@dataclass(frozen=True)
class VelocityLimits:
    max_linear: float    # m/s: a policy's linear 1.0 means this, and nothing goes faster
    max_angular: float   # rad/s: the same for turning

    def __post_init__(self):
        assert self.max_linear >= 0 and self.max_angular >= 0, 'limits must be >= 0'


def safe_velocity(linear: float, angular: float, limits: VelocityLimits):
    """Policy output as fractions of the maximum speeds -> (linear m/s, angular rad/s)."""
    try:
        linear, angular = float(linear), float(angular)
    except (TypeError, ValueError):
        return 0.0, 0.0
    if not (math.isfinite(linear) and math.isfinite(angular)):
        return 0.0, 0.0
    clamp = lambda x: min(1.0, max(-1.0, x))  # noqa: E731
    return clamp(linear) * limits.max_linear, clamp(angular) * limits.max_angular


class FrameWatchdog:
    """Frame freshness with a guaranteed bound: zero velocity within `timeout` s of the
    last frame, provided the check runs at least every `check_period` s."""

    def __init__(self, timeout: float = 0.5, check_period: float = WATCHDOG_PERIOD_S):
        assert timeout > 0 and check_period > 0, 'timeout and check_period must be > 0'
        self.timeout, self.check_period = timeout, check_period

    @property
    def stale_after(self) -> float:
        """Age (s) from which a frame is not acted on: the timeout minus the time a check
        may come late and a safety margin, but never less than half the timeout."""
        return max(self.timeout / 2, self.timeout - self.check_period - STALE_MARGIN_S)

    def stale(self, age: Optional[float]) -> bool:
        """True when there is no frame (age None) or it is too old to act on."""
        return age is None or not math.isfinite(age) or age >= self.stale_after
