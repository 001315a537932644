# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The ``hrp`` command.

    hrp demo                 install the desk, build the demo site if needed,
                             serve it and print the URL and the logins
    hrp site create          create a site database (modules, zh_CN desk,
                             demo hospital)
    hrp site info            show how a site was built and its logins
    hrp serve                run a site: server, cron (and worker)
    hrp admin-update         update the modules of a site after code changes
    hrp install-sao          install the sao desk under var/sao
    hrp sms send             send an SMS through a GSM modem (serial device)

Messages are English: this is an operator's tool, not a desk string."""
import argparse
import os
import subprocess
import sys
import time
from collections import OrderedDict

from hrp import DEMO_SEED, MODULES, SAO_SPEC, sms_cli
from hrp.site import Site, SiteError, modules_fingerprint

__all__ = ['main']


def _print(*args):
    print(*args, flush=True)


def _site(options):
    return Site(options.name, options.config)


def _relative(site, path):
    try:
        return os.path.relpath(path, os.getcwd()) if str(path).startswith(
            str(site.root)) else str(path)
    except ValueError:
        return str(path)


# Reports

def format_logins(info, limit=None):
    "Lines describing the site's logins, grouped by department."
    logins = info.get('logins') or []
    lines = []
    admins = [e for e in logins if e.get('role') == 'administrator']
    others = [e for e in logins if e.get('role') != 'administrator']
    for entry in admins:
        lines.append(f"  {entry['login']} / {entry['password']}"
            "   (administrator)")
    if not others:
        return lines
    passwords = {e.get('password') for e in others}
    shared = passwords.pop() if len(passwords) == 1 else None
    if shared is not None:
        lines.append(f"  role users, all with password {shared!r}:")
    else:
        lines.append("  role users (login / password):")
    by_department = OrderedDict()
    for entry in others:
        by_department.setdefault(
            entry.get('department') or "hospital-wide", []).append(entry)
    shown = 0
    for department, entries in by_department.items():
        if limit is not None and shown >= limit:
            lines.append(f"    ... {len(by_department) - shown} more "
                "departments")
            break
        users = ', '.join(
            f"{e['login']} ({e.get('role') or '?'})" if shared is not None
            else f"{e['login']} / {e.get('password')} ({e.get('role')})"
            for e in entries)
        lines.append(f"    {department}: {users}")
        shown += 1
    return lines


def print_summary(site, info):
    timings = info.get('timings') or {}
    parts = [f"modules {timings.get('modules_s')} s"]
    if timings.get('demo_data_s') is not None:
        parts.append(f"demo hospital {timings['demo_data_s']} s")
    _print(f"Site {site.name!r} is ready (built in {timings.get('total_s')} s:"
        f" {', '.join(parts)}).")
    _print(f"  database:  {info.get('database')}")
    activated = info.get('activated_modules') or []
    _print(f"  modules:   {', '.join(info.get('modules') or [])} "
        f"(+{max(0, len(activated) - len(info.get('modules') or []))} "
        "activated dependencies)")
    _print(f"  languages: {', '.join(info.get('languages') or [])}"
        " (users' desk language zh_CN)")
    counts = info.get('counts') or {}
    if counts:
        _print("  records:   " + ', '.join(
                f"{v} {k}" for k, v in counts.items()))
    logins = info.get('logins') or []
    _print(f"  logins:    {len(logins)} (full list in "
        f"{_relative(site, site.info_file)})")
    for line in format_logins(info, limit=5):
        _print(line)


# Commands

def cmd_site_create(options):
    from hrp import build
    site = _site(options)
    info = build.create(
        site, demo_data=options.demo_data, seed=options.seed,
        force=options.force, verbose=options.verbose, out=_print)
    print_summary(site, info)
    return 0


