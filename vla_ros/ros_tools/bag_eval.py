"""Replay a bag through the real nodes and score what they say: `vla-ros eval-bag`.

One process, real DDS. VLANode and VQAServiceNode (sharing one model) run in a private
namespace, so a live robot on the same ROS domain neither feeds them nor hears them.
BagPlayer publishes the bag's camera topic into their `image` (or `image/compressed`)
and its question topic into `question`, with the recorded timing. EvalProbe records
every caption and answer and, for each question it hears, asks the same question
through the `vqa` service (about the service node's latest frame). vla_ros.bag.scoring
then checks answers against the expected ones, headers against the published frames,
and counts frames that were never captioned.

Timing is the bag's by default, as on a robot: a busy node answers about a later frame
or skips frames, and the report says so. With `sync`, each frame is re-sent until both
nodes hold it and its caption is out, and each question waits for both answers, before
the bag goes on (then the bag's clock catches up). Results then no longer depend on CPU
load, which regression tests need (2 shared cores stall a node for 100s of ms).

ReplayRig keeps the nodes up between replays (tests replay several bags, and measure
memory across repeated fast replays); evaluate_bag() is the one-shot version.
"""
import os
import threading
import time
from itertools import count
from typing import Optional

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from ..bag.bag_io import bag_topics, choose_topics, header_of, make_typestore, read_messages
from ..bag.fixtures import load_expected
from ..bag.scoring import score_replay
from ..msg import Answer, Caption
from ..srv import VQA
from ..ros.params import CLIENT_QOS, OUTPUT_QOS
from ..ros.runner import make_executor
from ..ros.vla_node import VLANode
from ..ros.vqa_service_node import VQAServiceNode
from .bag_player import BagPlayer
from .bag_recorder import BagRecorder

DEFAULT_CAPTION_RATE = 20.0   # Hz: above a 10 Hz camera, so every frame can be captioned
MATCH_TIMEOUT_S = 20.0        # discovery of the player, nodes and probe
QUIET_S = 2.0                 # after playback: done when nothing arrived for this long...
SETTLE_TIMEOUT_S = 30.0       # ...or at the latest after this
SYNC_TIMEOUT_S = 20.0         # sync: the longest wait for a frame to land or an answer
RESEND_S = 0.25               # sync: re-send a frame not yet cached after this long
_rigs = count(1)


def _stamp(header) -> list:
    return [header.stamp.sec, header.stamp.nanosec]


def _wait(condition, what: str, timeout: float = MATCH_TIMEOUT_S):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f'timed out after {timeout:g} s waiting for {what}')
        time.sleep(0.02)


class EvalProbe(Node):
    """Records captions and answers; asks every question it hears through `vqa` too."""

    def __init__(self, **kwargs):
        super().__init__('eval_probe', **kwargs)
        self.caption_sub = self.create_subscription(Caption, 'caption', self._on_caption,
                                                    OUTPUT_QOS)
        self.answer_sub = self.create_subscription(Answer, 'answer', self._on_answer,
                                                   OUTPUT_QOS)
        self.question_sub = self.create_subscription(String, 'question', self._on_question,
                                                     100)
        self.vqa = self.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
        self.reset()

    def reset(self):
        # Service requests still unanswered from a previous replay (a flooded service
        # drops requests beyond its queue depth) must not be credited to this one.
        for future in getattr(self, 'pending', ()):
            self.vqa.remove_pending_request(future)
        self.pending = set()
        self.captions, self.answers, self.vqa_replies = [], [], []
        self.questions_heard = 0
        self.last_output = time.monotonic()

    def _on_caption(self, msg):
        self.captions.append({'stamp': _stamp(msg.header), 'frame_id': msg.header.frame_id,
                              'caption': msg.caption})
        self.last_output = time.monotonic()

    def _on_answer(self, msg):
        self.answers.append({'stamp': _stamp(msg.header), 'frame_id': msg.header.frame_id,
                             'question': msg.question, 'answer': msg.answer,
                             'success': msg.success, 'error': msg.error})
        self.last_output = time.monotonic()

    def _on_question(self, msg):
        index = self.questions_heard
        self.questions_heard += 1
        future = self.vqa.call_async(VQA.Request(question=msg.data))
        self.pending.add(future)
        future.add_done_callback(lambda f: self._on_reply(index, f))

    def _on_reply(self, index, future):
        if future not in self.pending:
            return   # from an earlier replay
        self.pending.discard(future)
        r = future.result()
        stamp = [r.frame_stamp.sec, r.frame_stamp.nanosec]
        self.vqa_replies.append({'index': index, 'stamp': stamp, 'answer': r.answer,
                                 'success': r.success, 'error': r.error})
        self.last_output = time.monotonic()


