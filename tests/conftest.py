import hashlib, shutil
from pathlib import Path
import pytest
from covid_fastai.data import make_synthetic_xrays

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
