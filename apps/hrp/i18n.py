# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Translation coverage of the HRP modules.

The source strings of a module are what Tryton itself would export for it
after "Set Translations": model, field, selection, help, view, menu, action,
message and group strings.  ``missing()`` lists those that have no zh_CN
translation in the module's ``locale/zh_CN.po``."""
import os

import polib

from hrp import MODULES

# Optional modules whose activation adds strings to MODULES (extras_depend)
EXTRAS = ['account_asset']
LANG = 'zh_CN'


def set_translations():
    "Create the source strings of views and reports (needs a transaction)"
    from trytond.pool import Pool
    TranslationSet = Pool().get('ir.translation.set', type='wizard')
    session_id, _, _ = TranslationSet.create()
    try:
        TranslationSet(session_id).transition_set_()
    finally:
        TranslationSet.delete(session_id)


def source_entries(module):
    "Return the exported English entries of module (needs a transaction)"
    from trytond.pool import Pool
    Translation = Pool().get('ir.translation')
    content = Translation.translation_export('en', module)
    return list(polib.pofile(content.decode('utf-8'))) if content else []


def po_path(module, lang=LANG):
    from trytond.tools import find_dir
    return os.path.join(find_dir(module), 'locale', f'{lang}.po')


def load_po(module, lang=LANG):
    path = po_path(module, lang)
    if not os.path.exists(path):
        return polib.POFile(wrapwidth=78)
    return polib.pofile(path, wrapwidth=78)


def missing(module, lang=LANG):
    "Return the source entries of module without translation in lang"
    translated = {
        (e.msgctxt, e.msgid) for e in load_po(module, lang)
        if e.msgstr and 'fuzzy' not in e.flags}
    return [e for e in source_entries(module)
        if e.msgid.strip() and (e.msgctxt, e.msgid) not in translated]


def update_po(module, lang=LANG):
    """Rewrite the po of module with every source entry, keeping existing
    translations and dropping obsolete ones; return the untranslated ones"""
    current = {(e.msgctxt, e.msgid): e.msgstr for e in load_po(module, lang)}
    pofile = polib.POFile(wrapwidth=78)
    pofile.metadata = {'Content-Type': 'text/plain; charset=utf-8'}
    untranslated = []
    for entry in source_entries(module):
        if not entry.msgid.strip():
            continue
        msgstr = current.get((entry.msgctxt, entry.msgid), '')
        pofile.append(polib.POEntry(
                msgctxt=entry.msgctxt, msgid=entry.msgid, msgstr=msgstr,
                flags=[f for f in entry.flags if f != 'fuzzy']))
        if not msgstr:
            untranslated.append(entry)
    pofile.sort()
    os.makedirs(os.path.dirname(po_path(module, lang)), exist_ok=True)
    pofile.save(po_path(module, lang))
    return untranslated
