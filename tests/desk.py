# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The demo desk served for the browser tests, and headless Chromium.

A demo site (``var/browser-test``, SQLite, the demo hospital) is built with
the ``hrp`` command once and rebuilt only when the modules or the fixtures
change; ``hrp serve`` runs it on a free port.  Both fixtures are session
wide (this module is a pytest plugin of the top-level conftest.py), so every
browser test file shares one server and one Chromium.  Screenshots are kept
in ``test-artifacts/``."""
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


def approve_pending(desk, users, admin, document, context):
    """Approve the pending tasks of document as a leader of the demo"""
    tasks = admin('model.hrp.approval.task.search', [
            ('document', '=', document),
            ('state', '=', 'pending'),
            ], 0, None, None, context)
    leaders = [u for u in users.values() if 'leader' in u['login']]
    for task in tasks:
        for user in leaders:
            rpc = Rpc(desk['url'], desk['database'],
                user['login'], user['password'])
            try:
                rpc('model.hrp.approval.task.approve', [task], context)
                break
            except RuntimeError:
                continue
        else:
            pytest.fail(f"no leader of the demo could approve task {task}")
    return tasks
