#!/usr/bin/env bash
# CI check of the README's route for robots without torch, end to end on a fresh clone:
# `bash scripts/setup.sh --runtime onnx`, torch not importable, then the installed
# vqa_service node (backend: auto, as shipped) answers one real /vqa call over DDS.
#   scripts/check_robot_install.sh [SOURCE [REF]]
# SOURCE: the git repository to clone (default: the one this script is in); REF: the commit
# to check out (default: SOURCE's HEAD). Only committed files are checked. Exits non-zero
# on any failure; the temp clone (and its .venv) is removed either way.
set -euo pipefail
SRC=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
REV=$(git -C "$SRC" rev-parse --verify "${2:-HEAD}^{commit}")
TIMEOUT_S=60                            # node start-up, the /vqa call, node shutdown: each
start=$SECONDS
tmp=$(mktemp -d)
node_pid=
cleanup() { [[ -n $node_pid ]] && kill -KILL "$node_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
say() { printf '[robot-check] %s\n' "$*"; }
fail() {
  say "FAIL: $*" >&2
  [[ -s $tmp/node.log ]] && { say "vqa_service log:" >&2; tail -n 30 "$tmp/node.log" >&2; }
  exit 1
}
# Poll (at most TIMEOUT_S) until COMMAND succeeds; fail if the node dies first.
wait_for() {  # wait_for WHAT COMMAND...
  local what=$1 deadline=$((SECONDS + TIMEOUT_S)); shift
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what: not within $TIMEOUT_S s"
    sleep 0.2
  done
}

say "cloning $SRC at ${REV:0:12} into $tmp"
git clone -q --no-checkout "$SRC" "$tmp/repo"
git -C "$tmp/repo" checkout -q "$REV"
cd "$tmp/repo"
# A clean shell, as a user on a robot has: nothing from another venv or colcon workspace.
unset VIRTUAL_ENV PYTHONPATH AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH

bash scripts/setup.sh --runtime onnx || fail "scripts/setup.sh --runtime onnx"
source scripts/env.sh
python -c 'import torch' 2>/dev/null && fail "torch is importable in the --runtime onnx venv"

export ROS_DOMAIN_ID=$((RANDOM % 100 + 1)) ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# The vla_ros prefix env.sh put first: install/ (install-jazzy/ with VLA_ROS_DISTRO=jazzy).
"${AMENT_PREFIX_PATH%%:*}/lib/vla_ros/vqa_service" --ros-args >"$tmp/node.log" 2>&1 &
node_pid=$!
node_serving() { kill -0 "$node_pid" 2>/dev/null || fail "vqa_service exited"
                 grep -q 'serving /vqa' "$tmp/node.log"; }
wait_for "vqa_service serving" node_serving

# One /vqa call with an easy-VQA test image in the request; the node's /diagnostics must
# name its backend onnxruntime.
result=$(timeout "$TIMEOUT_S" python - <<'EOF'
import sys
import time

import cv2
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from easy_vqa import get_test_image_paths, get_test_questions

from vla_ros.ros.image_conversion import rgb_to_image
from vla_ros.srv import VQA

questions, answers, image_ids = get_test_questions()
bgr = cv2.imread(get_test_image_paths()[image_ids[0]])
rclpy.init()
node = rclpy.create_node('robot_install_check')
backends = []
node.create_subscription(DiagnosticArray, '/diagnostics', lambda msg: backends.extend(
    kv.value for s in msg.status if 'vqa_service' in s.name
    for kv in s.values if kv.key == 'backend'), 10)
client = node.create_client(VQA, 'vqa')
if not client.wait_for_service(timeout_sec=30):
    sys.exit('/vqa not discovered within 30 s')
request = VQA.Request(question=questions[0],
                      image=rgb_to_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
future = client.call_async(request)
rclpy.spin_until_future_complete(node, future, timeout_sec=30)
response = future.result()
if response is None:
    sys.exit('no /vqa response within 30 s')
if not response.success or not response.answer.strip():
    sys.exit(f'/vqa failed: success={response.success} answer={response.answer!r} '
             f'error={response.error!r}')
deadline = time.monotonic() + 10        # diagnostics are published once a second
while not backends and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
if backends[-1:] != ['onnxruntime']:
    sys.exit(f'vqa_service backend: {backends[-1:] or "no diagnostics within 10 s"}')
print(f'"{questions[0]}" -> "{response.answer}" (expected "{answers[0]}"), '
      f'{response.latency_ms:.1f} ms, backend onnxruntime')
EOF
) || fail "/vqa call"

kill -INT "$node_pid"
wait_for "vqa_service stopping on SIGINT" eval '! kill -0 "$node_pid" 2>/dev/null'
wait "$node_pid" && rc=0 || rc=$?
node_pid=
((rc == 0)) || fail "vqa_service exited $rc on SIGINT"
say "OK in $((SECONDS - start)) s: fresh clone, setup.sh --runtime onnx, no torch, /vqa: $result"
