"""`vqa` requests that queue while the model is busy are answered in one batched call,
each reply with its own answer and its own frame's stamp, over real DDS."""
import threading

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from vla_ros.data.easy_vqa import load_split  # noqa: E402
from vla_ros.ros.image_conversion import rgb_to_image  # noqa: E402
from vla_ros.ros.vqa_service_node import VQAServiceNode  # noqa: E402
from vla_ros.srv import VQA  # noqa: E402
from test_ros_sim_actions import TIMEOUT_S, wait_for  # noqa: E402

pytestmark = [pytest.mark.filterwarnings('error::pytest.PytestUnhandledThreadExceptionWarning')]
QUEUED = 12


def test_requests_queued_behind_a_busy_model_are_answered_in_one_batch(executor_pair):
    node = VQAServiceNode()
    executor_pair[0].add_node(node)
    engine, batcher = node.engine, node.batcher
    gate, calls = threading.Event(), []
    real = engine.answer_batch

    def held_answer_batch(requests):      # the model is "busy" with the first request
        calls.append(len(requests))
        if len(calls) == 1:
            assert gate.wait(TIMEOUT_S)
        return real(requests)
    engine.answer_batch = held_answer_batch
    try:
        probe = rclpy.create_node('batch_probe')
        executor_pair[1].add_node(probe)
        client = probe.create_client(VQA, 'vqa', qos_profile=QoSProfile(depth=100))
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        split = load_split('test')
        asked = [(split.images[i], q) for q, _a, i in split.questions[:QUEUED + 1]]
        asked[3] = (asked[3][0], '  ')                      # one refusal among them
        futures = []
        for n, (image, question) in enumerate(asked):
            msg = rgb_to_image(image, Header(stamp=Time(sec=1000 + n), frame_id=f'cam{n}'))
            futures.append(client.call_async(VQA.Request(question=question, image=msg)))
            if n == 0:
                wait_for(lambda: calls, 'the first request to reach the model')
        # The refusal is answered at once; the others wait behind the busy model.
        wait_for(lambda: len(batcher._queue) == QUEUED - 1, 'the requests to queue')
        gate.set()
        done = threading.Event()
        remaining = [len(futures)]

        def one_done(_future):
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
        for f in futures:
            f.add_done_callback(one_done)
        assert done.wait(TIMEOUT_S), 'not every request was answered'
    finally:
        engine.answer_batch = real
    assert calls == [1, QUEUED - 1]
    assert batcher.batch_sizes() == {1: 1, QUEUED - 1: 1}
    for n, ((image, question), future) in enumerate(zip(asked, futures)):
        reply = future.result()
        assert reply.frame_stamp.sec == 1000 + n or n == 3
        if n == 3:
            assert (reply.success, reply.error) == (False, 'question is empty')
            continue
        alone = engine.answer(image, question)
        assert reply.success and reply.answer == alone.text, n
        assert reply.confidence == pytest.approx(alone.confidence, rel=1e-4, abs=1e-6)


def test_closing_answers_what_is_still_queued(executor_pair):
    node = VQAServiceNode()
    executor_pair[0].add_node(node)
    frame = np.full((64, 64, 3), 200, np.uint8)
    gate, started = threading.Event(), threading.Event()
    real = node.engine.answer_batch

    def held_answer_batch(requests):
        started.set()
        assert gate.wait(TIMEOUT_S)
        return real(requests)
    node.engine.answer_batch = held_answer_batch
    probe = rclpy.create_node('close_probe')
    executor_pair[1].add_node(probe)
    client = probe.create_client(VQA, 'vqa', qos_profile=QoSProfile(depth=100))
    assert client.wait_for_service(timeout_sec=TIMEOUT_S)
    request = VQA.Request(question='what color is the shape?', image=rgb_to_image(frame))
    futures = [client.call_async(request)]
    assert started.wait(TIMEOUT_S), 'the first request never reached the model'
    futures += [client.call_async(request) for _ in range(2)]
    wait_for(lambda: len(node.batcher._queue) == 2, 'two requests queued behind the first')
    batcher = node.batcher
    closer = threading.Thread(target=batcher.close)
    closer.start()
    wait_for(lambda: batcher._closed, 'the batcher to close')
    gate.set()
    closer.join(TIMEOUT_S)
    node.engine.answer_batch = real
    wait_for(lambda: all(f.done() for f in futures), 'every reply')
    replies = [f.result() for f in futures]
    assert replies[0].success
    assert [(r.success, r.error) for r in replies[1:]] == [(False, 'node shutting down')] * 2
