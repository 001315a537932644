# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The inventory dashboard and alerts (库存预警) through the demo desk in
headless Chromium, as the store keeper.

The demo opens with a consumption history in some department stores, the
replenishment parameters computed from it and the alerts of the scheduled
check (fixtures/loader.py).  The store keeper opens 库存看板: the board
draws its three charts (alerts, stock value and turnover days by store)
with bars.  In 预警 the open alerts are listed with their Chinese titles and
severities; she opens one and acknowledges it (确认): its state becomes
acknowledged and she is recorded as the one who did (checked over JSON-RPC
as the administrator too).  In 库存状况 she chooses a department store with
a history in the context form: its materials are listed with their
status.

The demo site is reused between runs: each run acknowledges another open
alert.  Screenshots go to ``test-artifacts/inventory-*.png``."""
import re
from collections import Counter

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.desk import (
    ARTIFACTS, DESK_LANGUAGE, Rpc, active_tab, form_selection, labels,
    login, menu_path, new_page, open_menu_entry, wait_until, xml_id)

pytestmark = [pytest.mark.browser, pytest.mark.no_db]

KEEPER = 'storekeeper'
BOARD_ACTIONS = [
    'hrp_materials.act_alert_summary',
    'hrp_materials.act_store_value',
    'hrp_materials.act_store_turnover',
    ]
SHORT = ['out_of_stock', 'below_safety', 'below_minimum']
CHINESE = re.compile(r'[\u4e00-\u9fff]')
# The desk is slow under load: the charts and lists may take a while
TIMEOUT = 60


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f'inventory-{name}.png'))


def action_names(admin):
    "The names of the board's actions in the desk language, in order"
    ids = [xml_id(admin, name) for name in BOARD_ACTIONS]
    actions = admin('model.ir.action.act_window.read', ids, ['name'],
        {'language': DESK_LANGUAGE})
    names = {a['id']: a['name'] for a in actions}
    return [names[i] for i in ids]


def drawn_bars(pane):
    """The number of bars of the pane's chart that have an area (billboard
    draws a bar of no value as an empty path)"""
    return pane.locator('svg path.bb-bar').evaluate_all("""paths =>
        paths.filter(p => {
            const box = p.getBBox();
            return box.width > 0 && box.height > 0;
            }).length""")


def list_columns(page, tab, *strings):
    """The texts of the rows of the tab's list under the columns titled
    exactly strings, read at once (the list may be redrawn meanwhile);
    tests.desk.cell matches the start of a title: 预警 would match 预警类型
    too"""
    separator = page.evaluate("() => Sao.i18n.gettext(': ')")
    titles = [f'{string}{separator}' for string in strings]
    return tab.locator('table.tree tbody tr').evaluate_all("""
        (rows, titles) => rows.map(row => titles.map(title => {
            const cell = Array.from(row.querySelectorAll('td')).find(
                td => td.dataset.title === title);
            return cell ? cell.innerText.trim() : null;
            })).filter(texts => texts.every(text => text !== null))""",
        titles)


def choose(tab, field, text):
    """Choose the record named text (its name without its code) in the
    Many2One field of the tab's context form from the desk's completion.
    The desk completes only an emptied field (typed over, its record stays
    chosen); the field is emptied and text typed again when no completion
    shows (the form may be redrawn meanwhile)"""
    choice = tab.locator('.filter-box .dropdown-completion li.completion',
        has_text=text).first

    def chosen():
        value = field.input_value()
        # a chosen record shows its name, [code] name, not the text typed
        if value != text and text in value:
            return True
        field.click()
        field.press('Control+a')
        field.press('Backspace')
        if field.input_value():
            return False
        field.fill(text)
        try:
            choice.wait_for(timeout=5000)
            choice.click()
        except PlaywrightError:
            pass
        return False
    wait_until(chosen, timeout=TIMEOUT, interval=0.5,
        message=f"{text} was not chosen")


def pick_alert(rpc, context):
    """The first open alert of the store keeper's list (its default order)
    whose title no other open alert has"""
    alerts = rpc('model.hrp.alert.search_read', [('state', '=', 'open')],
        0, None, None, ['title', 'severity', 'kind', 'store'],
        dict(context, language=DESK_LANGUAGE))
    assert alerts, "the demo has no open alert left"
    titles = Counter(a['title'] for a in alerts)
    for alert in alerts:
        if titles[alert['title']] == 1:
            return alert, alerts
    pytest.fail("every open alert shares its title with another")


def history_store(admin, context):
    """A department store with a consumption history and materials short
    of stock: its id, its name and the short materials' statuses"""
    parameters = admin('model.hrp.replenishment.search_read', [
            ('basis', '=', 'history'),
            ('store.hrp_store_type', '=', 'department'),
            ], 0, None, [('id', 'ASC')], ['store'], context)
    stores = sorted({p['store'] for p in parameters})
    assert stores, "no department store has a consumption history"
    for store in stores:
        short = admin('model.hrp.stock.status.search_read',
            [('status', 'in', SHORT)], 0, None, None,
            ['product.rec_name', 'status'], dict(context, store=store))
        if short:
            name, = admin('model.stock.location.read', [store], ['name'],
                context)
            return store, name['name'], short
    pytest.fail("no department store with a history is short of stock")


