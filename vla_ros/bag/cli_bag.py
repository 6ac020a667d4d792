"""`vla-ros bag play|record|info|fixtures` and `vla-ros eval-bag`.

Registered in vla_ros/cli.py by add_bag_commands(). `bag info` and `bag fixtures` need
only rosbags; play, record and eval-bag need ROS 2 (rclpy), imported when they run.
"""
import importlib
import json
import sys
import time

from .bag_io import BagError, DEFAULT_STORAGE, STORAGES

_ROS_HINT = 'run scripts/setup.sh, then source scripts/env.sh (or source your ROS 2 workspace)'


def _ros(module: str):
    """Import vla_ros.<module> (a ROS module, e.g. 'ros_tools.bag_player'), explaining what
    is missing on a pip-only install."""
    try:
        return importlib.import_module(f'vla_ros.{module}')
    except ImportError as e:
        raise SystemExit(f'error: this command needs ROS 2 ({e}); {_ROS_HINT}')


def _progress(**kwargs):
    from tqdm import tqdm
    return tqdm(disable=None, file=sys.stderr, **kwargs)   # None: only on a terminal


def cmd_info(args):
    from .bag_io import bag_summary, format_summary
    try:
        summary = bag_summary(args.bag)
    except BagError as e:
        raise SystemExit(f'error: {e}')
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))


def cmd_fixtures(args):
    from .fixtures import write_all
    for name, path in write_all(args.out).items():
        print(f'{name}: {path}')


def cmd_play(args):
    player_mod = _ros('ros_tools.bag_player')
    import rclpy
    rclpy.init()
    player = None
    try:
        player = player_mod.BagPlayer(args.bag, topics=args.topics,
                                      remap=player_mod.parse_remaps(args.remap))
        if args.wait_for_subscribers and not player.wait_for_subscribers(
                {t: 1 for t in player.pubs}, args.wait_for_subscribers):
            print(f'warning: not every topic has a subscriber after '
                  f'{args.wait_for_subscribers:g} s; playing anyway', file=sys.stderr)
        time.sleep(args.delay)   # let subscribers discover the new publishers first
        bar = _progress(total=None if args.loop else player.message_count(), unit='msg')
        try:
            # Ctrl-C: rclpy's signal handler shuts the context down; play() then returns
            stats = player.play(args.rate, loops=0 if args.loop else 1, progress=bar)
        finally:
            bar.close()
        if rclpy.ok():
            player.wait_for_acks()
        print(f"played {sum(stats['published'].values())} messages "
              f"({stats['passes']} pass(es); publishing ran late by {stats['late_p50_ms']} ms "
              f"median, {stats['late_max_ms']} ms max)", file=sys.stderr)
    except (BagError, ValueError) as e:
        raise SystemExit(f'error: {e}')
    except KeyboardInterrupt:
        pass
    finally:
        if player is not None:
            player.destroy_node()
        rclpy.try_shutdown()


def cmd_record(args):
    if not (args.topics or args.all):
        raise SystemExit('error: name the topics to record (--topics ...) or give --all')
    recorder_mod = _ros('ros_tools.bag_recorder')
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    rclpy.init()
    recorder = executor = None
    bar = _progress(unit='msg', desc='recording')
    try:
        recorder = recorder_mod.BagRecorder(args.out, topics=args.topics or (),
                                            all_topics=args.all, storage=args.storage,
                                            on_message=lambda _name: bar.update(1))
        executor = SingleThreadedExecutor()
        executor.add_node(recorder)
        print(f'recording to {args.out}; Ctrl-C to stop', file=sys.stderr, flush=True)
        end = time.monotonic() + args.duration if args.duration else None
        while rclpy.ok() and (end is None or time.monotonic() < end):
            executor.spin_once(timeout_sec=0.1)
    except BagError as e:
        raise SystemExit(f'error: {e}')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        bar.close()
        if recorder is not None:
            counts = recorder.close()   # writes metadata.yaml: the bag is complete
            for topic in recorder.not_seen():
                print(f'warning: {topic} never appeared; not in the bag', file=sys.stderr)
            print(f'wrote {sum(counts.values())} messages to {args.out}: '
                  + (', '.join(f'{t} {n}' for t, n in sorted(counts.items())) or 'none'),
                  file=sys.stderr)
            recorder.destroy_node()
        if executor is not None:
            executor.shutdown()
        rclpy.try_shutdown()


