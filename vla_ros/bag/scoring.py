"""Score a bag replay from what was published and what came back. Pure Python, no ROS.

Checks, per output path (captions, answers on the `answer` topic, `vqa` service replies):
- every output names a frame that was published (header stamp + frame_id);
- outputs arrive in frame order (a caption for frame 7 never after one for frame 9);
- answers equal the expected ones, and (when frames carry image ids) are about a frame
  that shows the image the question was about;
- captions equal golden ones (optional);
- frames that were published but never captioned are counted, not hidden.

All inputs are plain dicts (see `score_replay`), so a replay recorded to a bag, run live,
or written by hand can be scored alike. `problems()` turns a report into readable lines.
"""
from typing import Optional


def _key(stamp, frame_id=None) -> tuple:
    sec, nsec = stamp
    return (int(sec), int(nsec)) if frame_id is None else (int(sec), int(nsec), frame_id)


def _stamp_text(stamp) -> str:
    return f'{int(stamp[0])}.{int(stamp[1]):09d}'


def _rate(n: int, d: int) -> Optional[float]:
    return round(n / d, 4) if d else None


def _match_answers(questions, outputs, frame_index, image_ids, with_frame_id):
    """Pair outputs (in arrival order) with questions; returns (rows by question, stats)."""
    rows, stats = {}, {'header_mismatch': 0, 'out_of_order': 0, 'wrong_image': 0}
    unmatched = list(range(len(questions)))
    last_frame = -1
    for out in outputs:
        if 'index' in out:           # the asker knows which question it was
            i = out['index'] if out['index'] in unmatched else None
        else:                        # topic answers: first open question with that text
            i = next((j for j in unmatched if questions[j]['question'] == out['question']),
                     None)
        if i is None:
            continue                 # an answer to a question not in the bag: ignored
        unmatched.remove(i)
        key = _key(out['stamp'], out.get('frame_id') if with_frame_id else None)
        frame = frame_index.get(key) if out['success'] else None
        expected = questions[i].get('answer')
        row = {'answer': out['answer'], 'success': out['success'], 'error': out['error'],
               'stamp': list(out['stamp']), 'frame': frame,
               'correct': expected is not None and out['success'] and out['answer'] == expected}
        if out['success']:
            if frame is None:
                stats['header_mismatch'] += 1
            else:
                row['out_of_order'] = frame < last_frame
                stats['out_of_order'] += row['out_of_order']
                last_frame = max(last_frame, frame)
                row['image_id'] = image_ids[frame]
                want = questions[i].get('image_id')
                if want is not None and image_ids[frame] is not None:
                    row['wrong_image'] = image_ids[frame] != want
                    stats['wrong_image'] += row['wrong_image']
        rows[i] = row
    return rows, stats


def _answer_summary(questions, rows, stats) -> dict:
    graded = [i for i, q in enumerate(questions) if q.get('answer') is not None]
    correct = sum(rows[i]['correct'] for i in graded if i in rows)
    return {'questions': len(questions), 'answered': len(rows),
            'missing': len(questions) - len(rows),
            'succeeded': sum(r['success'] for r in rows.values()),
            'correct': correct, 'accuracy': _rate(correct, len(graded)), **stats}


def score_replay(frames, questions, captions, answers, vqa=None, golden=None) -> dict:
    """Score one replay.

    frames:    [{stamp: [sec, nanosec], frame_id, image_id (optional)}] as published
    questions: [{question, answer (expected; None if unknown), image_id (optional)}]
    captions:  [{stamp, frame_id, caption}] in arrival order
    answers:   [{stamp, frame_id, question, answer, success, error}] in arrival order
    vqa:       [{index (of the question), stamp, answer, success, error}] in arrival order
    golden:    {str(image_id): caption} expected for every captioned frame (optional)
    """
    index = {}
    for i, f in enumerate(frames):
        index.setdefault(_key(f['stamp'], f['frame_id']), i)
        index.setdefault(_key(f['stamp']), i)   # vqa replies carry only the stamp
    image_ids = [f.get('image_id') for f in frames]

    caption_rows, captioned, last = [], set(), -1
    cstats = {'n': len(captions), 'header_mismatch': 0, 'out_of_order': 0, 'repeated': 0}
    if golden is not None:
        cstats['golden_mismatch'] = 0
    for c in captions:
        frame = index.get(_key(c['stamp'], c['frame_id']))
        row = {'stamp': list(c['stamp']), 'frame_id': c['frame_id'], 'caption': c['caption'],
               'frame': frame}
        if frame is None:
            cstats['header_mismatch'] += 1
        else:
            cstats['repeated'] += frame in captioned
            cstats['out_of_order'] += frame <= last and frame not in captioned
            captioned.add(frame)
            last = max(last, frame)
            row['image_id'] = image_ids[frame]
            if golden is not None and image_ids[frame] is not None:
                row['expected'] = golden.get(str(image_ids[frame]))
                cstats['golden_mismatch'] += row['expected'] != c['caption']
        caption_rows.append(row)

    topic_rows, topic_stats = _match_answers(questions, answers, index, image_ids, True)
    vqa_rows, vqa_stats = _match_answers(questions, vqa or [], index, image_ids, False)
    report = {
        'frames': {'published': len(frames), 'captioned': len(captioned),
                   'not_captioned': len(frames) - len(captioned),
                   'caption_coverage': _rate(len(captioned), len(frames))},
        'captions': cstats,
        'answer_topic': _answer_summary(questions, topic_rows, topic_stats),
        'vqa_service': _answer_summary(questions, vqa_rows, vqa_stats) if vqa is not None
        else None,
        'questions': [{'index': i, 'question': q['question'], 'expected': q.get('answer'),
                       'image_id': q.get('image_id'), 'topic': topic_rows.get(i),
                       'vqa': vqa_rows.get(i)} for i, q in enumerate(questions)],
        'caption_rows': caption_rows,
    }
    report['accuracy'] = report['answer_topic']['accuracy']
    report['vqa_accuracy'] = report['vqa_service']['accuracy'] if vqa is not None else None
    return report