def test_inventory_dashboard_and_alerts(desk, browser):
    users = {u['login']: u for u in desk['info']['logins']}
    admin = Rpc(desk['url'], desk['database'], 'admin',
        users['admin']['password'])
    keeper = users[KEEPER]
    as_keeper = Rpc(desk['url'], desk['database'], keeper['login'],
        keeper['password'])
    company, = admin('model.company.company.search', [], 0, 1, None, {})
    context = {'company': company}
    keeper_id, = admin('model.res.user.search',
        [('login', '=', KEEPER)], 0, 1, None, {})
    keeper_name = admin('model.res.user.read', [keeper_id], ['name'],
        {})[0]['name']

    flow = {
        'dashboard': menu_path(
            admin, 'hrp_materials.menu_inventory_dashboard'),
        'alerts': menu_path(admin, 'hrp_materials.menu_alert'),
        'status': menu_path(admin, 'hrp_materials.menu_stock_status'),
        'panes': action_names(admin),
        'severity': labels(admin, 'hrp.alert.summary', 'critical')[0],
        'title': labels(admin, 'hrp.alert', 'title')[0],
        'severities': labels(admin, 'hrp.alert', 'severity'),
        'state': labels(admin, 'hrp.alert', 'state')[1],
        'material': labels(admin, 'hrp.stock.status', 'product')[0],
        'statuses': labels(admin, 'hrp.stock.status', 'status'),
        }
    alert, open_alerts = pick_alert(as_keeper, context)
    store, store_name, short = history_store(admin, context)

    page, errors = new_page(browser)
    page.set_default_timeout(TIMEOUT * 1000)
    try:
        login(page, desk, keeper)

        # 库存看板: three panes, each with its chart drawn
        open_menu_entry(page, flow['dashboard'])
        tab = active_tab(page)
        panes = tab.locator('.board .board-action')
        wait_until(lambda: panes.count() == len(BOARD_ACTIONS),
            timeout=TIMEOUT,
            message="the dashboard does not show its three charts")
        for name in flow['panes']:
            pane = panes.filter(has=page.locator(
                    '.panel-heading', has_text=name))
            assert pane.count() == 1, f"no pane {name!r} on the dashboard"
            wait_until(lambda: drawn_bars(pane) > 0, timeout=TIMEOUT,
                message=f"the chart {name!r} draws no bar")
        # the alerts chart has a bar series per severity
        alerts_pane = panes.filter(has=page.locator(
                '.panel-heading', has_text=flow['panes'][0]))
        legend = alerts_pane.locator('.bb-legend-item').evaluate_all(
            'items => items.map(i => i.textContent.trim())')
        assert flow['severity'] in legend, legend
        screenshot(page, 'dashboard')

        # 预警: the open alerts, with their titles and severities
        open_menu_entry(page, flow['alerts'])
        tab = active_tab(page)
        rows = tab.locator('table.tree tbody tr')
        target = rows.filter(has_text=alert['title'])
        wait_until(lambda: target.count() == 1 or errors, timeout=TIMEOUT,
            message=f"the alert {alert['title']!r} is not listed")
        assert not errors, f"the alert list does not open: {errors}"
        titles = {a['title'] for a in open_alerts}
        severities = set(flow['severities'][1].values())
        shown = [(title, severity) for title, severity in list_columns(
                page, tab, flow['title'], flow['severities'][0]) if title]
        assert shown, "the alert list shows no row"
        for title, severity in shown:
            assert CHINESE.search(title), title
            assert title in titles, title
            assert severity in severities, (title, severity)
        screenshot(page, 'alerts')

        # one alert opened and acknowledged (确认)
        target.first.dblclick()
        button = tab.locator('.form button[name="acknowledge"]')
        button.wait_for()
        # the form shows the alert's record before the button acts on it
        wait_until(lambda: form_selection(tab, 'state')
            == flow['state']['open'], timeout=TIMEOUT,
            message="the alert's form does not show it open")
        button.click()
        wait_until(lambda: form_selection(tab, 'state')
            == flow['state']['acknowledged'], timeout=TIMEOUT,
            message="the form does not show the alert acknowledged")
        acknowledged_by = tab.locator(
            '.form input[name="acknowledged_by"]').first
        wait_until(lambda: acknowledged_by.input_value() == keeper_name,
            timeout=TIMEOUT,
            message="the form does not show who acknowledged the alert")
        screenshot(page, 'acknowledged')

        # 库存状况 of a department store with a history
        open_menu_entry(page, flow['status'])
        tab = active_tab(page)
        store_input = tab.locator('.filter-box input[name="store"]').first
        store_input.wait_for()
        # the context form's default store (the central store) arrives
        # after the form shows, and would replace a store typed before it
        wait_until(lambda: store_input.input_value() != '', timeout=TIMEOUT,
            message="the stock status form's default store did not arrive")
        choose(tab, store_input, store_name)
        # the list is searched again for the chosen store
        tab.locator(
            '.filter-box button[type="submit"]:visible').first.click()
        materials = {s['product.']['rec_name']: s['status'] for s in short}

        def listed():
            "{material: status} of the rows listed"
            return dict(list_columns(
                    page, tab, flow['material'], flow['statuses'][0]))
        statuses = flow['statuses'][1]
        expected = {m: statuses[s] for m, s in materials.items()}
        wait_until(lambda: listed() == expected, timeout=TIMEOUT,
            message=f"the short materials of {store_name} are not listed "
            f"with their status: {expected}")
        screenshot(page, 'stock-status')
        assert not errors, errors
    except BaseException:
        screenshot(page, 'failed')
        raise
    finally:
        page.close()

    # the administrator sees the alert acknowledged by the store keeper
    acknowledged, = admin('model.hrp.alert.read', [alert['id']],
        ['state', 'acknowledged_by', 'acknowledged_at'], context)
    assert acknowledged['state'] == 'acknowledged', acknowledged
    assert acknowledged['acknowledged_by'] == keeper_id, acknowledged
    assert acknowledged['acknowledged_at'], acknowledged
