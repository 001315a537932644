# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Create and update site databases, in-process (the equivalent of
``trytond-admin``, followed by the desk language and the demo hospital).

trytond reads its configuration when its modules are imported, so every
function here configures trytond (``configure``) before importing the rest of
it, and a process builds at most one site."""
import logging
import os
import tempfile
import time
from contextlib import contextmanager

from hrp import (
    ADMIN_EMAIL, ADMIN_LOGIN, DEMO_ADMIN_PASSWORD, DEMO_SEED, DESK_LANGUAGE,
    MODULES)
from hrp.site import SiteError, modules_fingerprint, now

__all__ = ['create', 'update']

# Records counted in the summary of a new site: (model, label).
SUMMARY_MODELS = [
    ('hrp.department', "departments"),
    ('res.user', "users"),
    ('product.product', "materials (product variants)"),
    ('party.party', "parties (suppliers, manufacturers, hospital)"),
    ('stock.location', "stock locations"),
    ('stock.lot', "lots"),
    ('hrp.equipment', "large equipment"),
    ]


def configure(site, verbose=0):
    "Point trytond at the site's configuration files."
    files = site.write_overlay()
    import trytond.config as config
    config.update_etc(files)
    level = max(logging.ERROR - 10 * verbose, logging.NOTSET)
    logging.basicConfig(
        level=level,
        format='%(process)s [%(asctime)s] %(levelname)s %(name)s %(message)s')
    logging.captureWarnings(True)
    return files


@contextmanager
def _admin_password_file():
    """TRYTONPASSFILE for trytond-admin: the caller's own when set, else a
    temporary file holding the demo password."""
    if os.environ.get('TRYTONPASSFILE'):
        yield None
        return
    fd, path = tempfile.mkstemp(prefix='hrp-admin-')
    try:
        with os.fdopen(fd, 'w') as fp:
            fp.write(DEMO_ADMIN_PASSWORD + '\n')
        os.environ['TRYTONPASSFILE'] = path
        yield DEMO_ADMIN_PASSWORD
    finally:
        os.environ.pop('TRYTONPASSFILE', None)
        os.unlink(path)


def _run_admin(site, args, verbose=0):
    import trytond.admin as admin
    import trytond.commandline as commandline
    parser = commandline.get_parser_admin()
    options = parser.parse_args(
        ['-c', *site.config_files, '-d', site.name]
        + ['-v'] * verbose + args)
    admin.run(options)


def _create_database(site):
    if site.backend == 'sqlite':
        site.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        site.sqlite_file.touch()
        return
    from trytond import backend
    database = backend.Database()
    database.connect()
    connection = database.get_connection(autocommit=True)
    try:
        database.create(connection, site.name)
    finally:
        database.put_connection(connection)
        database.close()


def drop(site):
    "Drop the site's database (and its build record)."
    site.forget()
    if site.backend == 'sqlite':
        site.remove_sqlite()
        return
    from trytond.transaction import Transaction
    with Transaction().start(
            None, 0, close=True, autocommit=True) as transaction:
        if site.name in transaction.database.list():
            transaction.database.drop(transaction.connection, site.name)


def _set_languages(site):
    "Make the desk language translatable and the administrator's language."
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    with Transaction().start(site.name, 0) as transaction:
        pool = Pool()
        Lang = pool.get('ir.lang')
        User = pool.get('res.user')
        languages = Lang.search([
                ('code', 'in', ['en', DESK_LANGUAGE]),
                ])
        Lang.write(languages, {'translatable': True})
        desk, = [lang for lang in languages if lang.code == DESK_LANGUAGE]
        admins = User.search([('login', '=', ADMIN_LOGIN)])
        User.write(admins, {'language': desk.id})
        transaction.commit()


def _default_user_languages(site):
    """Users created without a language (the demo role users) get the desk
    language; a user's own choice is kept."""
    from trytond.pool import Pool
    from trytond.transaction import Transaction, inactive_records
    with Transaction().start(site.name, 0) as transaction:
        pool = Pool()
        Lang = pool.get('ir.lang')
        User = pool.get('res.user')
        desk, = Lang.search([('code', '=', DESK_LANGUAGE)])
        with inactive_records():
            users = User.search([
                    ('language', '=', None),
                    ('login', '!=', 'root'),
                    ])
        if users:
            User.write(users, {'language': desk.id})
        transaction.commit()
        return len(users)


def _demo_loader():
    "The demo hospital generator; imported before any long work starts."
    try:
        from hrp.fixtures import load_demo_hospital
    except ImportError as exception:
        raise SiteError(
            "the demo hospital generator (hrp.fixtures.load_demo_hospital, "
            f"fixtures/__init__.py) cannot be imported: {exception}; "
            "rerun with --no-demo-data for an empty site")
    return load_demo_hospital


def _load_demo_hospital(site, load_demo_hospital, seed):
    import trytond.config as config
    context = {
        # Demo names (Chinese) are stored as the records' own values.
        'language': config.get('database', 'language'),
        # A batch load answers "yes" to the user warnings of the modules.
        '_skip_warnings': True,
        }
    from hrp.fixtures import load_demo_hospital_into
    result = load_demo_hospital_into(site.name, seed=seed, context=context)
    return result or {}


