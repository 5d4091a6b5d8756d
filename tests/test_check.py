"check_dataset: exactly the corrupt files, class counts, small images, duplicates; the folder is only read."
import shutil
import numpy as np, pandas as pd, pytest
from PIL import Image
from covid_fastai.images import *
from covid_fastai.check import check_dataset
from covid_fastai.train import train_covid_learner
from conftest import tree_digest, write_image_kinds

@pytest.fixture
def planted(tmp_path):
    "6 + 6 images, 3 corrupt files, 1 RGBA, 1 16-bit PNG, 1 DICOM, one exact copy"
    src = make_synthetic_xrays(tmp_path/'data', n_per_class=6, size=64, seed=4)
    good, bad = write_image_kinds(tmp_path/'kinds')
    for k in ('rgba', 'i16', 'dicom'): shutil.copy(good[k], src/'covid'/good[k].name)
    for f in bad.values(): shutil.copy(f, src/'normal'/f.name)
    shutil.copy(src/'covid'/'covid_001.png', src/'covid'/'copy_of_1.png')
    return src, bad

def test_check_dataset_lists_exactly_the_corrupt_files(planted, tmp_path):
    src, bad = planted
    before = tree_digest(src)
    rep = check_dataset(src, min_size=50, save=tmp_path/'report/check')
    assert tree_digest(src) == before
    assert sorted(f.name for f in rep.unreadable) == sorted(f.name for f in bad.values())
    assert rep.counts.to_dict() == {'covid': 10, 'normal': 6}
    assert rep.imbalance == pytest.approx(10/6)
    assert sorted(rep.small.fname.map(lambda f: f.name)) == ['rgba.png', 'sixteen.png', 'xray.dcm']
    assert [sorted(f.name for f in g) for g in rep.exact_duplicates] == [['copy_of_1.png', 'covid_001.png']]
    assert {frozenset((a.name, b.name)) for a, b in rep.near[['a', 'b']].itertuples(index=False)} >= {frozenset(('copy_of_1.png', 'covid_001.png'))}
    text = (tmp_path/'report'/'check.md').read_text()
    assert 'Unreadable files: 3' in text and 'truncated.jpg' in text
    assert (tmp_path/'report'/'check.csv').exists()

def test_training_skips_reported_files(planted):
    src, bad = planted
    before = tree_digest(src)
    with pytest.warns(UserWarning, match='Leaving out 3 unreadable'):
        learn = train_covid_learner(src, arch='efficientnet_lite0', epochs=1, freeze_epochs=0, size=32, bs=4,
                                    skip_unreadable=True, num_workers=0)
    assert len(learn.history) == 1
    assert not set(learn.dls.layout.df.fname.map(lambda f: f.name)) & {f.name for f in bad.values()}
    assert tree_digest(src) == before

def test_image_check_is_remembered_and_redone_when_a_file_changes(tmp_path):
    "The check of an unchanged file is remembered (by path, size, modification time and pixel limit); a changed file is read again"
    import os, subprocess
    from covid_fastai.check import check_cache_file
    src = make_synthetic_xrays(tmp_path/'d', n_per_class=6, size=32)
    r = subprocess.run(['covid-fastai', 'check-data', str(src), '--min-size', '8'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and '12 files, 12 readable' in r.stdout
    cache = check_cache_file(src)
    assert cache.exists() and str(cache).startswith(os.environ['COVID_FASTAI_CACHE']) and len(pd.read_csv(cache)) == 12
    victim = sorted(src.rglob('*.png'))[0]
    victim.write_bytes(b'not a PNG any more')
    r = subprocess.run(['covid-fastai', 'check-data', str(src), '--min-size', '8'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and '12 files, 11 readable' in r.stdout and victim.name in r.stdout