def cmd_site_info(options):
    site = _site(options)
    status = site.status()
    _print(f"Site {site.name!r}: {status}")
    _print(f"  configuration: {site.config_file}")
    _print(f"  backend:       {site.backend}")
    if site.backend == 'sqlite':
        _print(f"  database:      {site.sqlite_file}")
    info = site.load_info()
    if not info:
        return 0 if status == 'ready' else 1
    _print(f"  created:       {info.get('created')}")
    if info.get('updated'):
        _print(f"  updated:       {info['updated']}")
    if info.get('modules_fingerprint') != modules_fingerprint(MODULES):
        _print("  modules:       source changed since the last build or "
            "update; run `hrp admin-update`")
    for label, count in (info.get('counts') or {}).items():
        _print(f"  {label}: {count}")
    _print("  logins:")
    for line in format_logins(info):
        _print(line)
    return 0 if status == 'ready' else 1


def cmd_admin_update(options):
    from hrp import build
    site = _site(options)
    build.update(
        site, modules=options.modules or None,
        all_modules=options.all_modules, verbose=options.verbose, out=_print)
    return 0


def cmd_install_sao(options):
    from hrp.sao import ensure_sao
    site = _site(options)
    root = site.get('web', 'root', str(site.sao_dir))
    version = ensure_sao(root, out=_print, force=options.force)
    _print(f"sao {version} is installed in {root}")
    return 0


def _require_ready(site):
    status = site.status()
    if status == 'missing':
        raise SiteError(
            f"site {site.name!r} does not exist; create it with "
            f"`hrp site create --name {site.name}` (or run `hrp demo`)")
    if status == 'incomplete':
        raise SiteError(
            f"site {site.name!r} was not built completely; rebuild it with "
            f"`hrp site create --name {site.name} --force`")


def cmd_serve(options):
    from hrp.serve import Supervisor
    site = _site(options)
    _require_ready(site)
    supervisor = Supervisor(
        site, host=options.host, port=options.port,
        verbose=options.verbose, dev=options.dev, out=_print)
    web_root = site.get('web', 'root', str(site.sao_dir))
    if not os.path.isfile(os.path.join(web_root, 'index.html')):
        _print(f"Note: no desk in {web_root} (run `hrp install-sao`); "
            "serving the JSON-RPC and REST APIs only.")

    def ready(elapsed):
        _print(f"Serving site {site.name!r} on {supervisor.url} "
            f"(ready in {elapsed:.1f} s); stop with Ctrl-C.")
    return supervisor.run(on_ready=ready)


def _sub_hrp(site, *args):
    "Run an hrp command in a child process (each build gets a fresh trytond)."
    env = dict(os.environ, HRP_HOME=str(site.root))
    command = [sys.executable, '-m', 'hrp', *args,
        '--name', site.name, '--config', str(site.config_file)]
    code = subprocess.call(command, env=env, stdin=subprocess.DEVNULL)
    if code:
        raise SiteError(f"`hrp {' '.join(args)}` failed (status {code})")


def cmd_demo(options):
    from hrp.sao import ensure_sao
    from hrp.serve import Supervisor
    started = time.monotonic()
    site = _site(options)
    supervisor = Supervisor(
        site, host=options.host, port=options.port,
        verbose=options.verbose, out=_print)
    if supervisor.port_in_use():
        raise SiteError(
            f"{supervisor.url} is already in use (another `hrp demo` or "
            "`hrp serve`?); stop it or choose another --port")
    root = site.get('web', 'root', str(site.sao_dir))
    ensure_sao(root, out=_print)

    status = site.status()
    if status == 'incomplete':
        if site.backend != 'sqlite':
            raise SiteError(
                f"site {site.name!r} exists but was not built completely; "
                f"rebuild it with `hrp site create --name {site.name} "
                "--force`")
        _print(f"Site {site.name!r} was not built completely; rebuilding "
            "it.")
        site.forget()
        site.remove_sqlite()
        status = 'missing'
    if status == 'missing':
        _print(f"Building the demo site {site.name!r} (modules, zh_CN desk, "
            "demo hospital); this takes a few minutes once.")
        _sub_hrp(site, 'site', 'create')
    else:
        info = site.load_info() or {}
        if (not options.no_update and info.get('modules_fingerprint')
                != modules_fingerprint(MODULES)):
            _print("The HRP modules changed since the site was built; "
                "updating it.")
            _sub_hrp(site, 'admin-update')
        else:
            _print(f"Reusing site {site.name!r} "
                f"({_relative(site, site.info_file)}).")
    info = site.load_info() or {}

    def ready(elapsed):
        total = time.monotonic() - started
        _print("")
        _print(f"HRP demo desk: {supervisor.url}   "
            f"(database {site.name!r}; serving {total:.1f} s after "
            "`hrp demo` started)")
        _print(f"JSON-RPC: {supervisor.url}{site.name}/rpc/   "
            f"REST: {supervisor.url}{site.name}/rest/")
        _print("Log in as:")
        for line in format_logins(info):
            _print(line)
        _print("Stop with Ctrl-C.")
    return supervisor.run(on_ready=ready)


