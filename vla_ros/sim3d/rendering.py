"""Offscreen MuJoCo rendering that shares one GL context per process.

`mujoco.Renderer` makes a fresh GL context per renderer, and on Mesa's software
rasteriser the first render context in a fresh GL context costs 0.3-1.4 s (shader
set-up), paid again by every episode's world. Here all worlds share one GL context
(made on first use, kept for the process) and each world owns only its MuJoCo render
context (textures, meshes: ~15 ms to make), which renders any image size up to the
model's offscreen buffer. A lock serialises GL use, and the context is made current
for each call and released after, so any thread may render.

Images come back as MuJoCo's Renderer gives them: row 0 at the top, RGB uint8.
"""
import os

os.environ.setdefault('MUJOCO_GL', 'egl')   # before `import mujoco`: headless EGL rendering

import contextlib  # noqa: E402
import platform  # noqa: E402
import threading  # noqa: E402
from typing import Optional  # noqa: E402

import mujoco  # noqa: E402
from mujoco.rendering.classic import gl_context  # noqa: E402
import numpy as np  # noqa: E402

_lock = threading.RLock()
_context = None   # the process's GL context, made on first use


def _context_class():
    """The GL context to render with: EGL when MUJOCO_GL says so *now* (mujoco picks its
    backend when first imported, possibly before vla_ros.sim3d set MUJOCO_GL), else
    whatever mujoco picked."""
    if os.environ.get('MUJOCO_GL', '').lower() == 'egl' and platform.system() == 'Linux':
        from mujoco.egl import GLContext
        return GLContext
    cls = getattr(gl_context, 'GLContext', None)
    if cls is None:
        raise RuntimeError(f"MuJoCo has no OpenGL backend (MUJOCO_GL="
                           f"{os.environ.get('MUJOCO_GL')!r}); use MUJOCO_GL=egl")
    return cls


def _current():
    """Context manager: the shared GL context is current inside, under the lock."""
    global _context
    stack = contextlib.ExitStack()
    stack.enter_context(_lock)
    try:
        if _context is None:
            _context = _context_class()(16, 16)   # renders go to MuJoCo's own buffer
        if hasattr(_context, 'as_current'):
            stack.enter_context(_context.as_current())
        else:
            _context.make_current()
    except BaseException:
        stack.close()
        raise
    return stack


class SceneRenderer:
    """Renders one model's cameras into numpy images (RGB or per-pixel geom ids)."""

    def __init__(self, model: mujoco.MjModel, max_geom: int = 500):
        self.model = model
        self._scene = mujoco.MjvScene(model, maxgeom=max_geom)
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._limit = (model.vis.global_.offwidth, model.vis.global_.offheight)
        with _current():
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)

    def render(self, data: mujoco.MjData, camera: str, width: int, height: int,
               option: Optional[mujoco.MjvOption] = None,
               segmentation: bool = False) -> np.ndarray:
        """(height, width, 3) uint8 RGB from the named camera; with segmentation=True,
        (height, width) int32 geom ids instead (-1 where no geom is seen)."""
        if self._context is None:
            raise RuntimeError('render called after close()')
        if not (0 < width <= self._limit[0] and 0 < height <= self._limit[1]):
            raise ValueError(f'image size {width}x{height} outside 1..{self._limit[0]} x '
                             f'1..{self._limit[1]} (the model\'s offscreen buffer)')
        self._camera.fixedcamid = self.model.camera(camera).id
        mujoco.mjv_updateScene(self.model, data, option or mujoco.MjvOption(), None,
                               self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        flags = self._scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segmentation
        flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segmentation
        rect = mujoco.MjrRect(0, 0, width, height)
        rgb = np.empty((height, width, 3), np.uint8)
        with _current():
            # Contexts share GL: bind this one's framebuffer, another world's may be bound.
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
            mujoco.mjr_render(rect, self._scene, self._context)
            mujoco.mjr_readPixels(rgb, None, rect, self._context)
        rgb = rgb[::-1]   # OpenGL's rows run bottom-up
        if not segmentation:
            return np.ascontiguousarray(rgb)
        # Segmentation colour = segid + 1 of a scene geom (0: background).
        seg = rgb[..., 0].astype(np.int32) | (rgb[..., 1].astype(np.int32) << 8) \
            | (rgb[..., 2].astype(np.int32) << 16)
        lut = np.full(self._scene.ngeom + 1, -1, np.int32)
        for g in self._scene.geoms[:self._scene.ngeom]:
            if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                lut[g.segid + 1] = g.objid
        return lut[np.clip(seg, 0, self._scene.ngeom)]

    def close(self):
        """Free the render context (GL textures, buffers); safe to call twice."""
        if self._context is not None:
            with _current():
                self._context.free()
            self._context = None

    def __del__(self):
        try:
            self.close()
        except Exception:   # interpreter shutdown: GL may already be gone
            pass
