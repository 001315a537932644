# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The demo desk in headless Debian Chromium: a nurse sees her own store
only.  The served site and the browser are the fixtures of tests/desk.py."""
import pytest

from tests.desk import ARTIFACTS, Rpc, login

pytestmark = [pytest.mark.browser, pytest.mark.no_db]


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
