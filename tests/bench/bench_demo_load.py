# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Time the demo hospital on a fresh SQLite database and print the timings.

    python tests/bench/bench_demo_load.py [--seed N] [--keep DIR]

Creates a SQLite database in a temporary directory (or DIR), activates
his_connector, hrp_materials and hrp_equipment with their dependencies (as
``trytond-admin`` does), loads the demo hospital and prints how long each
step took.  It asserts nothing: it is a measurement, not a test (pytest does
not collect ``bench_*.py``)."""
import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

from hrp import MODULES

DB_NAME = 'bench'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument('--keep', metavar='DIR',
        help="create the database in DIR and keep it")
    options = parser.parse_args(argv)

    directory = pathlib.Path(options.keep or tempfile.mkdtemp(
            prefix='hrp-bench-'))
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / f'{DB_NAME}.sqlite'
    if database.exists():
        database.unlink()
    config_file = directory / 'trytond.conf'
    config_file.write_text(
        "[database]\n"
        "uri = sqlite://\n"
        f"path = {directory}\n"
        "language = zh_CN\n")
    password_file = directory / 'admin-password'
    password_file.write_text('admin\n')
    os.environ['TRYTONPASSFILE'] = str(password_file)
    os.environ.pop('TRYTOND_DATABASE_URI', None)

    timings = {}
    started = time.perf_counter()
    import trytond.config as config
    config.update_etc([str(config_file)])
    import trytond.admin as admin
    import trytond.commandline as commandline
    database.touch()
    options_admin = commandline.get_parser_admin().parse_args([
            '-c', str(config_file), '-d', DB_NAME,
            '-u', *MODULES, '--all', '--activate-dependencies',
            '--email', 'admin@hospital.example', '-l', 'en', 'zh_CN'])
    admin.run(options_admin)
    timings['activate modules'] = time.perf_counter() - started

    from trytond.pool import Pool
    from trytond.transaction import Transaction

    from hrp.fixtures import DEMO_SEED, load_demo_hospital_into
    seed = DEMO_SEED if options.seed is None else options.seed
    with Transaction().start(DB_NAME, 0) as transaction:
        Lang = Pool().get('ir.lang')
        Lang.write(Lang.search([('code', 'in', ['en', 'zh_CN'])]),
            {'translatable': True})
        transaction.commit()

    started = time.perf_counter()
    summary = load_demo_hospital_into(DB_NAME, seed=seed, context={
            'language': 'zh_CN', '_skip_warnings': True,
            })
    timings['load demo hospital (incl. commit)'] = (
        time.perf_counter() - started)

    print(f"SQLite database: {database} "
        f"({database.stat().st_size / 1e6:.1f} MB)")
    print(f"seed {seed}: " + ", ".join(
            f"{summary[k]} {k}" for k in [
                'departments', 'stores', 'users', 'materials', 'implants',
                'suppliers', 'licences', 'equipment', 'lots', 'stock_lines',
                'inventories']))
    print("demo load steps:")
    for step, seconds in summary['timings'].items():
        print(f"  {step:<16} {seconds:7.2f} s")
    print("overall:")
    for step, seconds in timings.items():
        print(f"  {step:<36} {seconds:7.2f} s")
    if not options.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
