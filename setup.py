"""pip install route: the pure-Python library and the `vla-ros` CLI, with the bundled model.

ROS users build with colcon instead (CMakeLists.txt); both routes install the same
`vla_ros` Python package.
"""
import glob
import os

from setuptools import find_packages, setup

setup(
    name='vla_ros',
    version='0.1.0',
    description='See, talk about and act on what a robot camera shows, on a CPU (ROS 2).',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['vla_ros', 'vla_ros.*']),
    install_requires=['numpy', 'opencv-python-headless', 'pyyaml', 'safetensors', 'torch'],
    extras_require={'train': ['easy-vqa', 'tqdm', 'matplotlib'],
                    'test': ['pytest', 'hypothesis'],
                    # the onnxruntime backend and `vla-ros export`; a torch-free install:
                    # pip install --no-deps -e . && pip install -r requirements-runtime.txt
                    'onnx': ['onnxruntime', 'onnx']},
    data_files=[('share/vla_ros/models/vla_tiny',
                 [f for f in glob.glob('models/vla_tiny/*') if os.path.isfile(f)]),
                ('share/vla_ros/models/vla_tiny/onnx', glob.glob('models/vla_tiny/onnx/*')),
                ('share/vla_ros/config', glob.glob('config/*.yaml') + glob.glob('config/*.xml'))],
    entry_points={'console_scripts': ['vla-ros = vla_ros.cli:main']},
)