def _counts(site):
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    counts = {}
    with Transaction().start(site.name, 0, readonly=True):
        pool = Pool()
        for model, label in SUMMARY_MODELS:
            try:
                Model = pool.get(model)
            except KeyError:
                continue
            counts[label] = Model.search_count([])
    return counts


def _activated_modules(site):
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    with Transaction().start(site.name, 0, readonly=True):
        Module = Pool().get('ir.module')
        return sorted(m.name for m in Module.search([
                    ('state', '=', 'activated'),
                    ]))


def create(site, demo_data=True, seed=DEMO_SEED, force=False, verbose=0,
        modules=None, out=print):
    """Create the site's database, activate the HRP modules with their
    dependencies, load the desk language and, unless ``demo_data`` is false,
    the demo hospital.  Return the build record (also saved as site.json)."""
    modules = list(modules or MODULES)
    status = site.status()
    if status != 'missing' and not force:
        raise SiteError(
            f"site {site.name!r} already exists ({status}); use --force to "
            "rebuild it from scratch, or `hrp admin-update` to update it")
    configure(site, verbose)
    loader = _demo_loader() if demo_data else None
    if status != 'missing':
        out(f"Dropping the existing database {site.name!r} ({status})...")
        drop(site)
    site.forget()

    started = time.monotonic()
    where = (f"SQLite {site.sqlite_file}" if site.backend == 'sqlite'
        else f"{site.backend} database {site.name!r}")
    out(f"Creating site {site.name!r}: {where}")
    _create_database(site)

    out(f"Activating {', '.join(modules)} with their dependencies and "
        f"loading the {DESK_LANGUAGE} translations...")
    with _admin_password_file() as admin_password:
        _run_admin(site, [
                '-u', *modules, '--all',
                '--activate-dependencies',
                '--email', ADMIN_EMAIL,
                '-l', DESK_LANGUAGE,
                ], verbose=verbose)
    _set_languages(site)
    modules_time = time.monotonic() - started
    if admin_password and site.backend != 'sqlite':
        out(f"  warning: the admin password is {admin_password!r}; set "
            "TRYTONPASSFILE to a file holding the password for a real site")
    out(f"  modules activated in {modules_time:.1f} s")

    logins = [{
            'login': ADMIN_LOGIN,
            'password': admin_password or "(from TRYTONPASSFILE)",
            'role': "administrator",
            'department': None,
            }]
    result = {}
    demo_time = None
    if demo_data:
        out(f"Loading the demo hospital (seed {seed})...")
        demo_started = time.monotonic()
        result = _load_demo_hospital(site, loader, seed)
        demo_time = time.monotonic() - demo_started
        out(f"  demo hospital loaded in {demo_time:.1f} s")
        if not result.get('logins'):
            out("  warning: the demo hospital returned no logins")
        logins.extend(
            {k: entry.get(k) for k in [
                    'login', 'password', 'role', 'department']}
            for entry in result.get('logins') or [])
    _default_user_languages(site)

    info = {
        'name': site.name,
        'config': str(site.config_file),
        'backend': site.backend,
        'database': (str(site.sqlite_file) if site.backend == 'sqlite'
            else site.name),
        'created': now(),
        'modules': modules,
        'activated_modules': _activated_modules(site),
        'modules_fingerprint': modules_fingerprint(MODULES),
        'languages': ['en', DESK_LANGUAGE],
        'demo_data': bool(demo_data),
        'seed': seed if demo_data else None,
        'counts': _counts(site),
        'fixture_summary': {
            k: v for k, v in result.items()
            if k != 'logins' and isinstance(v, (int, float, str))},
        'logins': logins,
        'timings': {
            'modules_s': round(modules_time, 1),
            'demo_data_s': round(demo_time, 1) if demo_time else None,
            'total_s': round(time.monotonic() - started, 1),
            },
        'complete': True,
        }
    site.save_info(info)
    return info


def update(site, modules=None, all_modules=False, verbose=0, out=print):
    """Update the modules of an existing site after code changes (the
    equivalent of ``trytond-admin -u ... --activate-dependencies``)."""
    modules = list(modules or MODULES)
    if not site.database_exists():
        raise SiteError(
            f"site {site.name!r} has no database; create it with "
            "`hrp site create`")
    configure(site, verbose)
    started = time.monotonic()
    out(f"Updating {', '.join(modules)}"
        + (" and all activated modules" if all_modules else "")
        + f" on site {site.name!r}...")
    _run_admin(site,
        ['-u', *modules]
        + (['--all'] if all_modules else [])
        + ['--activate-dependencies'], verbose=verbose)
    _default_user_languages(site)
    elapsed = time.monotonic() - started
    info = site.load_info() or {'name': site.name, 'complete': False}
    info['modules_fingerprint'] = modules_fingerprint(MODULES)
    info['activated_modules'] = _activated_modules(site)
    info['updated'] = now()
    info.setdefault('timings', {})['last_update_s'] = round(elapsed, 1)
    site.save_info(info)
    out(f"  updated in {elapsed:.1f} s")
    return info