# Parser

def _site_arguments(parser, default_name='demo'):
    parser.add_argument('--name', default=default_name,
        help="site (database) name (default: %(default)s)")
    parser.add_argument('--config', default=None, metavar='FILE',
        help="site configuration (default: sites/demo.conf)")
    parser.add_argument('-v', '--verbose', action='count', default=0,
        help="more trytond logging (repeat for more)")


def _listen_arguments(parser):
    parser.add_argument('--host', default=None,
        help="address to listen on (default: from the configuration, "
        "127.0.0.1)")
    parser.add_argument('--port', type=int, default=None,
        help="port to listen on (default: from the configuration, 8000)")


def get_parser():
    parser = argparse.ArgumentParser(
        prog='hrp',
        description="Create, update and serve HRP (Tryton 8.0) sites.")
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True

    demo = commands.add_parser('demo',
        help="install the desk, build the demo site if needed and serve it")
    _site_arguments(demo)
    _listen_arguments(demo)
    demo.add_argument('--no-update', action='store_true',
        help="do not update the site when the module source changed")
    demo.set_defaults(func=cmd_demo)

    site = commands.add_parser('site', help="manage site databases")
    site_commands = site.add_subparsers(dest='site_command',
        metavar='SUBCOMMAND')
    site_commands.required = True
    create = site_commands.add_parser('create',
        help="create a site: database, modules, zh_CN desk, demo hospital")
    _site_arguments(create)
    create.add_argument('--no-demo-data', dest='demo_data',
        action='store_false', help="do not load the demo hospital")
    create.add_argument('--seed', type=int, default=DEMO_SEED,
        help="seed of the demo hospital (default: %(default)s)")
    create.add_argument('--force', action='store_true',
        help="drop an existing database of that name first")
    create.set_defaults(func=cmd_site_create)
    info = site_commands.add_parser('info',
        help="show a site's state, contents and logins")
    _site_arguments(info)
    info.set_defaults(func=cmd_site_info)

    serve = commands.add_parser('serve',
        help="run a site: trytond server, cron and (if enabled) worker")
    _site_arguments(serve)
    _listen_arguments(serve)
    serve.add_argument('--dev', action='store_true',
        help="trytond development mode (reload on code changes)")
    serve.set_defaults(func=cmd_serve)

    update = commands.add_parser('admin-update',
        help="update the modules of a site after code changes")
    _site_arguments(update)
    update.add_argument('-m', '--module', dest='modules', action='append',
        metavar='MODULE',
        help=f"module to update (repeatable; default: {' '.join(MODULES)})")
    update.add_argument('--all', dest='all_modules', action='store_true',
        help="also update every other activated module")
    update.set_defaults(func=cmd_admin_update)

    sao = commands.add_parser('install-sao',
        help=f"install the sao desk ({SAO_SPEC}) under var/sao")
    _site_arguments(sao)
    sao.add_argument('--force', action='store_true',
        help="reinstall even if it is installed")
    sao.set_defaults(func=cmd_install_sao)

    sms_cli.add_parser(commands)
    return parser


def main(argv=None):
    parser = get_parser()
    options = parser.parse_args(argv)
    try:
        return options.func(options)
    except SiteError as exception:
        print(f"hrp: error: {exception}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("hrp: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # Output piped into a command that stopped reading (`| head`).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == '__main__':
    sys.exit(main())
