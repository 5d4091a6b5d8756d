"Reading every kind of image, DICOM included, and finding the ones that cannot be read."
import io
import numpy as np, pytest
from PIL import Image
from covid_fastai.images import *
from conftest import write_image_kinds, tree_digest

@pytest.fixture(scope='module')
def kinds(tmp_path_factory): return write_image_kinds(tmp_path_factory.mktemp('kinds'))

@pytest.mark.parametrize('kind', ['gray', 'i16', 'rgba', 'palette', 'cmyk', 'dicom', 'dicom_m1'])
def test_every_kind_becomes_rgb8(kinds, kind):
    good, _ = kinds
    fn = good[kind]
    for src in (fn, fn.read_bytes()):     # a path, and the bytes of an upload
        im = XrayImage.create(src)
        a = np.asarray(im)
        assert im.mode == 'RGB' and a.dtype == np.uint8 and a.shape == (40, 48, 3)
        assert a.max() > 150 and a.min() < 50   # contrast kept: not clipped to white, not flattened

def test_kinds_agree_with_the_gray_original(kinds):
    good, _ = kinds
    ref = np.asarray(load_xray(good['gray']))[..., 0].astype(float)
    for kind in ('i16', 'rgba', 'palette', 'cmyk', 'dicom'):
        a = np.asarray(load_xray(good[kind]))[..., 0].astype(float)
        assert np.corrcoef(ref.ravel(), a.ravel())[0, 1] > 0.98, kind
    m1 = np.asarray(load_xray(good['dicom_m1']))[..., 0].astype(float)
    assert np.corrcoef(ref.ravel(), m1.ravel())[0, 1] < -0.98     # MONOCHROME1 is inverted

@pytest.mark.parametrize('kind', ['truncated_jpeg', 'text_png', 'empty'])
def test_bad_files_are_named(kinds, kind):
    _, bad = kinds
    with pytest.raises(ImageReadError, match=f'Cannot read image .*{bad[kind].name}'): load_xray(bad[kind])

def test_find_unreadable_and_inspect(kinds):
    good, bad = kinds
    folder = good['gray'].parent
    before = tree_digest(folder)
    assert sorted(f.name for f in find_unreadable(get_xray_files(folder))) == sorted(f.name for f in bad.values())
    info = inspect_images(get_xray_files(folder))
    assert sorted(info.fname[~info.ok].map(lambda f: f.name)) == sorted(f.name for f in bad.values())
    assert (info[info.ok].width == 48).all() and info[info.ok].phash.notna().all()
    assert tree_digest(folder) == before

def test_ct_hounsfield_window(tmp_path):
    hu = np.full((16, 16), -1000.); hu[4:12, 4:12] = 40            # air around soft tissue
    fn = write_dicom((hu + 1024).astype(np.uint16), tmp_path/'ct.dcm', intercept=-1024, modality='CT')
    a = np.asarray(read_dicom(fn, window='mediastinum'))          # width 350, level 50: air black, tissue ~mid grey
    assert a[0, 0] == 0 and 110 < a[8, 8] < 130
    b = np.asarray(read_dicom(fn, window=(2000, 0)))
    assert b[0, 0] == 0 and 130 < b[8, 8] < 135
    with_window = write_dicom((hu + 1024).astype(np.uint16), tmp_path/'w.dcm', intercept=-1024, modality='CT', window=(400, 40))
    c = np.asarray(read_dicom(with_window))                       # the file's own VOI window
    assert c[0, 0] == 0 and 120 < c[8, 8] < 135

def test_near_duplicates_found(tmp_path):
    src = make_synthetic_xrays(tmp_path/'d', n_per_class=5, size=64, seed=3)
    im = Image.open(src/'covid'/'covid_002.png')
    im.resize((80, 80)).save(tmp_path/'resized.png')
    im.save(tmp_path/'recompressed.jpg', quality=80)
    fns = get_xray_files(src) + [tmp_path/'resized.png', tmp_path/'recompressed.jpg']
    info = inspect_images(fns)
    pairs = {frozenset((fns[i].name, fns[j].name)) for i, j, d in near_duplicates(info.phash.tolist(), max_dist=4)}
    assert {frozenset(('covid_002.png', 'resized.png')), frozenset(('covid_002.png', 'recompressed.jpg'))} <= pairs
    assert all('covid_002.png' in p or p == frozenset(('resized.png', 'recompressed.jpg')) for p in pairs)
