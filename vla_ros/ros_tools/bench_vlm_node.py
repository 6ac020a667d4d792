"""`vla-ros bench-vlm --node`: a pretrained model's `/vqa` round trip through the real
`vqa_service` process against the engine's own latency for the same frame and question.

One configuration (model directory, weights, image budget, threads, reply length): the
engine is loaded in this process, and `vqa_service` starts as its own process with the
same parameters (as `ros2 run` starts it). After a warm-up of each, `calls` rounds
alternate one engine answer (timed by the engine: frame in -> reply out) and one /vqa call
with the frame in the request (timed here, call to response); one at a time, so they never
share the cores (with a pause between: see PAUSE_S), and alternating, so a shared
machine's drift hits both alike. Reported:
both medians, their ratio, the node's own `latency_ms` (request taken -> answer ready),
and whether the node's answers are the engine's.
"""
import statistics
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor

from ..ros.image_conversion import image_to_rgb
from ..ros.params import CLIENT_QOS
from ..srv import VQA
from .bench_harness import (BenchError, camera_frames, isolate_dds, machine_info, start_node,
                            START_TIMEOUT_S, timed_call)

QUESTION = 'What is on the floor in front of the robot?'
# Between the two: OpenMP worker threads keep spinning for a while after a parallel region,
# and the other process's would otherwise take the cores from the next answer (measured:
# without the pause, whichever ran second was ~20% slower).
PAUSE_S = 1.0


def run(model_dir: str, weights: str, image_max_side: int, threads: int, new_tokens: int,
        calls: int) -> dict:
    """The report (see the module doc)."""
    from ..engine.transformers_backend import TransformersEngine
    options = dict(threads=threads, dtype=weights, image_max_side=image_max_side,
                   max_new_tokens=new_tokens, timeout_s=600.0)
    params = {'model': model_dir, 'backend': 'transformers', 'threads': threads,
              'weights': weights, 'image_max_side': image_max_side,
              'max_new_tokens': new_tokens, 'generation_timeout': 600.0}
    image_msg = camera_frames(1)[0]
    rgb = image_to_rgb(image_msg)
    engine = TransformersEngine(model_dir, **options)
    isolate_dds()
    rclpy.init()
    child = start_node('vqa_service', params)
    node = rclpy.create_node('bench_vlm_node')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        client = node.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
        if not client.wait_for_service(timeout_sec=START_TIMEOUT_S):
            raise BenchError(f'vqa_service never served /vqa:\n{child.output()}')
        request = VQA.Request(question=QUESTION, image=image_msg)
        engine_answer = engine.answer(rgb, QUESTION).text     # warm-ups
        timed_call(executor, client, request)
        engine_ms, trips, inside, answers = [], [], [], set()
        for _ in range(calls):      # alternating: drift on a shared machine hits both alike
            engine_ms.append(engine.answer(rgb, QUESTION).latency_ms)
            time.sleep(PAUSE_S)
            ms, response = timed_call(executor, client, request)
            time.sleep(PAUSE_S)
            if response is None or not response.success:
                raise BenchError(f'/vqa failed: {getattr(response, "error", "no response")}')
            trips.append(ms)
            inside.append(response.latency_ms)
            answers.add(response.answer)
        child.check()
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        child.stop()
        rclpy.try_shutdown()
    engine_median, node_median = statistics.median(engine_ms), statistics.median(trips)
    return {'model': model_dir, 'weights': weights, 'image_max_side': image_max_side,
            'threads': threads, 'new_tokens': new_tokens, 'calls': calls,
            'engine_ms_median': round(engine_median, 1),
            'vqa_round_trip_ms_median': round(node_median, 1),
            'node_reported_latency_ms_median': round(statistics.median(inside), 1),
            'ratio': round(node_median / engine_median, 3),
            'same_answers': answers == {engine_answer},
            **machine_info()}
