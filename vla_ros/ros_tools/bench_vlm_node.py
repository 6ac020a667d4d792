"""`vla-ros bench-vlm --node`: a pretrained model's `/vqa` round trip through the real
`vqa_service` process against the engine's own latency for the same frame and question.

One configuration (model directory, weights, image budget, threads, reply length). First
the engine alone, in this process: one warm-up answer, then `calls` answers, timed by the
engine (frame in -> reply out). It is then freed, and `vqa_service` starts as its own
process with the same parameters (as `ros2 run` starts it): one warm-up call, then `calls`
/vqa calls with the frame in the request, timed here from the call to the response. The
two run one after the other, never side by side, so they do not share the cores. Reported:
both medians, their ratio, and whether the node's answers are the engine's.
"""
import gc
import statistics

import rclpy
from rclpy.executors import SingleThreadedExecutor

from ..ros.image_conversion import image_to_rgb
from ..ros.params import CLIENT_QOS
from ..srv import VQA
from .bench_harness import (BenchError, camera_frames, isolate_dds, machine_info, start_node,
                            START_TIMEOUT_S, timed_call)

QUESTION = 'What is on the floor in front of the robot?'


def engine_latency(model_dir: str, options: dict, rgb, calls: int) -> tuple:
    """(latencies in ms, the answer) of the engine alone."""
    from ..engine.transformers_backend import TransformersEngine
    engine = TransformersEngine(model_dir, **options)
    answer = engine.answer(rgb, QUESTION).text          # warm-up
    latencies = [engine.answer(rgb, QUESTION).latency_ms for _ in range(calls)]
    del engine
    gc.collect()
    return latencies, answer


def node_latency(model_dir: str, options: dict, image_msg, calls: int) -> tuple:
    """(round trips in ms, the answers) of /vqa through a vqa_service process."""
    params = {'model': model_dir, 'backend': 'transformers', 'threads': options['threads'],
              'weights': options['dtype'], 'image_max_side': options['image_max_side'],
              'max_new_tokens': options['max_new_tokens'],
              'generation_timeout': options['timeout_s']}
    child = start_node('vqa_service', params)
    node = rclpy.create_node('bench_vlm_node')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        client = node.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
        if not client.wait_for_service(timeout_sec=START_TIMEOUT_S):
            raise BenchError(f'vqa_service never served /vqa:\n{child.output()}')
        request = VQA.Request(question=QUESTION, image=image_msg)
        timed_call(executor, client, request)                # warm-up
        trips, answers = [], set()
        for _ in range(calls):
            ms, response = timed_call(executor, client, request)
            if response is None or not response.success:
                raise BenchError(f'/vqa failed: {getattr(response, "error", "no response")}')
            trips.append(ms)
            answers.add(response.answer)
        child.check()
        return trips, answers
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        child.stop()


def run(model_dir: str, weights: str, image_max_side: int, threads: int, new_tokens: int,
        calls: int) -> dict:
    options = dict(threads=threads, dtype=weights, image_max_side=image_max_side,
                   max_new_tokens=new_tokens, timeout_s=600.0)
    image_msg = camera_frames(1)[0]
    rgb = image_to_rgb(image_msg)
    engine_ms, engine_answer = engine_latency(model_dir, options, rgb, calls)
    isolate_dds()
    rclpy.init()
    try:
        node_ms, node_answers = node_latency(model_dir, options, image_msg, calls)
    finally:
        rclpy.try_shutdown()
    engine_median, node_median = statistics.median(engine_ms), statistics.median(node_ms)
    return {'model': model_dir, 'weights': weights, 'image_max_side': image_max_side,
            'threads': threads, 'new_tokens': new_tokens, 'calls': calls,
            'engine_ms_median': round(engine_median, 1),
            'vqa_round_trip_ms_median': round(node_median, 1),
            'ratio': round(node_median / engine_median, 3),
            'same_answers': node_answers == {engine_answer},
            **machine_info()}
