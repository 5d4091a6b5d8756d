import hashlib, io, os, tempfile
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from covid_fastai.images import make_synthetic_xrays, write_dicom

# The image checks the tests remember go to a folder of this run (commands started by the tests inherit it), not ~/.cache
os.environ['COVID_FASTAI_CACHE'] = tempfile.mkdtemp(prefix='covid-fastai-test-cache-')

@pytest.fixture(scope='session')
def xray_folder(tmp_path_factory):
    "Two classes, 24 synthetic 64 px images each, in one folder per class"
    return make_synthetic_xrays(tmp_path_factory.mktemp('data')/'flat', n_per_class=24, size=64, seed=1)

@pytest.fixture(scope='session')
def split_folder(tmp_path_factory):
    "train/, valid/ and test/ folders, each with the same three class folders"
    root = tmp_path_factory.mktemp('data')/'split'
    classes = ('COVID-19', 'Pneumonia', 'No_findings')
    for i, (name, n) in enumerate((('train', 12), ('valid', 4), ('test', 4))):
        make_synthetic_xrays(root/name, n_per_class=n, classes=classes, size=48, seed=10+i)
    return root

def tree_digest(path):
    "Hash of every file's relative path and bytes under `path`"
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob('*')):
        h.update(str(f.relative_to(path)).encode())
        if f.is_file(): h.update(f.read_bytes())
    return h.hexdigest()

def write_image_kinds(folder):
    "Write one file of every kind the readers must handle; returns (good files, bad files)"
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = (rng.random((40, 48)) * 200).astype(np.uint8)
    good = {}
    Image.fromarray(base, 'L').save(good.setdefault('gray', folder/'gray.png'))
    Image.fromarray(base.astype(np.uint16) * 250).save(good.setdefault('i16', folder/'sixteen.png'))
    rgba = Image.fromarray(np.dstack([base]*3 + [np.full_like(base, 255)]), 'RGBA')
    rgba.save(good.setdefault('rgba', folder/'rgba.png'))
    Image.fromarray(base, 'L').convert('P').save(good.setdefault('palette', folder/'palette.png'))
    Image.fromarray(base, 'L').convert('CMYK').save(good.setdefault('cmyk', folder/'cmyk.jpg'), quality=95)
    write_dicom(base.astype(np.uint16) * 16, good.setdefault('dicom', folder/'xray.dcm'))
    write_dicom(base.astype(np.uint16) * 16, good.setdefault('dicom_m1', folder/'mono1.dcm'), photometric='MONOCHROME1')
    bad = {}
    Image.fromarray(base, 'L').save(folder/'full.jpg', quality=95)
    data = (folder/'full.jpg').read_bytes()
    (folder/'full.jpg').unlink()
    bad['truncated_jpeg'] = folder/'truncated.jpg'; bad['truncated_jpeg'].write_bytes(data[:len(data)//2])
    bad['text_png'] = folder/'text.png'; bad['text_png'].write_text('this is not an image')
    bad['empty'] = folder/'empty.jpg'; bad['empty'].write_bytes(b'')
    return good, bad

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run', '--disable-quic']

@pytest.fixture(scope='session')
def browser():
    "Headless Debian Chromium through Playwright; skipped where it is missing, unless COVID_FASTAI_REQUIRE_BROWSER=1 (as in .ci/run)"
    import os, shutil
    need = os.environ.get('COVID_FASTAI_REQUIRE_BROWSER') == '1'
    exe = shutil.which('chromium') or (CHROMIUM if Path(CHROMIUM).exists() else None)
    try: from playwright.sync_api import sync_playwright
    except ImportError: sync_playwright = None
    if exe is None or sync_playwright is None:
        if need: pytest.fail("Chromium (Debian package `chromium`) and playwright are needed for the browser tests")
        pytest.skip("Chromium or playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()

@pytest.fixture(scope='session')
def three_class(tmp_path_factory):
    "A trained 3-class efficientnet_lite0 `Learner` (64 px: a 2 x 2 final feature map, so Grad-CAM has a shape) and a separate labelled test folder"
    from covid_fastai.train import train_covid_learner
    root = tmp_path_factory.mktemp('three')
    classes = ('COVID-19', 'Normal', 'Pneumonia')
    src = make_synthetic_xrays(root/'train', n_per_class=12, size=48, classes=classes, seed=3)
    test = make_synthetic_xrays(root/'test', n_per_class=6, size=48, classes=classes, seed=4)
    learn = train_covid_learner(src, arch='efficientnet_lite0', epochs=1, size=64, bs=8, num_workers=0)
    return learn, test

def make_dls(src, **kwargs):
    "`prepare_layout` then `covid_dls`: the data-path options (label_map, cache, skip_unreadable, split...) go to the first"
    from dataclasses import fields
    from covid_fastai.config import TrainConfig
    from covid_fastai.train import prepare_layout
    from covid_fastai.dataloaders import covid_dls
    names = {f.name for f in fields(TrainConfig)} - {'size', 'bs', 'aug', 'sampling', 'num_workers', 'window', 'preprocess'}
    data = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    return covid_dls(prepare_layout(src, **data), **kwargs)

def arch_kinds() -> list:
    "One name per network of `ARCHS`: the chest X-ray DenseNets (`xrv_densenet121_*`) differ only in their weights file, so one stands for all"
    from covid_fastai.models import ARCHS
    return [a for a in ARCHS if not a.startswith('xrv_')] + [a for a in ARCHS if a.startswith('xrv_')][:1]
