"""The 3D arena: a MuJoCo world seen through a robot's forward perspective camera.

No ROS imports here. `scene.py` turns a layout into an MJCF model, `styles.py` draws
the per-episode look (domain randomisation, held-out styles), `world3d.py` is the
simulation (`World3D`) with the 2D arena's interface plus a camera.

Importing this package sets ``MUJOCO_GL=egl`` unless the caller already chose a backend:
headless machines render through EGL (Mesa's software rasteriser where there is no GPU;
``osmesa`` does not load on these machines). mujoco reads it when first imported;
rendering.py reads it again when it makes its GL context, so EGL is used even where
something imported mujoco before this package.
"""
import os

os.environ.setdefault('MUJOCO_GL', 'egl')
