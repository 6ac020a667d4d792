"""What the nodes that run the model share: a constructor that declares `PARAMS`, then
`start_up()`: load the model and serve at once (managed.py's Managed overrides it to wait
for the lifecycle transitions instead). Subclasses provide `serve()` (create their
subscriptions, publishers, services, actions, timers) and `quiet(reason)` (stop what
runs on its own threads); destroying the node quiets it first."""
import time

from rclpy.action import ActionServer
from rclpy.node import Node

from .params import declare_parameters, param_values
from .shared_engine import ENGINE_PARAMS, engine_from_params


class ModelNode(Node):
    NODE_NAME = ''
    PARAMS = ENGINE_PARAMS
    engine = None          # until load_model

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        declare_parameters(self, self.PARAMS)
        self.start_up()

    def start_up(self):
        self.load_model()
        self.serve()

    def load_model(self):
        start = time.perf_counter()
        self.engine = engine_from_params(param_values(self, ENGINE_PARAMS))
        self.get_logger().info(f'model {self.engine.checkpoint} ({self.engine.backend}) '
                               f'loaded in {time.perf_counter() - start:.1f} s')

    def serve(self):
        raise NotImplementedError

    def quiet(self, reason: str):
        """Stop what runs on its own and end running goals with `reason` (their action
        servers stay, rejecting goals: whoever destroys the node's entities destroys them,
        so a managed node can still send those results, managed.py)."""
        raise NotImplementedError

    def destroy_node(self):
        self.quiet('node destroyed')
        for waitable in list(self.waitables):   # Node.destroy_node leaves action servers
            if isinstance(waitable, ActionServer):
                waitable.destroy()
        return super().destroy_node()
