"""`vla-ros bench-ros`, parts 1 and 2: `/vqa` round trips against the DDS floor, and
captions while a 640x480 camera streams at 30 Hz into `vla_node`."""
import time

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..msg import Caption
from ..ros.params import CLIENT_QOS
from ..srv import VQA
from .bench_harness import (CAMERA_HZ, Camera, camera_frames, CAPTION_GRACE_S,
                            CAPTION_WARMUP_S, cpu_seconds, percentiles_ms, QUESTION, spin_for,
                            status_mb, TARGET_P50_MS, timed_call, wait_for, WARMUP_CALLS)


# -- 1. /vqa round trips --------------------------------------------------------------------
def _series_report(rt, floor, server, requests, responses, succeeded) -> dict:
    rt_p, floor_p = percentiles_ms(rt, 50, 99), percentiles_ms(floor, 50, 99)
    paired = [a - b for a, b in zip(rt, floor)]
    report = {
        'round_trip_ms': rt_p,
        'floor_ms': floor_p,
        # time inside the node's service callback (conversion + model), from the response
        'server_ms': percentiles_ms(server, 50, 99),
        'over_floor_p50_ms': None, 'ratio_p50': None, 'meets_target_p50': None,
        'paired_difference_p50_ms': percentiles_ms(paired, 50)['p50'],
        'requests': requests, 'responses': responses, 'succeeded': succeeded,
    }
    if rt and floor:
        report['over_floor_p50_ms'] = round(rt_p['p50'] - floor_p['p50'], 3)
        report['ratio_p50'] = round(rt_p['p50'] / floor_p['p50'], 2)
        report['meets_target_p50'] = rt_p['p50'] <= TARGET_P50_MS
    return report


def bench_vqa(executor, node, vqa_child, empty_child, calls: int, frame, request_image):
    """Round trips of /vqa and of the empty service; the two are called alternately so
    that load changes on the machine (and DDS warm-up) affect both alike."""
    camera = node.create_publisher(
        type(frame), 'image',
        QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                   reliability=ReliabilityPolicy.RELIABLE))
    vqa = node.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
    empty = node.create_client(VQA, 'empty_vqa', qos_profile=CLIENT_QOS)

    def answers_about_the_frame():
        # Its best-effort camera subscription hears only frames sent after discovery and
        # loses most 640x480 ones (see run_benchmark): publish until one gets through.
        if not vqa.service_is_ready():
            return False
        camera.publish(frame)
        spin_for(executor, 0.2)
        response = timed_call(executor, vqa, VQA.Request(question=QUESTION))[1]
        return getattr(response, 'success', False)

    wait_for(executor, vqa_child, answers_about_the_frame, 'no answer about a camera frame')
    wait_for(executor, empty_child, empty.service_is_ready, 'no empty_vqa service')
    series = {'cached_frame': VQA.Request(question=QUESTION),
              'request_image_64': VQA.Request(question=QUESTION, image=request_image)}
    report = {}
    for name, request in series.items():
        rt, floor, server = [], [], []
        responses = succeeded = 0
        for i in range(WARMUP_CALLS + calls):
            floor_ms, floor_response = timed_call(executor, empty, request)
            rt_ms, response = timed_call(executor, vqa, request)
            if i < WARMUP_CALLS:
                continue
            if floor_response is not None:
                floor.append(floor_ms)
            if response is not None:
                responses += 1
                rt.append(rt_ms)
                server.append(response.latency_ms)
                succeeded += bool(response.success)
        report[name] = _series_report(rt, floor, server, calls, responses, succeeded)
    node.destroy_publisher(camera)
    return report


# -- 2. captions while a camera streams ------------------------------------------------------
def bench_captions(executor, node, vla_child, duration: float, ns: str = '') -> dict:
    """Stream the camera into the vla_node whose topics are under namespace `ns`."""
    received = []                       # (perf_counter, stamp key, node's latency_ms)

    def on_caption(msg):
        s = msg.header.stamp
        received.append((time.perf_counter(), (s.sec, s.nanosec), msg.latency_ms))

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE)   # params.OUTPUT_QOS
    sub = node.create_subscription(Caption, f'{ns}/caption', on_caption, qos)
    frames = camera_frames()
    # RELIABLE, depth 1, like image_source: heard by reliable and best-effort subscribers.
    pub = node.create_publisher(type(frames[0]), f'{ns}/image', QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE))
    # The node subscribes only after loading the model, so discovery means it is ready;
    # a first caption is not waited for (best-effort subscribers may never get a frame).
    wait_for(executor, vla_child, lambda: node.count_subscribers(f'{ns}/image') > 0
             and node.count_publishers(f'{ns}/caption') > 0, 'no camera subscription')
    camera = Camera(pub, frames, CAMERA_HZ)
    camera.start()
    try:
        spin_for(executor, CAPTION_WARMUP_S)
        cpu0, own0 = cpu_seconds(vla_child.pid), time.process_time()
        t0 = time.perf_counter()
        spin_for(executor, duration)
        t1 = time.perf_counter()
        cpu1, own1 = cpu_seconds(vla_child.pid), time.process_time()
        memory = status_mb(vla_child.pid)
        spin_for(executor, CAPTION_GRACE_S)   # captions of the window's last frames
    finally:
        camera.halt.set()
        camera.join()
    node.destroy_subscription(sub)
    node.destroy_publisher(pub)
    window = t1 - t0
    # Frames are counted by when they were published, captions by when they arrived.
    in_window = {key for key, t in camera.sent.items() if t0 <= t <= t1}
    captioned = {key: (t, ms) for t, key, ms in received if key in in_window}
    latency = [(t - camera.sent[key]) * 1000 for key, (t, _) in captioned.items()]
    return {
        'window_s': round(window, 3),
        'camera_hz': round(len(in_window) / window, 2),
        'captions_per_s': round(sum(1 for t, _, _ in received if t0 <= t <= t1) / window, 2),
        'frames_published': len(in_window),
        'frames_captioned': len(captioned),
        'frames_skipped': len(in_window) - len(captioned),
        'latency_ms': percentiles_ms(latency, 50, 95),
        'node_inference_ms': percentiles_ms([ms for _, ms in captioned.values()], 50, 95),
        'captions_of_unknown_frames': sum(1 for _, key, _ in received
                                          if key not in camera.sent),
        'node_cpu_percent': round(100 * (cpu1 - cpu0) / window, 1),
        'bench_process_cpu_percent': round(100 * (own1 - own0) / window, 1),
        'node_memory': memory,
    }