def cmd_eval_bag(args):
    bag_eval, runner = _ros('ros_tools.bag_eval'), _ros('ros.runner')
    from .scoring import problems, summary_text
    try:
        report = bag_eval.evaluate_bag(
            args.bag, checkpoint=args.checkpoint or '', threads=args.threads,
            caption_rate=args.caption_rate, rate=args.rate, image_topic=args.image_topic,
            question_topic=args.question_topic, expected=args.expected, record=args.record,
            progress=True, sync=args.sync)
    except (BagError, ValueError, TimeoutError, OSError) + runner.STARTUP_ERRORS as e:
        raise SystemExit(f'error: {e}')
    lines = problems(report)
    if not args.details:
        report.pop('caption_rows')
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(summary_text(report))
        for line in lines[:args.show]:
            print('  ' + line)
        if len(lines) > args.show:
            print(f'  ... and {len(lines) - args.show} more (--json for all)')
    if args.min_accuracy is not None and (report['accuracy'] or 0.0) < args.min_accuracy:
        sys.exit(1)


def add_bag_commands(sub) -> None:
    """Add `bag` (play, record, info, fixtures) and `eval-bag` to the CLI's subparsers."""
    bag = sub.add_parser('bag', help='play, record and inspect ROS 2 bags (no rosbag2 needed)')
    bsub = bag.add_subparsers(dest='bag_command', required=True)

    p = bsub.add_parser('play', help="publish a bag's messages with their recorded timing")
    p.add_argument('bag', help='bag directory (or a .mcap / .db3 file)')
    p.add_argument('--rate', type=float, default=1.0, help='speed factor (default 1)')
    p.add_argument('--loop', action='store_true', help='start again at the end, until Ctrl-C')
    p.add_argument('--topics', nargs='+', help='only these topics (default: all)')
    p.add_argument('--remap', nargs='+', default=[], metavar='FROM:=TO',
                   help='publish a bag topic under another name, e.g. '
                   '/camera/image_raw:=/image')
    p.add_argument('--delay', type=float, default=0.5,
                   help='seconds to wait for subscribers before the first message '
                   '(default 0.5)')
    p.add_argument('--wait-for-subscribers', dest='wait_for_subscribers', type=float,
                   default=0.0, metavar='SECONDS',
                   help='first wait (up to SECONDS) until every played topic has a subscriber')
    p.set_defaults(func=cmd_play)

    r = bsub.add_parser('record', help='write topics to a new bag until Ctrl-C or --duration')
    r.add_argument('out', help='bag directory to create')
    r.add_argument('--topics', nargs='+', help='topics to record')
    r.add_argument('--all', action='store_true', help='record every topic that appears')
    r.add_argument('--storage', choices=tuple(STORAGES), default=DEFAULT_STORAGE,
                   help='storage format (default %(default)s)')
    r.add_argument('--duration', type=float, help='stop after this many seconds')
    r.set_defaults(func=cmd_record)

    i = bsub.add_parser('info', help='topics, types, counts and duration of a bag')
    i.add_argument('bag')
    i.add_argument('--json', action='store_true', help='print JSON')
    i.set_defaults(func=cmd_info)

    f = bsub.add_parser('fixtures', help='write the four easy-VQA test bags (mcap/sqlite3, '
                        'raw/compressed) with their expected answers')
    f.add_argument('out', help='directory to write them into')
    f.set_defaults(func=cmd_fixtures)

    e = sub.add_parser('eval-bag', help='replay a bag with questions through the nodes and '
                       'score their answers')
    e.add_argument('bag')
    e.add_argument('--expected', help='expected answers JSON (default: '
                   '<bag>/expected_answers.json when present)')
    e.add_argument('--rate', type=float, default=1.0, help='replay speed factor (default 1)')
    e.add_argument('--image-topic', dest='image_topic',
                   help='camera topic (default: the one Image/CompressedImage topic)')
    e.add_argument('--question-topic', dest='question_topic',
                   help='std_msgs/String question topic (default: */question)')
    e.add_argument('--caption-rate', dest='caption_rate', type=float, default=20.0,
                   help='vla_node caption_rate during the replay (default 20; 0 = none)')
    e.add_argument('--sync', action='store_true',
                   help='deterministic replay: wait until each frame reached the nodes and '
                   'was captioned, and each question was answered, before going on')
    e.add_argument('--record', help='also record the captions and answers to this new bag')
    e.add_argument('--checkpoint', help='checkpoint directory (default: bundled model)')
    e.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    e.add_argument('--json', action='store_true', help='print the report as JSON')
    e.add_argument('--details', action='store_true', help='include every caption in the JSON')
    e.add_argument('--show', type=int, default=20, help='problems listed in text mode')
    e.add_argument('--min-accuracy', dest='min_accuracy', type=float,
                   help='exit with status 1 when the answer accuracy is below this')
    e.set_defaults(func=cmd_eval_bag)
