#!/usr/bin/env python
"""Refresh the zh_CN po files of the HRP modules from the modules' sources.

Usage: python tools/update_po.py [MODULE ...]

Builds a throw-away SQLite database with the modules, extracts every string
a user sees, rewrites locale/zh_CN.po keeping the existing translations and
prints the entries still waiting for a translation."""
import os
import sys

os.environ['TRYTOND_DATABASE_URI'] = 'sqlite://'
os.environ['DB_NAME'] = ':memory:'

from trytond.tests.test_tryton import DB_NAME, activate_module  # noqa: E402
from trytond.transaction import Transaction  # noqa: E402

from hrp import i18n  # noqa: E402


def main(modules):
    modules = modules or i18n.MODULES
    activate_module(i18n.MODULES + i18n.EXTRAS)
    with Transaction().start(DB_NAME, 0):
        i18n.set_translations()
        waiting = 0
        for module in modules:
            untranslated = i18n.update_po(module)
            waiting += len(untranslated)
            for entry in untranslated:
                print(f'{module}: {entry.msgctxt} {entry.msgid!r}')
    print(f'{waiting} string(s) without a zh_CN translation')
    return 1 if waiting else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
