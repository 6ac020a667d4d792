"""Managed (lifecycle) versions of the nodes that run the model: `managed_vla_node` and
`managed_vqa_service`, as nav2, yolo_ros and llama_ros manage theirs.

    unconfigured --configure--> inactive --activate--> active
      configure   loads the model (a bad model directory fails the transition, with the
                  reason logged; the node stays unconfigured)
      activate    creates the subscriptions, publishers, services, actions and timers
      deactivate  publishes zero velocity, ends running goals, destroys all of those: the
                  node goes quiet (its lifecycle services and parameters stay). Action
                  servers stay until the next activate or the node's end, rejecting
                  goals, so a goal that was running still gets its result (outcome
                  `stopped`, reason "node deactivated"), as nav2's servers do
      cleanup     frees the model (the last node in the process that used it lets go)
      shutdown    from any state: everything above that was made is undone (a running
                  goal's result still goes out, as at deactivate)

`autostart` (default true) configures and activates the node as it starts, so it serves
at once like the plain node, and a model that cannot load ends the process with exit code
1 and one line, as the plain node's does. With `autostart:=false` the node waits for a
lifecycle manager (`ros2 lifecycle set /vla_node configure`, then `activate`).

A node class to be managed is a ModelNode (model_node.py): `load_model()` (sets
`engine`), `serve()` (creates its entities), `quiet(reason)` (stops what runs on its own:
the action loop and its watchdog thread, running goals) and `PARAMS`. `Managed` goes
first in the bases, and PARAMS gains MANAGED_PARAMS: `class M(Managed, VLANode,
LifecycleNode)`, so the node's constructor declares the parameters and then calls
`start_up()`, which here runs the transitions (or waits for them) instead of serving.
"""
from rclpy.action import ActionServer
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from .params import Param
from .runner import STARTUP_ERRORS
from .shared_engine import release_engine

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE

MANAGED_PARAMS = (
    Param('autostart', True, 'managed nodes: configure and activate at start-up (false: '
          'wait for a lifecycle manager)'),
)

# Node.<kind> lists and how to destroy one of each.
_KINDS = (('publishers', 'destroy_publisher'), ('subscriptions', 'destroy_subscription'),
          ('services', 'destroy_service'), ('clients', 'destroy_client'),
          ('timers', 'destroy_timer'), ('guards', 'destroy_guard_condition'))


class Entities:
    """What `node` creates between this object's construction and `destroy()`: the
    ROS entities, action servers (waitables) and parameter callbacks, undone together."""

    def __init__(self, node):
        self.node = node
        self.before = self._snapshot()

    def _snapshot(self) -> dict:
        n = self.node
        lists = {kind: list(getattr(n, kind)) for kind, _destroy in _KINDS}
        lists['waitables'] = list(n.waitables)
        lists['callbacks'] = list(n._post_set_parameters_callbacks)   # no public getter
        return lists

    def destroy(self, keep_action_servers: bool = False) -> list:
        """Undo; returns the action servers kept (`keep_action_servers`) for the caller to
        destroy later."""
        now = self._snapshot()
        new = {kind: [x for x in items if not any(x is y for y in self.before[kind])]
               for kind, items in now.items()}
        for cb in new['callbacks']:
            self.node.remove_post_set_parameters_callback(cb)
        kept = []
        for waitable in new['waitables']:       # action servers: handles and goals
            if keep_action_servers and isinstance(waitable, ActionServer):
                kept.append(waitable)
            elif hasattr(waitable, 'destroy'):
                waitable.destroy()
            else:
                self.node.remove_waitable(waitable)
        for kind, destroy in _KINDS:
            for entity in new[kind]:
                getattr(self.node, destroy)(entity)
        return kept


class Managed:
    """The lifecycle transitions for a node class (see the module doc)."""
    _entities = None
    _configure_error = None
    _autostarting = False
    _lingering = ()            # action servers kept after deactivate (see the module doc)

    def start_up(self):
        if not self.get_parameter('autostart').value:
            self.get_logger().info('unconfigured; waiting for configure (autostart is off)')
            return
        self._autostarting = True     # a failed configure is then the process's one line
        if self.trigger_configure() != SUCCESS:
            raise self._configure_error or RuntimeError('configure failed')
        if self.trigger_activate() != SUCCESS:
            raise RuntimeError('activate failed; see the log')

    # -- transitions ---------------------------------------------------------------------------
    def on_configure(self, state):
        try:
            self.load_model()
        except STARTUP_ERRORS as e:
            self._configure_error = e
            if not self._autostarting:
                self.get_logger().error(f'configure failed: {e}')
            return FAILURE
        return SUCCESS

    def on_activate(self, state):
        self._retire_action_servers()
        entities = Entities(self)
        try:
            self.serve()
        except Exception as e:  # noqa: BLE001 - undo what was made; the node stays inactive
            self.get_logger().error(f'activate failed: {type(e).__name__}: {e}')
            self._unserve(entities, 'activate failed')
            return FAILURE
        self._entities = entities
        return super().on_activate(state)

    def on_deactivate(self, state):
        self._unserve(self._entities, 'node deactivated', keep_action_servers=True)
        self._entities = None
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._retire_action_servers()     # they hold the model through their goals' loop
        self._release()
        return SUCCESS

    def on_shutdown(self, state):
        self._undo_all('node shut down', keep_action_servers=True)
        return SUCCESS

    def on_error(self, state):
        self._undo_all('lifecycle error', keep_action_servers=True)
        return SUCCESS

    def destroy_node(self):
        self._undo_all('node destroyed')
        self._retire_action_servers()
        return super().destroy_node()

    # -- helpers -----------------------------------------------------------------------------
    def _unserve(self, entities, reason: str, keep_action_servers: bool = False):
        self.quiet(reason)
        if entities is not None:
            kept = entities.destroy(keep_action_servers)
            self._lingering = [*self._lingering, *kept]

    def _retire_action_servers(self):
        servers, self._lingering = self._lingering, ()
        for server in servers:
            server.destroy()

    def _release(self):
        if self.engine is not None:
            release_engine(self.engine)
            self.engine = None

    def _undo_all(self, reason: str, keep_action_servers: bool = False):
        if self._entities is not None:
            self._unserve(self._entities, reason, keep_action_servers)
            self._entities = None
        self._release()


__all__ = ['Entities', 'LifecycleNode', 'Managed', 'MANAGED_PARAMS']
