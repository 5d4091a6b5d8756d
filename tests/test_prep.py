"Derived copies (resize cache, augmented copies) go to a new folder; the source is never modified."
import numpy as np, pytest
from PIL import Image
from covid_fastai.images import *
from covid_fastai.prep import *
from conftest import tree_digest, write_image_kinds

def test_resize_images_keeps_structure_and_resumes(tmp_path):
    src = make_synthetic_xrays(tmp_path/'src', n_per_class=3, size=120)
    good, bad = write_image_kinds(src/'covid')
    before = tree_digest(src)
    with pytest.warns(UserWarning, match='3 file'):
        res = resize_xrays(src, tmp_path/'cache', size=60, progress=False)
    assert tree_digest(src) == before
    done = res[res.result == 'done']
    assert len(done) == 6 + len(good)
    for f in done.dest:
        im = Image.open(f)
        assert max(im.size) <= 60 and im.mode in ('L', 'RGB')
    assert (tmp_path/'cache'/'covid'/'xray.png').exists() and (tmp_path/'cache'/'covid'/'sixteen.png').exists()
    assert Image.open(tmp_path/'cache'/'covid'/'covid_000.png').size == (60, 60)
    assert Image.open(tmp_path/'cache'/'covid'/'sixteen.png').size == (48, 40)   # never enlarged
    again = resize_xrays(src, tmp_path/'cache', size=60, progress=False)
    assert set(again.result[again.fname.isin(done.fname)]) == {'skipped'}

def test_resize_refuses_dest_inside_src(tmp_path):
    src = make_synthetic_xrays(tmp_path/'src', n_per_class=2, size=16)
    with pytest.raises(ValueError, match='would be written inside the input'): resize_xrays(src, src/'small')
    with pytest.raises(ValueError, match='holds the input'): resize_xrays(src, tmp_path)
    with pytest.raises(FileNotFoundError): resize_xrays(tmp_path/'nope', tmp_path/'out')

def test_augment_folder_25_plus_25_to_200(tmp_path):
    src = make_synthetic_xrays(tmp_path/'ct', n_per_class=25, size=32)
    before = tree_digest(src)
    out = augment_folder(src, tmp_path/'ct200', n_per_image=3, max_rotate=20, seed=1)
    assert tree_digest(src) == before
    assert len(get_xray_files(out)) == 200 and len(get_xray_files(out/'normal')) == 100
    orig = np.asarray(Image.open(src/'covid'/'covid_000.png'))
    assert (np.asarray(Image.open(out/'covid'/'covid_000.png')) == orig).all()
    augs = [np.asarray(Image.open(out/'covid'/f'covid_000_aug{k}.png')) for k in range(3)]
    assert all(a.shape == orig.shape and not (a == orig).all() for a in augs)

def test_augment_only_the_training_split(tmp_path):
    for i, (s, n) in enumerate((('train', 4), ('valid', 2), ('test', 2))):
        make_synthetic_xrays(tmp_path/'src'/s, n_per_class=n, size=16, seed=i)
    out = augment_folder(tmp_path/'src', tmp_path/'out', n_per_image=2)
    assert len(get_xray_files(out/'train')) == 8 * 3
    assert len(get_xray_files(out/'valid')) == 4 and len(get_xray_files(out/'test')) == 4
