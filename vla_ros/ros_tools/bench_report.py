"""The plain-text summaries `vla-ros bench-ros` prints (without --json)."""


def backend_summary(r: dict) -> str:
    lines = [f"{r['machine']['cpu']} ({r['machine']['cores']} cores), "
             f"{r['machine']['node_torch_threads']} inference thread(s) per node",
             'backend        cold start s  /vqa p50  p99 ms   vqa_service RSS MB  '
             'captions/s  vla_node RSS MB  libtorch mapped']
    for name, b in r['backends'].items():
        rt = b['vqa']['round_trip_ms']
        lines.append(f"{name:14s}{b['cold_start_s']['median']:12.2f}{rt['p50']:10.2f}"
                     f"{rt['p99']:8.2f}{b['vqa_service_memory']['rss_mb']:18.1f}"
                     f"{b['captions_per_s']:14.2f}{b['vla_node_memory']['rss_mb']:16.1f}   "
                     f"{b['libtorch_mapped']}")
    return '\n'.join(lines)


def summary(r: dict) -> str:
    lines = [f"{r['machine']['cpu']} ({r['machine']['cores']} cores), torch "
             f"{r['machine']['torch']}, {r['machine']['node_torch_threads']} torch thread(s)",
             f"/vqa round trip, {r['settings']['calls']} calls each (ms):"
             "            p50      p99   floor p50  floor p99  server p50"]
    for name, s in r['vqa'].items():
        rt = s['round_trip_ms']
        fl = s['floor_ms']
        lines.append(f"  {name:28s}{rt['p50']:9.2f}{rt['p99']:9.2f}{fl['p50']:11.2f}"
                     f"{fl['p99']:11.2f}{s['server_ms']['p50']:11.2f}   ({s['responses']}/"
                     f"{s['requests']} answered, x{s['ratio_p50']} floor)")
    for key, qos in (('captions', 'default best_effort'), ('captions_reliable', 'reliable')):
        c = r[key]
        lines.append(f"captions, camera QoS {qos}: {c['captions_per_s']}/s with the camera at "
                     f"{c['camera_hz']} Hz; latency p50 {c['latency_ms']['p50']} ms, p95 "
                     f"{c['latency_ms']['p95']} ms; {c['frames_captioned']} of "
                     f"{c['frames_published']} frames captioned")
    m = r['memory']
    ref = m['reference']
    lines.append(f"RSS MB: vqa_service {m['vqa_service']['rss_mb']}, vla_node "
                 f"{m['vla_node']['rss_mb']}, empty service {m['empty_service']['rss_mb']}; "
                 f"python {ref['python']['rss_mb']}, import rclpy "
                 f"{ref['import_rclpy']['rss_mb']}, import torch {ref['import_torch']['rss_mb']}"
                 f", weights file {ref['weights_file_mb']}")
    lines.append('steps of one process building up a node (MB): ' + ', '.join(
        f'{k} {v}' for k, v in ref['engine_process_step_mb'].items()))
    return '\n'.join(lines)
