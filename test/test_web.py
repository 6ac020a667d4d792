"""The operator page in a real headless browser (Debian's Chromium + ChromeDriver).

The nodes run over real DDS in this process; the browser loads the page from the web
node, sees a camera frame, and a question typed into the box gets the right answer and
an attention map on the page. The screenshot goes to $VLA_ROS_SCREENSHOT (the README's
docs/web.png comes from `scripts/screenshots.sh`) or the test's temporary directory.
Skipped where Chromium is not installed (scripts/setup.sh installs it when run as root).
"""
import json
import os
import shutil
import urllib.error
import urllib.request

import pytest

rclpy = pytest.importorskip('rclpy')
webdriver = pytest.importorskip('selenium.webdriver')

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from test_ros_nodes import header, Probe, questions_about, start  # noqa: E402
from vla_ros.data.easy_vqa import load_split  # noqa: E402
from vla_ros.ros.image_conversion import rgb_to_image  # noqa: E402
from vla_ros.ros.vla_node import VLANode  # noqa: E402
from vla_ros.ros.vqa_service_node import VQAServiceNode  # noqa: E402
from vla_ros.ros.web_node import WebNode  # noqa: E402

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
CHROMEDRIVER = shutil.which('chromedriver') or '/usr/bin/chromedriver'
TIMEOUT_S = 30


def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip('Chromium / ChromeDriver not installed (Debian: chromium chromium-driver)')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--window-size=1400,900'):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def http(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def graph(ros_executor):
    split = load_split('test')
    vla = start(ros_executor, VLANode, caption_rate=5.0)
    vqa = start(ros_executor, VQAServiceNode)
    web = start(ros_executor, WebNode, port=0)
    probe = Probe(ros_executor)
    frame = rgb_to_image(split.images[4], header(40))
    for node in (vla, vqa, web):
        probe.send_frame(node, frame)
    # A live camera (new stamps, as a driver's): the nodes answer only about frames younger
    # than max_frame_age (2 s), and a browser can take longer than that to start on a busy
    # machine.
    stamps = iter(range(41, 10**6))
    probe.node.create_timer(0.2, lambda: probe.image_pub.publish(
        rgb_to_image(split.images[4], header(next(stamps)))))
    return split, web, probe


def test_endpoints_answer_or_say_why(graph):
    split, web, probe = graph
    base = f'http://127.0.0.1:{web.port}'
    status, page = http(base + '/')
    assert status == 200 and b'vla_ros operator' in page
    assert b'http://' not in page and b'https://' not in page   # no external assets
    (question, expected), = questions_about(split, 4, 1)
    status, body = http(base + '/ask', {'question': question})
    reply = json.loads(body)
    assert status == 200 and reply['success'] and reply['answer'] == expected
    assert reply['attention'].startswith('data:image/png;base64,')
    status, body = http(base + '/ask', {'question': '   '})
    assert status == 200 and json.loads(body)['error'] == 'question is empty'
    status, body = http(base + '/ask', ['not', 'an', 'object'])
    assert status == 400 and 'JSON object' in json.loads(body)['error']
    status, body = http(base + '/nope')
    assert status == 404
    state = json.loads(http(base + '/state.json')[1])
    assert state['frames'] is True
    status, body = http(base + '/stop', {})
    assert status == 200 and json.loads(body)['success']
    found = json.loads(http(base + '/ground', {'phrase': 'red circle'})[1])
    assert found['success'] and found['error'] == '' and len(found['boxes']) <= 1
    for b in found['boxes']:
        assert len(b['box']) == 4 and len(b['point']) == 2 and 0.5 <= b['score'] <= 1.0
    refused = json.loads(http(base + '/ground', {'phrase': 'the purple unicorn'})[1])
    assert not refused['success'] and "'unicorn'" in refused['error']
    assert json.loads(http(base + '/ground', {'phrase': ' '})[1])['error'] == 'phrase is empty'


def test_page_in_headless_chromium_answers_a_typed_question(graph, tmp_path):
    split, web, probe = graph
    driver = browser()
    try:
        driver.get(f'http://127.0.0.1:{web.port}/')
        wait = WebDriverWait(driver, TIMEOUT_S)
        wait.until(lambda d: d.execute_script(
            "const i = document.getElementById('frame'); return i.naturalWidth > 0"))
        wait.until(lambda d: d.find_element(By.ID, 'caption').text != '')
        (question, expected), = questions_about(split, 4, 1)
        box = driver.find_element(By.ID, 'question')
        box.send_keys(question)
        box.submit()
        # Whatever the page shows once the reply is in (an error too), then compare: a
        # failure says what the page said, not only that the answer never came.
        wait.until(lambda d: d.find_element(By.ID, 'answer').text not in ('', '\u2026'))
        assert driver.find_element(By.ID, 'answer').text == expected
        assert 'confidence' in driver.find_element(By.ID, 'confidence').text
        wait.until(expected_conditions.visibility_of_element_located((By.ID, 'attention')))
        wait.until(lambda d: 'vla_ros: /vla_node' in d.find_element(By.ID, 'diag').text)
        path = os.environ.get('VLA_ROS_SCREENSHOT') or str(tmp_path / 'web.png')
        assert driver.save_screenshot(path)
        assert os.path.getsize(path) > 10_000
        print(f'\nscreenshot: {path}')
    finally:
        driver.quit()
