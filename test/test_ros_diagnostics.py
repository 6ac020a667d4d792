"""`/diagnostics` and the `annotated` image from the live nodes over DDS."""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402

from test_ros_nodes import header, Probe, questions_about, start, wait_for  # noqa: E402
from vla_ros.data.easy_vqa import load_split  # noqa: E402
from vla_ros.ros.image_conversion import rgb_to_image  # noqa: E402
from vla_ros.ros.image_source_node import ImageSourceNode  # noqa: E402
from vla_ros.ros.vla_node import VLANode  # noqa: E402
from vla_ros.ros.vqa_service_node import VQAServiceNode  # noqa: E402
from vla_ros.srv import VQA  # noqa: E402


class DiagnosticsProbe:
    def __init__(self, node):
        self.latest = {}                     # status name -> DiagnosticStatus
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on, 50)

    def _on(self, msg):
        for status in msg.status:
            self.latest[status.name] = status

    def of(self, node):
        return self.latest.get(f'vla_ros: {node.get_fully_qualified_name()}')

    def values(self, node):
        return {kv.key: kv.value for kv in self.of(node).values}


def test_diagnostics_report_frames_latency_requests_and_levels(ros_executor):
    split = load_split('test')
    vla = start(ros_executor, VLANode, caption_rate=20.0)
    vqa = start(ros_executor, VQAServiceNode)
    source = start(ros_executor, ImageSourceNode, rate=5.0, publish_raw=False)
    probe = Probe(ros_executor)
    diag = DiagnosticsProbe(probe.node)
    wait_for(lambda: diag.of(vla) and diag.of(vqa) and diag.of(source), 'diagnostics')
    # no camera yet: WARN, saying so
    assert diag.of(vla).level == DiagnosticStatus.WARN
    assert 'no camera frame' in diag.of(vla).message
    values = diag.values(vla)
    assert values['backend'] and values['model'].endswith('vla_tiny')
    assert values['action state'] == 'idle'
    # frames and a question: OK, with the counts and latencies
    probe.send_frame(vla, rgb_to_image(split.images[0], header(7)))
    probe.send_frame(vqa, rgb_to_image(split.images[0], header(7)))
    (question, expected), = questions_about(split, 0, 1)
    assert probe.ask(vla, question).answer == expected
    wait_for(lambda: diag.of(vla).level == DiagnosticStatus.OK
             and 'answer p50 ms' in diag.values(vla)
             and 'caption since frame stamp p50 ms' in diag.values(vla), 'OK with latencies')
    values = diag.values(vla)
    assert int(values['frames received']) >= 1 and int(values['questions (total)']) == 1
    assert float(values['caption model p50 ms']) > 0
    assert int(diag.values(source)['frames published (total)']) >= 1
    # most /vqa calls failing: ERROR, with the ratio
    for _ in range(6):
        assert not probe.call(VQA.Request(question='   ')).success
    # Reports come at 1 Hz: one may have gone out between the fifth and sixth error.
    wait_for(lambda: diag.values(vqa).get('vqa errors (total)') == '6', 'all 6 errors counted')
    assert diag.of(vqa).level == DiagnosticStatus.ERROR
    assert 'of the last' in diag.of(vqa).message


def test_annotated_image_only_while_someone_subscribes(ros_executor):
    from sensor_msgs.msg import Image
    split = load_split('test')
    vla = start(ros_executor, VLANode, caption_rate=20.0, annotated_rate=20.0,
                annotated_width=320)
    probe = Probe(ros_executor)
    probe.send_frame(vla, rgb_to_image(split.images[2], header(9)))
    (question, expected), = questions_about(split, 2, 1)
    probe.ask(vla, question)
    wait_for(lambda: vla.diagnostics.recent('captions') > 0, 'a caption')
    time.sleep(0.5)
    assert vla.diagnostics.recent('annotated images') == 0     # nobody subscribed: none drawn
    images = []
    probe.node.create_subscription(Image, 'annotated', images.append, 10)
    wait_for(lambda: images, 'an annotated image')
    image = images[-1]
    assert image.width == 320 and image.height > 320 and image.encoding == 'rgb8'
    assert (image.header.frame_id, image.header.stamp.sec) == ('test_camera', 9)
    assert vla.overlay.answer == expected and vla.overlay.caption


def test_annotate_draws_the_panel_and_the_arrow():
    from vla_ros.annotate import annotate, Overlay
    frame = np.full((64, 64, 3), 255, np.uint8)
    still = annotate(frame, Overlay(caption='a red circle', action_state='running',
                                    instruction='go', command=(0.0, 0.0)), width=256)
    moving = annotate(frame, Overlay(caption='a red circle', action_state='running',
                                     instruction='go', command=(1.0, 0.5)), width=256)
    assert still.shape == moving.shape and still.shape[:2] == (256 + 4 * 22 + 8, 256)
    red = np.all(moving[:256] == (220, 40, 40), axis=-1) | (
        (moving[:256, :, 0] > 150) & (moving[:256, :, 1] < 120))
    assert red[:200].sum() > 50                      # an arrow reaching up into the frame
    assert (still[256:] != 245).any()                # text in the panel


def test_annotate_draws_the_latest_grounding_in_the_frame_scale():
    from vla_ros.annotate import annotate, BOX_RGB, Overlay
    frame = np.zeros((48, 64, 3), np.uint8)
    grounding = ('red ball', [(16.0, 12.0, 32.0, 24.0)], [(24.0, 18.0)], (48, 64))
    image = annotate(frame, Overlay(grounding=grounding), width=256)   # 4x the frame
    boxed = np.all(image[:192] == BOX_RGB, axis=-1)
    ys, xs = np.nonzero(boxed)
    assert boxed.sum() > 100
    assert 60 <= xs.min() <= 66 and ys.max() <= 100       # the box at 4x: x from 64
    assert boxed[72, 96]                                   # the point (24, 18) x 4
    assert not np.all(annotate(frame, Overlay(), width=256)[:192] == BOX_RGB, axis=-1).any()
