# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The demo desk in headless Debian Chromium.

A demo site (``var/browser-test``, SQLite, the demo hospital) is built with
the ``hrp`` command once and rebuilt only when the modules or the fixtures
change; ``hrp serve`` runs it on a free port for the session.  Screenshots
are kept in ``test-artifacts/``."""
import base64
import hashlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / 'test-artifacts'
SITE = 'browser-test'
CHROMIUM = '/usr/bin/chromium'
HRP = [sys.executable, '-m', 'hrp']

pytestmark = pytest.mark.browser


def _site_key():
    from hrp.site import modules_fingerprint
    digest = hashlib.sha256(modules_fingerprint().encode())
    for path in sorted((ROOT / 'fixtures').glob('*.py')):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _wait_http(url, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hrp serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


class Rpc:
    "A JSON-RPC client of the served site, as a desk user"

    def __init__(self, url, database, login, password):
        self.url = f'{url}/{database}/rpc/'
        self.auth = None
        user_id, session, _ = self('common.db.login',
            login, {'password': password}, 'en')
        self.auth = 'Session ' + base64.b64encode(
            f'{login}:{user_id}:{session}'.encode()).decode()

    def __call__(self, method, *params):
        headers = {'Content-Type': 'application/json'}
        if self.auth:
            headers['Authorization'] = self.auth
        request = urllib.request.Request(self.url, headers=headers,
            data=json.dumps({'id': 1, 'method': method,
                    'params': list(params)}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.load(response)
        if reply.get('error'):
            raise RuntimeError(reply['error'])
        return reply['result']


@pytest.fixture(scope='session')
def desk():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: make test installs it")
    subprocess.run([*HRP, 'install-sao'], check=True, cwd=ROOT)
    key_file = ROOT / 'var' / SITE / 'test-key'
    key = _site_key()
    if not (key_file.exists() and key_file.read_text() == key):
        subprocess.run([*HRP, 'site', 'create', '--name', SITE, '--force'],
            check=True, cwd=ROOT)
        key_file.write_text(key)
    info = json.loads((ROOT / 'var' / SITE / 'site.json').read_text())
    port = _free_port()
    url = f'http://127.0.0.1:{port}'
    process = subprocess.Popen(
        [*HRP, 'serve', '--name', SITE, '--port', str(port)],
        cwd=ROOT, start_new_session=True)
    try:
        _wait_http(url + '/', process)
        yield {'url': url, 'database': SITE, 'info': info}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope='session')
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=['--no-sandbox', '--disable-gpu',
                '--disable-background-networking'])
        yield browser
        browser.close()


def login(page, desk, user):
    page.goto(f"{desk['url']}/#{desk['database']}")
    page.fill('#login', user['login'])
    page.click('.login-dialog button[type=submit]')
    page.fill('input[type=password]', user['password'])
    page.keyboard.press('Enter')
    page.locator('#menu').wait_for()


def open_menu(page, *path):
    menu = page.locator('#menu')
    for name in path:
        menu.get_by_text(name, exact=True).click()


def list_rows(page):
    "The visible rows of the current tab's list, as lists of cell texts"
    tab = page.locator('#tabs .tab-pane.active')
    body = tab.locator('table.tree tbody').first
    body.locator('tr').first.wait_for()
    rows = []
    for row in body.locator('tr').all():
        cells = [c.strip() for c in row.locator('td').all_inner_texts()]
        if any(cells):
            rows.append(cells)
    return rows


def department_stores(desk):
    "The department stores by department name, read by the administrator"
    rpc = Rpc(desk['url'], desk['database'], 'admin', 'admin')
    stores = rpc('model.stock.location.search_read',
        [('hrp_store_type', 'in', ['department', 'high_value'])],
        0, None, None, ['name', 'hrp_department.name'], {})
    result = {}
    for store in stores:
        department = store['hrp_department.']['name']
        result.setdefault(department, set()).add(store['name'])
    return result


@pytest.mark.parametrize('role', ['nurse'])
def test_nurse_sees_only_her_department_store(desk, browser, role):
    users = [u for u in desk['info']['logins'] if u['role'] == role]
    user = users[0]
    stores = department_stores(desk)
    own = stores[user['department']]
    others = set().union(*(
            names for department, names in stores.items()
            if department != user['department']))
    assert own and others

    page = browser.new_page(locale='zh-CN',
        viewport={'width': 1280, 'height': 800})
    try:
        login(page, desk, user)
        open_menu(page, '物资管理', '库房')
        page.locator('#tabs').get_by_text('全部', exact=True).click()
        page.wait_for_timeout(500)
        rows = list_rows(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f'{role}-stores.png'))
    finally:
        page.close()

    seen = {cell for row in rows for cell in row}
    assert own <= seen, (own, rows)
    assert not (others & seen), (others & seen)
