"""The vqa_service node's `ask` action over real DDS: the reply streamed as feedback,
the same answer as `vqa`, refusals as results, and cancel stopping a real generation
(a tiny random LLaVA from tiny_hf_models.py, on the transformers backend)."""
import os
import threading

import numpy as np
import pytest

os.environ['HF_HUB_OFFLINE'] = '1'
rclpy = pytest.importorskip('rclpy')

from action_msgs.msg import GoalStatus  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from vla_ros.action import Ask  # noqa: E402
from vla_ros.ros.image_conversion import rgb_to_image  # noqa: E402
from vla_ros.ros.vqa_service_node import VQAServiceNode  # noqa: E402
from vla_ros.srv import VQA  # noqa: E402
from test_ros_sim_actions import resolved  # noqa: E402

pytestmark = [pytest.mark.filterwarnings('error::pytest.PytestUnhandledThreadExceptionWarning')]
TIMEOUT_S = 30.0
QUESTION = 'what color is the shape?'
IMAGE = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)


class Asker:
    def __init__(self, executor, **params):
        self.node = VQAServiceNode(parameter_overrides=[Parameter(k, value=v)
                                                        for k, v in params.items()])
        executor.add_node(self.node)
        self.probe = rclpy.create_node('ask_probe')
        # Clients before the node is spun (test_ros_follow_instruction.GoalClient says why).
        self.client = ActionClient(self.probe, Ask, 'ask')
        self.vqa = self.probe.create_client(VQA, 'vqa')
        executor.add_node(self.probe)
        self.feedback = []
        self.fed = threading.Condition()

    def on_feedback(self, message):
        with self.fed:
            self.feedback.append((bytes(message.goal_id.uuid), message.feedback))
            self.fed.notify_all()

    def feedback_received(self, handle, n: int) -> list:
        """The goal's feedback so far, once n messages have arrived: feedback is a topic and
        the result a service reply, so the last feedback can reach the client after the
        result (it did on a loaded machine)."""
        goal = bytes(handle.goal_id.uuid)

        def of_goal():
            return [f for g, f in self.feedback if g == goal]
        with self.fed:
            assert self.fed.wait_for(lambda: len(of_goal()) >= n, TIMEOUT_S), \
                f'{len(of_goal())} of {n} feedback messages'
            return of_goal()

    def match_feedback(self, question, image):
        """Feedback is a topic, matched by discovery apart from the services that take a goal
        and return its result: on a loaded machine a goal's first feedback went out before
        the topic had matched and the client got 4 of 8 tokens (CI). Goals are asked until
        one's feedback arrives; from then on the topic is matched and its delivery reliable."""
        for _ in range(20):
            self.result(self.send(question, image))
            with self.fed:
                if self.fed.wait_for(lambda: self.feedback, TIMEOUT_S / 20):
                    return
        raise AssertionError('no feedback from 20 goals')

    def send(self, question, image=None):
        assert self.client.wait_for_server(timeout_sec=TIMEOUT_S), 'no ask server'
        goal = Ask.Goal(question=question, image=rgb_to_image(image) if image is not None
                        else rgb_to_image(np.zeros((0, 0, 3), np.uint8)))
        handle = resolved(self.client.send_goal_async(
            goal, feedback_callback=self.on_feedback),
            'acceptance', TIMEOUT_S)
        assert handle.accepted
        return handle

    def result(self, handle):
        response = resolved(handle.get_result_async(), 'the result', TIMEOUT_S)
        return response.status, response.result

    def call_vqa(self, question, image):
        assert self.vqa.wait_for_service(timeout_sec=TIMEOUT_S)
        return resolved(self.vqa.call_async(VQA.Request(question=question,
                                                        image=rgb_to_image(image))),
                        '/vqa', TIMEOUT_S)


def test_the_bundled_model_answers_as_vqa_does_with_its_reply_as_feedback(ros_executor):
    asker = Asker(ros_executor)
    frame = np.full((64, 64, 3), 255, np.uint8)
    frame[16:48, 16:48] = (200, 30, 30)
    asker.match_feedback('what color is the shape?', frame)
    handle = asker.send('what color is the shape?', frame)
    status, result = asker.result(handle)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.error
    reply = asker.call_vqa('what color is the shape?', frame)
    assert (result.answer, result.confidence) == (reply.answer, pytest.approx(reply.confidence))
    assert [f.partial_answer for f in asker.feedback_received(handle, 1)] == [result.answer]
    # Refusals are results with the reason, as /vqa's responses are.
    status, result = asker.result(asker.send('what color is the shape?'))
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert 'no camera frame' in result.error
    status, result = asker.result(asker.send('   ', frame))
    assert (status, result.error) == (GoalStatus.STATUS_ABORTED, 'question is empty')


def test_a_pretrained_model_streams_its_reply_token_by_token(ros_executor, model_dirs):
    asker = Asker(ros_executor, model=model_dirs['llava'], max_new_tokens=8)
    asker.match_feedback(QUESTION, IMAGE)
    handle = asker.send(QUESTION, IMAGE)
    status, result = asker.result(handle)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.error
    feedback = asker.feedback_received(handle, 8)
    assert [f.tokens for f in feedback] == list(range(1, 9))
    assert feedback[-1].partial_answer == result.answer
    assert result.answer == asker.call_vqa(QUESTION, IMAGE).answer


def test_cancel_stops_the_generation(ros_executor, model_dirs):
    asker = Asker(ros_executor, model=model_dirs['llava'], max_new_tokens=512,
                  generation_timeout=600.0)
    canceled = threading.Event()
    streamed = []
    reply = asker.node.ask.reply

    def gated_reply(request, result, on_text):
        def watch(text, tokens):   # holds the generation after its first token until the
            streamed.append(tokens)        # cancel has been acknowledged
            if tokens == 1:
                assert canceled.wait(TIMEOUT_S)
            return on_text(text, tokens)
        return reply(request, result, watch)
    asker.node.ask.reply = gated_reply
    handle = asker.send(QUESTION, IMAGE)
    threading.Thread(target=lambda: (resolved(handle.cancel_goal_async(), 'cancel', TIMEOUT_S),
                                     canceled.set())).start()
    status, result = asker.result(handle)
    assert status == GoalStatus.STATUS_CANCELED
    assert (result.success, result.error) == (False, 'canceled')
    assert streamed == [1]    # the first token's check saw the cancel: generation stopped
