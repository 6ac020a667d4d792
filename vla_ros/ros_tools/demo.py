"""`vla-ros demo`: the launch file's nodes composed in one process, with a console.

Runs ImageSourceNode, VLANode and VQAServiceNode (parameters from config/vla_ros.yaml,
the file launch/demo.launch.py uses) on one multi-threaded executor, so the model is
loaded once, plus DemoConsole, which prints captions live and every few seconds asks a
question on the `question` topic and another through the `vqa` service.
"""
import itertools
import os
import sys
import time

from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from ..msg import Answer, Caption
from ..srv import VQA
from ..ros.image_source_node import ImageSourceNode
from ..ros.params import CLIENT_QOS, OUTPUT_QOS
from ..ros.runner import (init_or_explain, make_executor, shutting_down, spin_until_stopped,
                          StopSignals, STARTUP_ERRORS, tear_down)
from ..ros.vla_node import ManagedVLANode, VLANode
from ..ros.vqa_service_node import ManagedVQAServiceNode, VQAServiceNode

# easy-VQA wordings (the default source shows easy-VQA test images)
QUESTIONS = ('what shape is in the image?', 'what color is the shape?',
             'is there a circle?', 'is there a red shape in the image?',
             'what is the color of the shape?', 'does the image contain a triangle?')
# The 3D arena's wording (vla_ros/sim3d/language.py): what a 3D checkpoint was taught.
QUESTIONS_3D = ('how many objects are there?', 'what is the nearest object?',
                'is there a red ball?', 'what color is the cube?',
                'where is the pyramid?', 'which object is left of the yellow pyramid?')


