#!/usr/bin/env bash
# Regenerate the README's pictures with the project's own commands:
#   docs/attention.png  `vla-ros explain` on an easy-VQA test image
#   docs/web.png        the operator page in headless Chromium (test/test_web.py)
#   docs/sim3d_episode.png  what the robot sees in the 3D arena (vla_ros/sim3d/episode_strip.py)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
python - <<'PY'
import cv2
from vla_ros.data.easy_vqa import load_split
cv2.imwrite('docs/easy_vqa_test_4.png', load_split('test').images[4][..., ::-1])
PY
vla-ros explain --image docs/easy_vqa_test_4.png --question 'what shape is present?' \
  --out docs/attention.png
VLA_ROS_SCREENSHOT=$PWD/docs/web.png python -m pytest -q test/test_web.py -k chromium
python -m vla_ros.sim3d.episode_strip --out docs/sim3d_episode.png
echo "wrote docs/attention.png docs/web.png docs/sim3d_episode.png"
