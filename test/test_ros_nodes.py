"""The vla_ros nodes over real DDS: captions, answers, the /vqa service, parameters.

The nodes run the bundled checkpoint (models/vla_tiny); expected answers are easy-VQA's
ground truth. Waits are generous upper bounds against hangs, never timing assertions.
"""
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402

from vla_ros.data.camera import camera_frame  # noqa: E402
from vla_ros.data.easy_vqa import load_split  # noqa: E402
from vla_ros.msg import Answer, Caption  # noqa: E402
from vla_ros.ros.image_conversion import rgb_to_compressed, rgb_to_image  # noqa: E402
from vla_ros.ros.vla_node import VLANode  # noqa: E402
from vla_ros.ros.vqa_service_node import VQAServiceNode  # noqa: E402
from vla_ros.srv import VQA  # noqa: E402

TIMEOUT_S = 20.0


@pytest.fixture(scope='module')
def easy_vqa():
    return load_split('test')


def wait_for(condition, what, timeout=TIMEOUT_S):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f'timed out after {timeout} s waiting for {what}'
        time.sleep(0.02)


def header(sec, frame_id='test_camera'):
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = sec, 250_000_000
    return h


def same_header(a, b):
    return (a.frame_id, a.stamp.sec, a.stamp.nanosec) == (b.frame_id, b.stamp.sec,
                                                          b.stamp.nanosec)


def questions_about(split, index, n=2):
    return [(q, a) for q, a, i in split.questions if i == index][:n]


class Probe:
    """The test's side of the graph: publishes frames and questions, records results."""

    def __init__(self, executor):
        self.node = rclpy.create_node('probe')
        self.captions, self.answers = [], []
        self.node.create_subscription(Caption, 'caption', self.captions.append, 10)
        self.node.create_subscription(Answer, 'answer', self.answers.append, 10)
        self.image_pub = self.node.create_publisher(Image, 'image', 10)
        self.compressed_pub = self.node.create_publisher(CompressedImage, 'image/compressed', 10)
        self.question_pub = self.node.create_publisher(String, 'question', 10)
        self.vqa = self.node.create_client(VQA, 'vqa')
        executor.add_node(self.node)

    def send_frame(self, target, msg, compressed=False):
        """Publish `msg` until `target` node's cache holds it (discovery is asynchronous)."""
        pub = self.compressed_pub if compressed else self.image_pub

        def cached():
            frame = target.camera.cache.latest()
            return frame is not None and same_header(frame.header, msg.header)
        end = time.monotonic() + TIMEOUT_S
        while not cached():
            assert time.monotonic() < end, 'frame never reached the node'
            pub.publish(msg)
            time.sleep(0.05)

    def ask(self, target, question):
        """Publish one question (reliable, once matched); return the Answer it produced."""
        wait_for(lambda: self.question_pub.get_subscription_count() > 0
                 and target.answer_pub.get_subscription_count() > 0, 'question/answer match')
        count = len(self.answers)
        self.question_pub.publish(String(data=question))
        wait_for(lambda: len(self.answers) > count, f'an answer to {question!r}')
        return self.answers[count]

    def call(self, request):
        assert self.vqa.wait_for_service(timeout_sec=TIMEOUT_S), 'vqa service never appeared'
        done = threading.Event()
        future = self.vqa.call_async(request)
        future.add_done_callback(lambda _: done.set())
        assert done.wait(TIMEOUT_S), f'no response to {request.question!r}'
        return future.result()


