# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The equipment dashboard and a device's score trend through the demo
desk in headless Chromium, as the equipment engineer.

The demo scores the imaging devices for each of the last twelve months
(fixtures/loader.py, ``load_performance``).  The engineer opens 设备看板:
its four panes show, the average score by category drawn with bars and
last month's under-used or idle devices listed.  In 设备 she opens the CT
scored first last month and, from 打开相关记录, its 得分趋势: the graph draws
the composite score of its twelve months as a line.  Screenshots go to
``test-artifacts/equipment-*.png``."""
import pytest

from tests.desk import (
    ARTIFACTS, DESK_LANGUAGE, Rpc, active_tab, labels, login, menu_path,
    new_page, open_menu_entry, wait_until, xml_id)

pytestmark = [pytest.mark.browser, pytest.mark.no_db]

ENGINEER = 'engineer'
BOARD_ACTIONS = [
    'hrp_equipment.act_category_score',
    'hrp_equipment.act_score_flagged',
    'hrp_equipment.act_repair_open',
    'hrp_equipment.act_maintenance_overdue',
    ]
TIMEOUT = 60


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f'equipment-{name}.png'))


def action_names(admin, names):
    "The names of the actions in the desk language, in order"
    ids = [xml_id(admin, name) for name in names]
    actions = admin('model.ir.action.act_window.read', ids, ['name'],
        {'language': DESK_LANGUAGE})
    by_id = {a['id']: a['name'] for a in actions}
    return [by_id[i] for i in ids]


def drawn_bars(pane):
    "The number of bars of the pane's chart that have an area"
    return pane.locator('svg path.bb-bar').evaluate_all("""paths =>
        paths.filter(p => {
            const box = p.getBBox();
            return box.width > 0 && box.height > 0;
            }).length""")


def line_points(tab):
    """The number of points of the longest line the tab's chart draws
    (billboard draws a line as one path: a move then a segment a point)"""
    return tab.locator('svg path.bb-line').evaluate_all("""paths =>
        Math.max(0, ...paths.map(p => {
            const d = p.getAttribute('d') || '';
            return (d.match(/[ML]/g) || []).length;
            }))""")


def test_equipment_dashboard_and_trend(desk, browser):
    users = {u['login']: u for u in desk['info']['logins']}
    admin = Rpc(desk['url'], desk['database'], 'admin',
        users['admin']['password'])
    engineer = users[ENGINEER]
    company, = admin('model.company.company.search', [], 0, 1, None, {})
    context = {'company': company}
    # dates come over JSON-RPC as {'__class__': 'date', 'year': …}
    months = {(m['year'], m['month'], m['day']): m for m in (
            s['month'] for s in admin(
                'model.hrp.equipment.score.search_read', [], 0, None,
                None, ['month'], context))}
    assert len(months) == 12, sorted(months)
    last = months[max(months)]
    best, = admin('model.hrp.equipment.score.search_read', [
            ('month', '=', last), ('category', '=', 'ct'),
            ('rank', '=', 1)], 0, 1, None, ['equipment'], context)
    device, = admin('model.hrp.equipment.read', [best['equipment']],
        ['code', 'name'], context)
    flagged = admin('model.hrp.equipment.score.search', [
            ('month', '=', last),
            ['OR', ('under_used', '=', True), ('idle', '=', True)]],
        0, None, None, context)
    assert flagged, "the demo has no under-used or idle device"
    categories = admin('model.hrp.equipment.category.score.search_count',
        [('last_month', '=', True)], 0, None, context)
    flow = {
        'dashboard': menu_path(
            admin, 'hrp_equipment.menu_equipment_dashboard'),
        'equipment': menu_path(admin, 'hrp_equipment.menu_equipment_list'),
        'panes': action_names(admin, BOARD_ACTIONS),
        'trend': action_names(admin, ['hrp_equipment.act_score_trend'])[0],
        'month': labels(admin, 'hrp.equipment.score', 'month')[0],
        }

    page, errors = new_page(browser)
    page.set_default_timeout(TIMEOUT * 1000)
    try:
        login(page, desk, engineer)

        # 设备看板: four panes; the category chart draws its bars and
        # last month's under-used and idle devices are listed
        open_menu_entry(page, flow['dashboard'])
        tab = active_tab(page)
        panes = tab.locator('.board .board-action')
        wait_until(lambda: panes.count() == len(BOARD_ACTIONS),
            timeout=TIMEOUT,
            message="the dashboard does not show its four panes")

        def pane(name):
            found = panes.filter(has=page.locator(
                    '.panel-heading', has_text=name))
            assert found.count() == 1, f"no pane {name!r} on the dashboard"
            return found
        chart = pane(flow['panes'][0])
        wait_until(lambda: drawn_bars(chart) == categories, timeout=TIMEOUT,
            message=f"the category chart does not draw its {categories} "
            "bars of last month")
        months_shown = pane(flow['panes'][1]).locator(
            'table.tree tbody tr td[data-title^="%s"]' % flow['month'])
        last_text = '%04d-%02d-%02d' % (
            last['year'], last['month'], last['day'])

        def flagged_months():
            return {t.strip() for t in months_shown.all_inner_texts()} - {
                ''}
        try:
            wait_until(lambda: flagged_months() == {last_text},
                timeout=TIMEOUT,
                message="last month's under-used devices are not listed")
        finally:
            screenshot(page, 'board')
        assert not errors, f"the dashboard raised: {errors}"
        screenshot(page, 'dashboard')

        # 设备: the CT scored first, then its 得分趋势 from the related
        # records
        open_menu_entry(page, flow['equipment'])
        tab = active_tab(page)
        row = tab.locator('table.tree tbody tr').filter(
            has_text=device['code'])
        wait_until(lambda: row.count() == 1, timeout=TIMEOUT,
            message=f"{device['code']} is not listed")
        row.first.dblclick()
        tab.locator('.form input[name="code"]').wait_for()
        wait_until(lambda: tab.locator('.form input[name="code"]')
            .input_value() == device['code'], timeout=TIMEOUT,
            message="the device's form does not open")
        tab.locator('button#relate').click()
        try:
            tab.locator('.dropdown-menu a', has_text=flow['trend']).click()
        finally:
            screenshot(page, 'relate')
        wait_until(lambda: line_points(active_tab(page)) >= len(months),
            timeout=TIMEOUT,
            message="the trend draws no line of twelve months")
        assert not errors, f"the trend raised: {errors}"
        screenshot(page, 'trend')
    finally:
        page.close()
