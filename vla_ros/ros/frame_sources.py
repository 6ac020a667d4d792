"""Where the image source node's frames come from (no ROS here; RGB uint8 out).

- `easy_vqa`: the easy-VQA test images bundled with the `easy-vqa` package (the default,
  so the demo needs no camera);
- `scenes`: the package's procedural scene generator (endless);
- `folder`: every image file in a directory, in name order;
- `video`: a video file;
- `camera`: an OpenCV capture device (index).
"""
import os

import cv2
import numpy as np

SOURCES = ('easy_vqa', 'scenes', 'folder', 'video', 'camera')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class SourceError(RuntimeError):
    """A frame source cannot be opened; the message names it and says why."""


class FrameSource:
    """Iterator-like: `read()` -> the next RGB uint8 frame, or None when exhausted."""

    name = 'source'

    def read(self):
        raise NotImplementedError

    def close(self):
        pass


class ListSource(FrameSource):
    """Frames from a list of arrays or of file paths (loaded lazily), optionally looping."""

    def __init__(self, items, name: str, loop: bool):
        if len(items) == 0:
            raise SourceError(f'{name}: no images')
        self.items, self.name, self.loop, self.index = items, name, loop, 0

    def read(self):
        while True:   # skips unreadable files; stops after one pass with no readable image
            if self.index >= len(self.items):
                if not self.loop:
                    return None
                self.index = 0
            item = self.items[self.index]
            self.index += 1
            if not isinstance(item, str):
                return item
            bgr = cv2.imread(item, cv2.IMREAD_COLOR)
            if bgr is not None:
                return np.ascontiguousarray(bgr[:, :, ::-1])
            self.items.pop(self.index - 1)   # never try an unreadable file twice
            self.index -= 1
            if not self.items:
                return None


class SceneSource(FrameSource):
    """Endless procedural scenes (vla_ros.data.scenes), reproducible from `seed`."""

    name = 'scenes'

    def __init__(self, seed: int, max_objects: int = 3, size: int = 64):
        from ..data.scenes import random_scene, render
        self._random_scene, self._render = random_scene, render
        self.rng, self.max_objects, self.size = np.random.default_rng(seed), max_objects, size

    def read(self):
        scene = self._random_scene(self.rng, self.max_objects, varied_background=True)
        return self._render(scene, self.size)


class CaptureSource(FrameSource):
    """An OpenCV VideoCapture: a video file (rewound when looping) or a camera device."""

    def __init__(self, target, name: str, loop: bool):
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise SourceError(f'{name}: OpenCV cannot open it')
        self.name, self.loop, self.is_file = name, loop, isinstance(target, str)

    def read(self):
        ok, bgr = self.cap.read()
        if not ok and self.is_file and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.cap.read()
        if not ok:
            return None
        return np.ascontiguousarray(bgr[:, :, ::-1])

    def close(self):
        self.cap.release()


def open_source(kind: str, path: str = '', camera_index: int = 0, loop: bool = True,
                seed: int = 0) -> FrameSource:
    """Open a frame source of `kind` (one of SOURCES). Raises SourceError."""
    if kind == 'easy_vqa':
        from ..data.easy_vqa import load_dir, package_split_dir
        try:
            split = load_dir(package_split_dir('test'), with_labels=False)
        except (RuntimeError, OSError, ValueError) as e:
            raise SourceError(f'easy_vqa: {e}') from e
        return ListSource(list(split.images), 'easy_vqa test images', loop)
    if kind == 'scenes':
        return SceneSource(seed)
    if kind == 'folder':
        if not os.path.isdir(path):
            raise SourceError(f'folder {path!r}: not a directory (set the `path` parameter)')
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(IMAGE_EXTENSIONS))
        return ListSource(files, f'folder {path!r}', loop)
    if kind == 'video':
        if not os.path.isfile(path):
            raise SourceError(f'video {path!r}: no such file (set the `path` parameter)')
        return CaptureSource(path, f'video {path!r}', loop)
    if kind == 'camera':
        return CaptureSource(camera_index, f'camera {camera_index}', loop=False)
    raise SourceError(f"unknown source {kind!r}; use one of {', '.join(SOURCES)}")
