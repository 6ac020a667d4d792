"""`vla-ros demo --sim`: the simulated robot in the composed demo, and a console that
gives it instructions.

SimConsole learns the arena's shapes from `sim_events`, then sends instructions about
them on `instruction` one at a time ("go to the red circle", ..., "turn towards ..."),
printing `action_status` and the sim's events; when an arena is done it calls `reset`
for the next one. Watch `/overview` (rqt_image_view) to see the robot drive.

`--world 3d` runs the MuJoCo arena (its robot camera) instead of the top-down one.
`--sim-policy expert` puts the privileged expert behind the VLA node's policy injection
point, which shows the whole loop (instruction -> cmd_vel -> sim -> camera) working
before the action head is trained; `model` (the default) is the real thing.
"""
import json
import sys

from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ..msg import ActionStatus
from ..sim.expert import expert_action
from ..control.instructions import ground, parse_instruction
from ..ros.params import OUTPUT_QOS
from ..ros.sim_node import EVENT_QOS, SimNode

FINAL_STATES = ('done', 'refused', 'timed_out', 'stopped')


class SimExpert:
    """Policy that ignores the frame and drives by the sim node's privileged state."""

    def __init__(self, sim: SimNode):
        self.sim = sim

    def __call__(self, frame, instruction: str):
        goal = parse_instruction(instruction)
        with self.sim.lock:   # the sim's thread steps (and resets) the world meanwhile
            world = self.sim.world
            return expert_action(world, goal, ground(goal, world))


class SimConsole(Node):
    """Sends instructions about the current arena's shapes and prints what happens."""

    def __init__(self, out=None, **kwargs):
        super().__init__('sim_console', **kwargs)
        self.out = out or sys.stdout
        self.counts = {'instructions': 0, 'done': 0, 'arenas': 0}
        self.pending, self.current = [], None
        self.instruction_pub = self.create_publisher(String, 'instruction', 10)
        self.create_subscription(String, 'sim_events', self._on_event, EVENT_QOS)
        self.create_subscription(ActionStatus, 'action_status', self._on_status, OUTPUT_QOS)
        self.reset = self.create_client(Trigger, 'reset')
        self.create_timer(1.0, self._tick)

    def _print(self, text: str):
        print(text, file=self.out, flush=True)

    def _on_event(self, msg: String):
        event = json.loads(msg.data)
        if event['event'] == 'reset':
            self.counts['arenas'] += 1
            shapes = event['shapes']
            self._print(f"[sim]      arena {event['seed']}: {', '.join(shapes)}")
            targets = event.get('targets', shapes)   # 3D: palette objects, not clutter
            self.pending = [f'go to the {targets[0]}', f'turn towards the {targets[-1]}',
                            f'go to the {targets[1]}']
            self.current = None
        else:
            what = event.get('shape', 'a wall')
            self._print(f"[sim]      t={event['time']:.1f}s {event['event']} {what}"
                        + (' (the target)' if event.get('target') else ''))

    def _on_status(self, msg: ActionStatus):
        reason = f' ({msg.reason})' if msg.reason else ''
        self._print(f'[action]   {msg.instruction!r}: {msg.state}{reason} after '
                    f'{msg.elapsed:.1f} s')
        if msg.instruction == self.current and msg.state in FINAL_STATES:
            self.counts['done'] += msg.state == 'done'
            self.current = None

    def _tick(self):
        if self.current is not None:
            return
        if self.pending:
            self.current = self.pending.pop(0)
            self.counts['instructions'] += 1
            self._print(f'[instruct] {self.current}')
            self.instruction_pub.publish(String(data=self.current))
        elif self.reset.service_is_ready():
            self.current = 'reset'   # until the reset event arrives
            self.reset.call_async(Trigger.Request())


def start_sim(vla, policy: str = 'model', out=None, world: str = '') -> list:
    """The sim node and the console; `policy` 'expert' replaces the VLA node's policy;
    `world` '2d' or '3d' overrides the sim's parameter (default: the parameters file's)."""
    sim = SimNode(parameter_overrides=[Parameter('world', value=world)] if world else [])
    if policy == 'expert':
        vla.actions.policy = SimExpert(sim)
    return [sim, SimConsole(out)]