def problems(report: dict) -> list:
    """One readable line per thing that differs from expectations (empty = all good).

    Answers: expected vs got per question, with the frame it was about; captions: golden vs
    got per frame; plus headers that match no frame and outputs out of frame order.
    """
    lines = []

    def where(row):
        if row.get('frame') is None:
            return f"frame ? (stamp {_stamp_text(row['stamp'])} was never published)"
        image = f" image {row['image_id']}" if row.get('image_id') is not None else ''
        return f"frame #{row['frame']}{image}"

    for q in report['questions']:
        for path in ('topic', 'vqa'):
            row = q[path]
            image = f" (image {q['image_id']})" if q['image_id'] is not None else ''
            label = f"[{'answer topic' if path == 'topic' else 'vqa service'}] " \
                    f"q#{q['index']} {q['question']!r}{image}"
            if row is None:
                if path == 'topic' or report['vqa_service'] is not None:
                    want = f"expected {q['expected']!r}, " if q['expected'] is not None else ''
                    lines.append(f'{label}: {want}got no answer')
                continue
            got = row['answer'] if row['success'] else f"error: {row['error']}"
            if q['expected'] is not None and not row['correct']:
                lines.append(f"{label}: expected {q['expected']!r}, got {got!r} "
                             f"[{where(row) if row['success'] else 'no frame'}]")
            if row.get('wrong_image'):
                lines.append(f'{label}: answered about the wrong image: {where(row)}')
            if row.get('out_of_order'):
                lines.append(f'{label}: answer about {where(row)} arrived after one about a '
                             'later frame')
            if row['success'] and row.get('frame') is None:
                lines.append(f'{label}: header matches no published frame '
                             f"(stamp {_stamp_text(row['stamp'])})")
    seen, last = set(), -1
    for c in report['caption_rows']:
        if c['frame'] is None:
            lines.append(f"[caption] header {c['frame_id']!r} @ {_stamp_text(c['stamp'])} "
                         f"matches no published frame: {c['caption']!r}")
            continue
        if c['frame'] <= last and c['frame'] not in seen:
            lines.append(f"[caption] {where(c)} arrived after a caption of frame #{last}")
        if c['frame'] in seen:
            lines.append(f'[caption] {where(c)} captioned twice')
        seen.add(c['frame'])
        last = max(last, c['frame'])
        if 'expected' in c and c['expected'] != c['caption']:
            lines.append(f"[caption] {where(c)}: expected {c['expected']!r}, "
                         f"got {c['caption']!r}")
    return lines


def summary_text(report: dict) -> str:
    """A few human-readable lines: accuracy per path and what happened to the frames."""
    f, c = report['frames'], report['captions']
    lines = []
    for name, key in (('answer topic', 'answer_topic'), ('vqa service', 'vqa_service')):
        s = report[key]
        if s is None:
            continue
        acc = (f"accuracy {s['accuracy']:.4f}  ({s['correct']}/{s['questions']} correct, "
               if s['accuracy'] is not None else
               f"no expected answers  ({s['questions']} questions, ")
        lines.append(f"{name:12s}: {acc}{s['missing']} unanswered, "
                     f"{s['succeeded']} succeeded)")
    reached = (f"{f['reached_node']} reached vla_node ({f['lost_before_node']} lost on the "
               'way), ' if 'reached_node' in f else '')
    lines.append(f"frames      : {f['published']} published, {reached}{f['captioned']} "
                 f"captioned, {f['not_captioned']} not captioned")
    lines.append(f"captions    : {c['n']} ({c['header_mismatch']} with an unknown header, "
                 f"{c['out_of_order']} out of order)")
    return '\n'.join(lines)
