# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Install the sao web desk (npm ``tryton-sao@8.0``) under ``var/sao``.

The npm package ships a built ``dist/`` and an ``index.html`` that loads its
runtime libraries from ``node_modules/``; those are installed inside the
extracted package with ``npm install --omit=dev --legacy-peer-deps``."""
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from hrp import SAO_SPEC
from hrp.site import SiteError

__all__ = ['installed_version', 'ensure_sao']

MARKER = '.hrp-installed'


def installed_version(package_dir):
    "The installed sao version, or None when the installation is incomplete."
    package_dir = Path(package_dir)
    marker = package_dir / MARKER
    if not (marker.is_file() and (package_dir / 'index.html').is_file()):
        return None
    return marker.read_text(encoding='utf-8').strip() or None


def _npm():
    npm = shutil.which('npm')
    if not npm:
        raise SiteError(
            "npm is required to install the sao desk (tryton-sao); install "
            "Node.js and npm first")
    return npm


def _run(args, cwd):
    process = subprocess.run(
        args, cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if process.returncode:
        raise SiteError(
            f"`{' '.join(args[1:])}` failed in {cwd}:\n"
            + (process.stderr or process.stdout).strip()[-2000:])
    return process.stdout


def ensure_sao(package_dir, out=print, force=False):
    """Install sao into ``package_dir`` (``var/sao/package``) unless a
    complete installation is there.  Return its version."""
    package_dir = Path(package_dir)
    version = installed_version(package_dir)
    if version and not force:
        return version
    npm = _npm()
    base = package_dir.parent
    base.mkdir(parents=True, exist_ok=True)
    out(f"Installing the sao desk ({SAO_SPEC}) into {package_dir}...")
    with tempfile.TemporaryDirectory(prefix='.sao-', dir=base) as tmp:
        tmp = Path(tmp)
        packed = json.loads(
            _run([npm, 'pack', SAO_SPEC, '--json', '--silent'], cwd=tmp))
        tarball = tmp / packed[0]['filename']
        version = packed[0]['version']
        if not version.startswith('8.0.'):
            raise SiteError(
                f"{SAO_SPEC} resolved to {version}, expected 8.0.x")
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp / 'extract', filter='data')
        staged = tmp / 'extract' / 'package'
        _run([npm, 'install', '--omit=dev', '--legacy-peer-deps',
                '--no-audit', '--no-fund', '--silent'], cwd=staged)
        # index.html loads them; empty files spare the browser two 404s.
        for name in ['custom.js', 'custom.css']:
            (staged / name).touch()
        (staged / MARKER).write_text(version + '\n', encoding='utf-8')
        if package_dir.exists():
            shutil.rmtree(package_dir)
        staged.rename(package_dir)
    out(f"  sao {version} installed")
    return version
