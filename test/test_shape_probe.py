"""The shape probe (a check of how legible the 3D world's shapes are) runs end to end
and reports by pixel area."""
import pytest

pytest.importorskip('mujoco')


def test_the_shape_probe_runs_and_reports_by_pixel_area():
    from vla_ros.training.shape_probe import run
    report = run(frames=80, epochs=1, test_frames=40, workers=1, log=lambda _line: None)
    assert report['training_frames'] >= 1 and report['test_frames'] >= 1
    assert 0 <= report['shape'] <= 1 and 0 <= report['colour'] <= 1
    assert sum(v['n'] for v in report['by_pixels'].values()) == report['test_frames']