def start(executor, node_class, **params):
    node = node_class(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    executor.add_node(node)
    return node


# -- VLA node ----------------------------------------------------------------------------------

def test_captions_carry_the_input_header_and_describe_the_frame(ros_executor, easy_vqa):
    vla = start(ros_executor, VLANode, caption_rate=20.0)
    probe = Probe(ros_executor)
    for index, sec in ((0, 100), (1, 101)):
        frame = rgb_to_image(easy_vqa.images[index], header(sec))
        probe.send_frame(vla, frame)
        wait_for(lambda: any(same_header(c.header, frame.header) for c in probe.captions),
                 f'a caption of frame {sec}')
        caption = next(c for c in probe.captions if same_header(c.header, frame.header))
        truth = easy_vqa.objects[index][0]
        assert truth.color in caption.caption and truth.shape in caption.caption, (
            f'caption {caption.caption!r} of a {truth.color} {truth.shape}')
        assert 0.0 <= caption.confidence <= 1.0 and caption.latency_ms > 0
    # 20 Hz ticks kept coming, but each frame was described once.
    time.sleep(0.3)
    stamps = [c.header.stamp.sec for c in probe.captions]
    assert sorted(stamps) == [100, 101]


def test_compressed_frames_are_captioned(ros_executor, easy_vqa):
    vla = start(ros_executor, VLANode, caption_rate=20.0, image_transport='compressed')
    probe = Probe(ros_executor)
    rgb = camera_frame(easy_vqa.images[2], np.random.default_rng(0))   # 640x480 JPEG-like
    frame = rgb_to_compressed(rgb, header(200), fmt='jpeg')
    probe.send_frame(vla, frame, compressed=True)
    wait_for(lambda: probe.captions, 'a caption of the compressed frame')
    assert same_header(probe.captions[0].header, frame.header)
    assert easy_vqa.objects[2][0].shape in probe.captions[0].caption


def test_questions_are_answered_about_the_latest_frame(ros_executor, easy_vqa):
    vla = start(ros_executor, VLANode, caption_rate=0.0)
    probe = Probe(ros_executor)
    for index in (3, 4, 5):
        frame = rgb_to_image(easy_vqa.images[index], header(300 + index))
        probe.send_frame(vla, frame)
        for question, truth in questions_about(easy_vqa, index):
            answer = probe.ask(vla, question)
            assert answer.success, answer.error
            assert (answer.question, answer.answer) == (question, truth)
            assert same_header(answer.header, frame.header)
            assert answer.error == '' and answer.latency_ms > 0
    assert probe.captions == []    # caption_rate 0 disables captions
    empty = probe.ask(vla, '   ')
    assert not empty.success and empty.error == 'question is empty'


def test_answers_without_a_fresh_frame_say_why(ros_executor, easy_vqa):
    vla = start(ros_executor, VLANode, caption_rate=0.0, max_frame_age=0.3)
    probe = Probe(ros_executor)
    missing = probe.ask(vla, 'what color is the shape?')
    assert not missing.success and 'no camera frame received yet' in missing.error
    assert missing.header.frame_id == '' and missing.header.stamp.sec > 0   # stamped now
    probe.send_frame(vla, rgb_to_image(easy_vqa.images[0], header(400)))
    time.sleep(0.5)
    stale = probe.ask(vla, 'what color is the shape?')
    assert not stale.success and 'stale' in stale.error and 'max_frame_age 0.3' in stale.error
    assert stale.answer == ''


# -- VQA service -------------------------------------------------------------------------------

def test_vqa_answers_from_the_request_image_and_from_the_cached_frame(ros_executor, easy_vqa):
    vqa = start(ros_executor, VQAServiceNode)
    probe = Probe(ros_executor)
    for index in (6, 7, 8, 9):
        for question, truth in questions_about(easy_vqa, index):
            request = VQA.Request(question=question)
            request.image = rgb_to_image(easy_vqa.images[index], header(500 + index),
                                         encoding='bgr8' if index % 2 else 'rgb8')
            response = probe.call(request)
            assert (response.success, response.answer) == (True, truth), response.error
            assert (response.frame_stamp.sec, response.error) == (500 + index, '')
            assert 0.0 <= response.confidence <= 1.0 and response.latency_ms > 0
        frame = rgb_to_image(easy_vqa.images[index], header(600 + index))
        probe.send_frame(vqa, frame)
        for question, truth in questions_about(easy_vqa, index):
            response = probe.call(VQA.Request(question=question))
            assert (response.success, response.answer) == (True, truth), response.error
            assert response.frame_stamp == frame.header.stamp
    # A camera-sized, JPEG-compressed frame goes the same way.
    index = 10
    rgb = camera_frame(easy_vqa.images[index], np.random.default_rng(1))
    probe.send_frame(vqa, rgb_to_compressed(rgb, header(700)), compressed=True)
    for question, truth in questions_about(easy_vqa, index):
        response = probe.call(VQA.Request(question=question))
        assert (response.success, response.answer, response.frame_stamp.sec) == (
            True, truth, 700), response.error


def test_vqa_refusals_are_responses_with_a_reason(ros_executor, easy_vqa):
    vqa = start(ros_executor, VQAServiceNode, max_frame_age=0.3)
    probe = Probe(ros_executor)

    def refused(request, words):
        response = probe.call(request)
        assert not response.success and words in response.error, response.error
        assert response.answer == '' and response.latency_ms > 0
        return response

    refused(VQA.Request(question='what shape is present?'), 'no camera frame received yet')
    good = rgb_to_image(easy_vqa.images[0], header(800))
    refused(VQA.Request(question='', image=good), 'question is empty')
    bad_step = rgb_to_image(easy_vqa.images[0], header(801))
    bad_step.step = 100
    response = refused(VQA.Request(question='what shape is present?', image=bad_step),
                       'request image: step 100 is less than width*bytes_per_pixel')
    assert response.frame_stamp.sec == 801
    short = rgb_to_image(easy_vqa.images[0], header(802))
    short.data = short.data[:-1]
    refused(VQA.Request(question='what shape is present?', image=short), 'data has 12287 bytes')
    odd = VQA.Request(question='what shape is present?')
    odd.image.height, odd.image.encoding = 64, 'rgb8'
    refused(odd, 'request image: empty image: 0x64')
    probe.send_frame(vqa, rgb_to_image(easy_vqa.images[0], header(803)))
    time.sleep(0.5)
    refused(VQA.Request(question='what shape is present?'), 'latest camera frame is stale')
    refused(VQA.Request(question='what ' * 200, image=good), 'question is 999 characters long')


def test_bad_frames_are_counted_and_dropped_and_undecodable_ones_explained(ros_executor,
                                                                           easy_vqa):
    vla = start(ros_executor, VLANode, caption_rate=0.0)
    vqa = start(ros_executor, VQAServiceNode)
    assert vla.engine is vqa.engine   # composed nodes load the model once
    probe = Probe(ros_executor)
    bad = rgb_to_image(easy_vqa.images[0], header(900))
    bad.step = 10
    end = time.monotonic() + TIMEOUT_S
    while vla.camera.cache.stats()['invalid'] == 0:
        assert time.monotonic() < end, 'the invalid frame never arrived'
        probe.image_pub.publish(bad)
        time.sleep(0.05)
    assert vla.camera.cache.latest() is None   # dropped, not cached
    # A JPEG that passes the cheap checks but does not decode fails when it is used.
    garbage = CompressedImage(header=header(901), format='jpeg')
    garbage.data = bytes(range(256)) * 4
    probe.send_frame(vla, garbage, compressed=True)
    answer = probe.ask(vla, 'what shape is present?')
    assert not answer.success and 'latest camera frame is unusable: could not decode' in \
        answer.error
    assert same_header(answer.header, garbage.header)
