"""flake8 at ROS 2's settings (setup.cfg: 99 columns), like ament_flake8."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_flake8():
    pytest.importorskip('flake8')
    result = subprocess.run([sys.executable, '-m', 'flake8', 'vla_ros', 'test', 'launch',
                             'setup.py'], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
