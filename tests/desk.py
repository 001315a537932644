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
import re
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
DESK_LANGUAGE = 'zh_CN'
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


def wait_until(predicate, timeout=20, interval=0.3, message=None):
    "Return the first true value of predicate() or fail after timeout"
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(message or f"timed out waiting for {predicate}")
        time.sleep(interval)


def scan(page, field, text):
    """Type text into the scan field and end it with Enter, as a
    keyboard-wedge scanner does; wait until the form took it (the field is
    emptied)"""
    field.click()
    page.keyboard.type(text)
    page.keyboard.press('Enter')
    wait_until(lambda: field.input_value() == '',
        message=f"the scan {text!r} was not taken")


def scan_refused(page, field, text, pattern):
    """Type text into the scan field and end it with Enter; wait for the
    error dialog whose text matches pattern and return it (open)"""
    field.click()
    page.keyboard.type(text)
    page.keyboard.press('Enter')
    dialog = page.locator('.modal-dialog:visible',
        has_text=re.compile(pattern))
    dialog.wait_for()
    return dialog


def xml_id(rpc, name):
    module, fs_id = name.split('.')
    return rpc('model.ir.model.data.get_id', module, fs_id, {})


def menu_path(admin, name):
    "The labels of the menu entry and its parents, as the desk shows them"
    menu_id = xml_id(admin, name)
    path = []
    while menu_id:
        menu, = admin('model.ir.ui.menu.read', [menu_id], ['name', 'parent'],
            {'language': DESK_LANGUAGE})
        path.insert(0, menu['name'])
        menu_id = menu['parent']
    return path


def labels(rpc, model, field):
    "The string of the field and its selection labels in the desk language"
    definition = rpc(f'model.{model}.fields_get', [field],
        {'language': DESK_LANGUAGE})[field]
    selection = {}
    if definition['type'] == 'selection':
        selection = dict(definition['selection'])
    return definition['string'], selection


def active_tab(page):
    return page.locator('#tabs .tab-pane.active')


def cell(row, string):
    "The cell of the list row under the column titled string"
    return row.locator(f'td[data-title^="{string}"]')


def form_selection(tab, name):
    "The label shown by the selection widget of the form"
    return tab.locator(f'.form select[name="{name}"]').evaluate(
        's => s.selectedIndex >= 0 ? s.options[s.selectedIndex].text : ""')


def open_menu_entry(page, path):
    """Open the menu entry at path (the labels of menu_path), expanding
    its parents: each entry is looked for among the children of its
    parent, as menus of different parents share labels (Tryton's 采购,
    Purchase, and the hospital's 物资管理/采购)"""
    rows = page.locator('#menu tbody tr')

    def entries():
        "(label, indentation) of the menu rows"
        return rows.evaluate_all("""trs => trs.map(tr => {
            const label = tr.querySelector('div.column-char');
            const icon = tr.querySelector('.expander img');
            return [label ? label.title : null,
                icon ? parseFloat(icon.style.marginLeft) || 0 : 0];
            })""")

    def children(index):
        "The (index, label) of the entries right under the row at index"
        listing = entries()
        depth = listing[index][1]
        below = []
        for i in range(index + 1, len(listing)):
            if listing[i][1] <= depth:
                break
            below.append((i, listing[i]))
        if not below:
            return []
        child_depth = min(d for _, (_, d) in below)
        return [(i, label) for i, (label, d) in below if d == child_depth]

    wait_until(lambda: path[0] in [label for label, _ in entries()],
        message=f"the menu has no {path[0]}")
    index = [label for label, _ in entries()].index(path[0])
    for name in path[1:]:
        if not children(index):
            rows.nth(index).locator('.expander').click()
            wait_until(lambda: children(index),
                message=f"the menu {path} does not expand")
        index = next(i for i, label in children(index) if label == name)
    rows.nth(index).locator('div.column-char').click()


def new_page(chromium):
    page = chromium.new_page(locale='zh-CN',
        viewport={'width': 1280, 'height': 1000})
    errors = []
    page.on('pageerror', lambda error: errors.append(str(error)))
    return page, errors