def config_file() -> str:
    """config/vla_ros.yaml: the installed share/ copy, else the source tree's."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(os.path.join(get_package_share_directory('vla_ros'), 'config'))
    except Exception:  # noqa: BLE001 - not in an ament index (pip install)
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    candidates += [os.path.join(here, '..', '..', 'config'),
                   os.path.join(sys.prefix, 'share', 'vla_ros', 'config')]
    for c in candidates:
        path = os.path.join(c, 'vla_ros.yaml')
        if os.path.isfile(path):
            return os.path.normpath(path)
    raise FileNotFoundError('config/vla_ros.yaml not found in: ' + ', '.join(candidates))


def _stamp(header) -> str:
    return f'{header.stamp.sec % 1000:03d}.{header.stamp.nanosec // 1_000_000:03d}'


class DemoConsole(Node):
    """Prints captions and answers; asks a question on `question` and another on `vqa`
    every `period` seconds (the service call is asynchronous, so nothing here blocks)."""

    def __init__(self, period: int = 3, out=None, **kwargs):
        super().__init__('demo_console', **kwargs)
        self.out = out or sys.stdout
        self.counts = {'captions': 0, 'answers': 0, 'vqa': 0}
        self.questions = itertools.cycle(QUESTIONS)
        self.create_subscription(Caption, 'caption', self._on_caption, OUTPUT_QOS)
        self.create_subscription(Answer, 'answer', self._on_answer, OUTPUT_QOS)
        self.question_pub = self.create_publisher(String, 'question', 10)
        self.vqa = self.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
        # First question after 2 s (frames have arrived by then), then every `period` s.
        self.period, self.seconds, self.next_question = period, 0, 2
        self.create_timer(1.0, self._tick)

    def _print(self, text: str):
        # one write per line: callbacks print from several executor threads at once
        self.out.write(text + '\n')
        self.out.flush()

    def _on_caption(self, msg):
        self.counts['captions'] += 1
        self._print(f'[caption]  frame {_stamp(msg.header)}  "{msg.caption}"  '
                    f'(confidence {msg.confidence:.2f}, {msg.latency_ms:.1f} ms)')

    def _on_answer(self, msg):
        self.counts['answers'] += 1
        reply = msg.answer if msg.success else f'error: {msg.error}'
        self._print(f'[answer]   frame {_stamp(msg.header)}  {msg.question} -> {reply}  '
                    f'(confidence {msg.confidence:.2f}, {msg.latency_ms:.1f} ms)')

    def _tick(self):
        self.seconds += 1
        if self.seconds >= self.next_question:
            self.next_question += self.period
            self._ask()

    def _ask(self):
        question = next(self.questions)
        self._print(f'[question] {question}')
        self.question_pub.publish(String(data=question))
        if self.vqa.service_is_ready():
            service_question = next(self.questions)
            future = self.vqa.call_async(VQA.Request(question=service_question))
            future.add_done_callback(lambda f: self._on_vqa(service_question, f))

    def _on_vqa(self, question, future):
        self.counts['vqa'] += 1
        r = future.result()
        reply = r.answer if r.success else f'error: {r.error}'
        self._print(f'[vqa]      frame {r.frame_stamp.sec % 1000:03d}.'
                    f'{r.frame_stamp.nanosec // 1_000_000:03d}  {question} -> {reply}  '
                    f'(confidence {r.confidence:.2f}, {r.latency_ms:.1f} ms)')


def start_web(model_params):
    """The operator page, or None (with the reason printed) when its port is taken: the
    demo is still useful without it."""
    from rclpy.exceptions import ParameterException
    from ..ros.web_node import WebNode
    try:
        web = WebNode(parameter_overrides=model_params)
    except ParameterException as e:
        print(f'vla_ros demo: no operator page: {e}', file=sys.stderr)
        return None
    print(f"vla_ros demo: operator page on http://{web.p['bind_address']}:{web.port}/",
          flush=True)
    return web


def run_demo(duration: float = 0.0, checkpoint: str = '', source: str = '',
             params_file: str = '', question_period: int = 3, sim: bool = False,
             sim_policy: str = 'model', managed: bool = True, world: str = '') -> int:
    """Run the demo until Ctrl-C or for `duration` seconds (0 = until Ctrl-C); exit code.

    sim: the simulated robot is the camera and gets instructions (see sim_demo.py);
    world: its arena, '2d' or '3d' (default: the parameters file's `world`).
    managed: the lifecycle versions of the VLA and VQA nodes, brought to active (as the
    launch file does); False: the plain nodes.
    """
    try:
        params_file = params_file or config_file()
    except FileNotFoundError as e:
        print(f'vla_ros demo: cannot start: {e}', file=sys.stderr)
        return 1
    stop = StopSignals()
    if not init_or_explain(['--ros-args', '--params-file', params_file], 'demo'):
        return 1
    model = [Parameter('checkpoint', value=checkpoint)] if checkpoint else []
    nodes, executor = [], None
    try:
        if not sim:
            nodes.append(ImageSourceNode(
                parameter_overrides=[Parameter('source', value=source)] if source else []))
        vla_class, vqa_class = ((ManagedVLANode, ManagedVQAServiceNode) if managed
                                else (VLANode, VQAServiceNode))
        vla = vla_class(parameter_overrides=model)
        nodes.append(vla)
        nodes.append(vqa_class(parameter_overrides=model))
        console = DemoConsole(question_period)
        nodes.append(console)
        if sim:
            from .sim_demo import start_sim
            sim_nodes = start_sim(vla, sim_policy, world=world)
            nodes += sim_nodes
            if sim_nodes[0].is_3d:   # ask in the 3D arena's words
                console.questions = itertools.cycle(QUESTIONS_3D)
        web = start_web(model)
        if web is not None:
            nodes.append(web)
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        print(f'vla_ros demo: parameters from {params_file}; '
              + (f'{duration:g} s' if duration else 'Ctrl-C to stop'), flush=True)
        start = time.monotonic()
        spin_until_stopped(executor, stop, duration)
        executor.shutdown()   # before the summary: lets in-flight callbacks print first
        executor = None
        counts = ', '.join(f'{n} {k}' for node in nodes if hasattr(node, 'counts')
                           for k, n in node.counts.items())
        print(f'vla_ros demo: {counts} in {time.monotonic() - start:.1f} s', flush=True)
    except STARTUP_ERRORS as e:
        print(f'vla_ros demo: cannot start: {e}', file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - e.g. the context shut down while starting
        if not shutting_down(e):
            raise
    finally:
        tear_down(stop, executor, nodes)
    return 0