def bag_inputs(bag, image_topic=None, question_topic=None, expected=None):
    """(camera topic, question topic or None, frames, questions) for scoring a replay.

    Frames are read from the bag (header of every camera message); questions too, with
    their expected answers from `expected` (a file; default <bag>/expected_answers.json
    if present) checked against the bag's questions, in order.
    """
    default = os.path.join(str(bag), 'expected_answers.json')
    if expected is None and os.path.isfile(default):
        expected = default
    spec = load_expected(expected) if expected else {}
    image, question = choose_topics(bag_topics(bag), image_topic or spec.get('image_topic'),
                                    question_topic or spec.get('question_topic'))
    typestore = make_typestore()
    image_ids = {tuple(f['stamp']) + (f['frame_id'],): f.get('image_id')
                 for f in spec.get('frames', [])}
    frames, asked = [], []
    topics = [image.topic] + ([question.topic] if question else [])
    for msg in read_messages(bag, topics):
        if msg.topic == image.topic:
            sec, nsec, frame_id = header_of(typestore, msg)
            frames.append({'stamp': [sec, nsec], 'frame_id': frame_id,
                           'image_id': image_ids.get((sec, nsec, frame_id))})
        else:
            asked.append(typestore.deserialize_cdr(msg.data, msg.msgtype).data)
    wanted = spec.get('questions')
    if wanted is not None:
        if [q['question'] for q in wanted] != asked:
            raise ValueError(f'{expected}: its {len(wanted)} questions are not the '
                             f'{len(asked)} the bag asks on {question.topic if question else "-"}'
                             ' (same texts, same order)')
        questions = [{'question': q['question'], 'answer': q['answer'],
                      'image_id': q.get('image_id')} for q in wanted]
    else:
        questions = [{'question': q, 'answer': None} for q in asked]
    return image, question, frames, questions


