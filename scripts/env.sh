# Source me from bash after scripts/setup.sh:   source scripts/env.sh
# Activates .venv and the colcon install tree so `python -c "from vla_ros.srv import VQA"`,
# the lib/vla_ros/ node launchers and pytest all work. Safe under `set -euo pipefail`.
# On a real ROS install, source /opt/ros/$ROS_DISTRO/setup.bash first.
# VLA_ROS_DISTRO=jazzy picks what `scripts/setup.sh --distro jazzy` made (.venv-jazzy,
# install-jazzy); unset or kilted, .venv and install/.

_vla_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${VLA_ROS_DISTRO:-kilted} in
  kilted) _vla_suffix= ;;
  jazzy) _vla_suffix=-$VLA_ROS_DISTRO ;;
  *) echo "vla_ros: VLA_ROS_DISTRO must be kilted or jazzy, got '$VLA_ROS_DISTRO'" >&2
     return 1 ;;
esac
if [[ ! -f $_vla_root/install$_vla_suffix/setup.bash ]]; then
  echo "vla_ros: $_vla_root/install$_vla_suffix/setup.bash missing;" \
    "run ${_vla_suffix:+VLA_ROS_DISTRO=$VLA_ROS_DISTRO }scripts/setup.sh first" >&2
  return 1
fi

# ROS/colcon setup files read unset variables (COLCON_TRACE, ...): relax nounset meanwhile.
_vla_nounset=; [[ $- == *u* ]] && _vla_nounset=1 && set +u
source "$_vla_root/.venv$_vla_suffix/bin/activate"
# Kept for scripts run from this shell (scripts/test.sh, demo.sh): they stay on this distro.
# (declare -g: a plain export is lost after `VLA_ROS_DISTRO=jazzy source scripts/env.sh`.)
if [[ -n $_vla_suffix ]]; then declare -gx VLA_ROS_DISTRO="$VLA_ROS_DISTRO"; fi
source "$_vla_root/install$_vla_suffix/setup.bash"
[[ -n $_vla_nounset ]] && set -u
# colcon leaves a trailing ':' when LD_LIBRARY_PATH was empty, which means "search the cwd".
[[ -n ${LD_LIBRARY_PATH:-} ]] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH%:}

# PyPI-wheel route: the ros-* wheels install an ament prefix into the venv itself. Put it
# behind install/ so ament_index (e.g. get_package_share_directory) finds rclpy, std_msgs...
if [[ -d $VIRTUAL_ENV/share/ament_index ]]; then
  if [[ :${AMENT_PREFIX_PATH:-}: != *:$VIRTUAL_ENV:* ]]; then
    export AMENT_PREFIX_PATH=${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$VIRTUAL_ENV
    # Lets a manual `colcon build --symlink-install` find the wheels' CMake configs too.
    export CMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH:+$CMAKE_PREFIX_PATH:}$VIRTUAL_ENV
  fi
  # Fast DDS is the only RMW the wheels bring; say so rather than rely on the default.
  export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
  # Dev/CI machines: keep DDS discovery on loopback (the default, SUBNET, multicasts to
  # 239.255.0.1 on eth0). Export ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET to talk to a robot.
  export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
fi
# Camera-sized frames between processes: Fast DDS's default shared-memory segment (512 KB)
# is smaller than a 640x480 frame, and best-effort readers lose most of the UDP-fragmented
# rest. config/fastdds_large_frames.xml explains; an existing choice is kept.
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_vla_root/config/fastdds_large_frames.xml}
unset _vla_root _vla_nounset _vla_suffix
