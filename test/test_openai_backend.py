"""The openai backend against a real OpenAI-compatible server: `vla-ros serve`'s, on the
bundled model (the opt-in check against llama-cpp-python's server is separate). The
answers through HTTP must be the engine's own; a server that is down, slow, failing or
not a chat-completions server gives a clear error; a node on the backend serves /vqa."""
import socket
import threading
import time

import numpy as np
import pytest

from vla_ros.data.easy_vqa import load_split
from vla_ros.engine import (GenerationTimeout, make_engine, QuestionError, resolve_backend,
                            ServerError, UnsupportedError)
from vla_ros.openai_server import make_server

QUESTIONS = 40


@pytest.fixture(scope='module')
def served():
    """(the engine being served, its /v1 URL); the server runs in a thread."""
    engine = make_engine(backend='onnxruntime')
    server = make_server(engine, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield engine, f'http://127.0.0.1:{server.server_address[1]}/v1'
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]   # closed again: nothing listens there


def test_answers_and_captions_over_http_are_the_engines_own(served):
    engine, url = served
    assert resolve_backend('auto', url) == 'openai'
    remote = make_engine(url)
    assert remote.backend == 'openai'
    split = load_split('test')
    for question, _answer, i in split.questions[:QUESTIONS]:
        image = split.images[i]
        here, there = engine.answer(image, question), remote.answer(image, question)
        assert there.text == here.text, question
        assert there.confidence == pytest.approx(here.confidence, rel=1e-5)
        assert there.tokens == here.tokens
    image = split.images[0]
    assert remote.caption(image).text == engine.caption(image).text
    with pytest.raises(QuestionError, match='empty'):
        remote.answer(image, '  ')
    with pytest.raises(UnsupportedError, match='cannot follow instructions'):
        remote.act(image, 'go to the red circle')


def test_server_refusals_come_back_with_the_reason(served):
    engine, url = served
    remote = make_engine(url)
    words = ' '.join(['red'] * 100) + '?'      # too many tokens for the bundled model
    with pytest.raises(ServerError, match=r'HTTP 400: question is \d+ tokens long; the '
                                          'model reads at most'):
        remote.answer(np.zeros((64, 64, 3), np.uint8), words)


def test_a_server_that_is_down_is_named_after_bounded_retries():
    url = f'http://127.0.0.1:{free_port()}/v1'
    remote = make_engine(url, timeout_s=10.0, retries=2)
    with pytest.raises(ServerError, match=r'127\.0\.0\.1.*after 3 attempts; is the server '
                                          'running'):
        remote.answer(np.zeros((64, 64, 3), np.uint8), 'what color is the shape?')


def test_failures_are_retried_and_slow_replies_time_out(served):
    engine, url = served
    real = engine.answer
    failures = []

    def failing_once(*args, **kwargs):      # the server's model fails its first call: 500
        if not failures:
            failures.append(1)
            raise RuntimeError('out of memory')
        return real(*args, **kwargs)
    image = load_split('test').images[0]
    engine.answer = failing_once
    try:
        reply = make_engine(url, retries=2).answer(image, 'what color is the shape?')
        assert failures and reply.text == real(image, 'what color is the shape?').text
        with pytest.raises(ServerError, match='HTTP 500: .*out of memory'):
            failures.clear()
            make_engine(url, retries=0).answer(image, 'what color is the shape?')
        engine.answer = lambda *a, **k: (time.sleep(2.0), real(*a, **k))[1]   # a slow model
        with pytest.raises(GenerationTimeout, match='no reply within the 0.3 s deadline'):
            make_engine(url, timeout_s=0.3).answer(image, 'what color is the shape?')
    finally:
        engine.answer = real


def test_vqa_service_node_on_the_openai_backend(served, ros_executor):
    from rclpy.parameter import Parameter

    from vla_ros.ros.image_conversion import rgb_to_image
    from vla_ros.ros.vqa_service_node import VQAServiceNode
    from vla_ros.srv import VQA
    import rclpy
    engine, url = served
    node = VQAServiceNode(parameter_overrides=[Parameter('model', value=url)])
    ros_executor.add_node(node)
    assert node.engine.backend == 'openai'
    probe = rclpy.create_node('openai_probe')
    ros_executor.add_node(probe)
    client = probe.create_client(VQA, 'vqa')
    assert client.wait_for_service(timeout_sec=20)
    image = load_split('test').images[3]
    done = threading.Event()
    future = client.call_async(VQA.Request(question='what shape is in the image?',
                                           image=rgb_to_image(image)))
    future.add_done_callback(lambda _: done.set())
    assert done.wait(20), 'no /vqa response'
    reply = future.result()
    assert reply.success, reply.error
    assert reply.answer == engine.answer(image, 'what shape is in the image?').text