class ReplayRig:
    """VLANode + VQAServiceNode + EvalProbe, each spun by its own executor thread (as
their own processes would be); replay() bags in.

    Needs rclpy initialised. Use as a context manager, or call close().
    """

    def __init__(self, checkpoint: str = '', threads: int = 1,
                 caption_rate: float = DEFAULT_CAPTION_RATE, namespace: Optional[str] = None):
        self.namespace = namespace or f'/vla_eval_{os.getpid()}_{next(_rigs)}'
        self._threads = []
        model = [Parameter('checkpoint', value=checkpoint), Parameter('threads', value=threads)]
        ns = {'namespace': self.namespace}
        self.nodes = []
        try:
            self.vla = self._add(VLANode(parameter_overrides=model + [
                Parameter('caption_rate', value=float(caption_rate))], **ns))
            self.vqa = self._add(VQAServiceNode(parameter_overrides=model, **ns))
            self.probe = self._add(EvalProbe(**ns))
        except Exception:
            self._destroy_nodes()
            raise
        self.checkpoint = self.vla.engine.checkpoint
        self._stop = threading.Event()
        self.executors = []
        for node in self.nodes:
            executor = make_executor()
            executor.add_node(node)
            self.executors.append(executor)
            self._threads.append(threading.Thread(target=self._spin, args=(executor,),
                                                  name=f'rig_{node.get_name()}', daemon=True))
        self.executor = self.executors[-1]   # the probe's: recorders join it
        for thread in self._threads:
            thread.start()

    def _add(self, node):
        self.nodes.append(node)
        return node

    def _spin(self, executor):
        while not self._stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)

    def replay(self, bag, rate: float = 1.0, image_topic=None, question_topic=None,
               expected=None, record=None, storage: str = 'mcap', golden=None,
               progress: bool = False, sync: bool = False, inputs=None) -> dict:
        """Play `bag` into the nodes at `rate` x real time; returns the scored report.

        `record`: also write the nodes' captions and answers to this new bag.
        `golden`: {str(image_id): caption} to compare captions with (fixture bags).
        `sync`: wait for every frame and answer before going on (see the module doc).
        `inputs`: bag_inputs(bag, ...) if already read.
        """
        start = time.monotonic()
        image, question, frames, questions = inputs or bag_inputs(
            bag, image_topic, question_topic, expected)
        camera = 'image/compressed' if image.msgtype.endswith('CompressedImage') else 'image'
        remap = {image.topic: camera}
        if question:
            remap[question.topic] = 'question'
        self.probe.reset()
        before = self.vla.camera.cache.stats()
        player = BagPlayer(bag, topics=list(remap), remap=remap, namespace=self.namespace)
        recorder = None
        if record:
            recorder = BagRecorder(
                record, storage=storage, namespace=self.namespace,
                types={'caption': 'vla_ros/msg/Caption', 'answer': 'vla_ros/msg/Answer'},
                rename={f'{self.namespace}/caption': '/caption',
                        f'{self.namespace}/answer': '/answer'})
            self.executor.add_node(recorder)
        try:
            self._wait_until_connected(player, image.topic, question and question.topic,
                                       recorder)
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=player.message_count(), unit='msg', disable=None,
                           desc=f'replaying at {rate:g}x')
            deliver = self._synchronous(image.topic, frames) if sync else None
            try:
                played = player.play(rate=rate, progress=bar, deliver=deliver)
            finally:
                if bar is not None:
                    bar.close()
            self._settle(len(questions) if question else 0)
        finally:
            player.destroy_node()
            if recorder is not None:
                self.executor.remove_node(recorder)
                recorder.destroy_node()
        after = self.vla.camera.cache.stats()
        p = self.probe
        report = score_replay(frames, questions, list(p.captions), list(p.answers),
                              list(p.vqa_replies) if question else None, golden)
        node = {k: after[k] - before[k] for k in after}
        # received counts re-sent copies (sync) as duplicates; what reached the node once:
        reached = node['received'] - node['duplicates']
        report['frames'].update(node, reached_node=reached,
                                lost_before_node=max(0, len(frames) - reached))
        report.update(bag=str(bag), rate=rate, sync=sync, image_topic=image.topic,
                      question_topic=question.topic if question else None,
                      checkpoint=self.checkpoint, player=played,
                      seconds=round(time.monotonic() - start, 2))
        return report

    def _wait_until_connected(self, player, image_topic, question_topic, recorder):
        # Publishers and subscriptions discover each other asynchronously; the first
        # frames would be lost (and the first answers unheard) without this.
        wanted = {image_topic: 2}           # vla_node and vqa_service
        if question_topic:
            wanted[question_topic] = 2      # vla_node and the probe
        _wait(lambda: player.wait_for_subscribers(wanted, 0.0), 'the nodes to subscribe')
        subs = [s for node in (self.vla, self.vqa) for s in node.camera.subscriptions
                if s.topic_name == player.output_topic(image_topic)]
        outputs = [self.probe.caption_sub, self.probe.answer_sub]
        _wait(lambda: all(s.get_publisher_count() > 0 for s in subs + outputs),
              'the nodes and the probe to hear their publishers')
        _wait(self.probe.vqa.service_is_ready, 'the vqa service')
        if recorder is not None:
            _wait(recorder.matched, 'the recorder to hear the nodes')

    def _synchronous(self, image_topic: str, frames: list):
        """deliver() for BagPlayer.play: one frame or question at a time, to completion."""
        p, caches = self.probe, [self.vla.camera.cache, self.vqa.camera.cache]
        captions = self.vla.get_parameter('caption_rate').value > 0
        sent = count()

        def holds(cache, key):
            frame = cache.latest()
            return frame is not None and (frame.header.stamp.sec, frame.header.stamp.nanosec,
                                          frame.header.frame_id) == key

        def deliver(msg, publish):
            if msg.topic == image_topic:
                f = frames[next(sent)]
                key = (*f['stamp'], f['frame_id'])
                end = time.monotonic() + SYNC_TIMEOUT_S
                while True:   # best-effort subscriptions may lose it: send again
                    publish()
                    try:
                        _wait(lambda: all(holds(c, key) for c in caches), 'frame', RESEND_S)
                        break
                    except TimeoutError:
                        if time.monotonic() > end:
                            raise TimeoutError(f"frame {f['stamp']} never reached the nodes")
                if captions:
                    _wait(lambda: any(c['stamp'] == f['stamp'] for c in p.captions[-3:]),
                          f"the caption of frame {f['stamp']}", SYNC_TIMEOUT_S)
            else:
                answers, replies = len(p.answers), len(p.vqa_replies)
                publish()
                _wait(lambda: len(p.answers) > answers and len(p.vqa_replies) > replies,
                      'both answers to a question', SYNC_TIMEOUT_S)
        return deliver

    def _settle(self, n_questions: int):
        """Wait for the answers to the questions played, and for the last captions."""
        p = self.probe
        end = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < end:
            answered = len(p.answers) >= n_questions and len(p.vqa_replies) >= n_questions
            quiet = time.monotonic() - p.last_output
            if (answered and quiet > 0.3) or quiet > QUIET_S:
                return
            time.sleep(0.05)

    def _destroy_nodes(self):
        for node in self.nodes:
            node.destroy_node()
        self.nodes = []

    def close(self):
        if self._threads:
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=10.0)
            self._threads = []
            for executor in self.executors:
                executor.shutdown()
        self._destroy_nodes()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def evaluate_bag(bag, checkpoint: str = '', threads: int = 1,
                 caption_rate: float = DEFAULT_CAPTION_RATE, **replay_args) -> dict:
    """One replay of `bag` through fresh nodes (initialises rclpy if needed)."""
    # Bad topics or expected answers fail here, before the model loads.
    replay_args['inputs'] = bag_inputs(bag, replay_args.pop('image_topic', None),
                                       replay_args.pop('question_topic', None),
                                       replay_args.pop('expected', None))
    own_init = not rclpy.ok()
    if own_init:
        rclpy.init()
    try:
        with ReplayRig(checkpoint, threads, caption_rate) as rig:
            return rig.replay(bag, **replay_args)
    finally:
        if own_init:
            rclpy.try_shutdown()
