"""`vqa` requests that queue while the model is busy are answered in one batched call,
each reply with its own answer and its own frame's stamp, over real DDS."""
import threading
import time

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
        wait_for(lambda: batcher.queued() == QUEUED - 1, 'the requests to queue')
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
    wait_for(lambda: node.batcher.queued() == 2, 'two requests queued behind the first')
    batcher = node.batcher
    closer = threading.Thread(target=batcher.close)
    closer.start()
    wait_for(lambda: batcher.closed, 'the batcher to close')
    gate.set()
    closer.join(TIMEOUT_S)
    node.engine.answer_batch = real
    wait_for(lambda: all(f.done() for f in futures), 'every reply')
    replies = [f.result() for f in futures]
    assert replies[0].success
    assert [(r.success, r.error) for r in replies[1:]] == [(False, 'node shutting down')] * 2


def test_captions_of_several_cameras_sharing_the_model_go_into_one_batch(executor_pair):
    """Two VLA nodes in one process (cameras `front` and `rear`) and a VQA service share
    the model: while a /vqa request keeps it busy, both cameras' captions queue and are
    made in one caption_batch call, each published with its own frame's header and the
    caption the model gives that frame alone."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from vla_ros.msg import Caption
    from vla_ros.ros.vla_node import VLANode
    cameras = ('front', 'rear')
    nodes = [VLANode(namespace=ns, parameter_overrides=[Parameter('caption_rate', value=20.0)])
             for ns in cameras]
    service = VQAServiceNode()
    engine = service.engine
    assert all(n.engine is engine and n.batcher.shared is service.batcher.shared for n in nodes)
    gate, answering, caption_calls = threading.Event(), threading.Event(), []
    real_answers, real_captions = engine.answer_batch, engine.caption_batch

    def held_answer_batch(requests):      # a /vqa request keeps the model busy
        answering.set()
        assert gate.wait(TIMEOUT_S)
        return real_answers(requests)

    def counted_caption_batch(images):
        caption_calls.append(len(images))
        return real_captions(images)
    engine.answer_batch, engine.caption_batch = held_answer_batch, counted_caption_batch
    try:
        for node in nodes + [service]:
            executor_pair[0].add_node(node)
        probe = rclpy.create_node('cameras_probe')
        captions = {ns: [] for ns in cameras}
        for ns in cameras:
            probe.create_subscription(Caption, f'/{ns}/caption', captions[ns].append, 10)
        pubs = {ns: probe.create_publisher(Image, f'/{ns}/image', 10) for ns in cameras}
        client = probe.create_client(VQA, 'vqa', qos_profile=QoSProfile(depth=10))
        executor_pair[1].add_node(probe)
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        split = load_split('test')
        busy = client.call_async(VQA.Request(question='what color is the shape?',
                                             image=rgb_to_image(split.images[9])))
        assert answering.wait(TIMEOUT_S), 'the /vqa request never reached the model'
        frames = {ns: rgb_to_image(split.images[k], Header(stamp=Time(sec=50 + k), frame_id=ns))
                  for k, ns in enumerate(cameras)}
        for node, ns in zip(nodes, cameras):                          # frames into the caches
            def cached(node=node, ns=ns):
                frame = node.camera.cache.latest()
                return frame is not None and frame.header.frame_id == ns
            end = time.monotonic() + TIMEOUT_S
            while not cached():      # publish until discovery has matched (paced, not a wait)
                assert time.monotonic() < end, f'no frame reached the {ns} node'
                pubs[ns].publish(frames[ns])
                time.sleep(0.05)
        wait_for(lambda: service.batcher.shared.queued() >= 2, 'both cameras to queue')
        gate.set()
        wait_for(lambda: captions['front'] and captions['rear'] and busy.done(),
                 'a caption from each camera and the /vqa reply')
    finally:
        engine.answer_batch, engine.caption_batch = real_answers, real_captions
        gate.set()
    assert caption_calls[0] == 2, caption_calls
    assert busy.result().success
    for k, ns in enumerate(cameras):
        first = captions[ns][0]
        assert (first.header.frame_id, first.header.stamp.sec) == (ns, 50 + k)
        assert first.caption == engine.caption(split.images[k]).text
