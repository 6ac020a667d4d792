"""vla_ros: see, talk about and act on what a robot camera shows, on a CPU."""
# Let the source tree and a colcon install (which adds the generated msg/srv) share the
# package name, so `from vla_ros.srv import VQA` works from the repository root too.
import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)
