"Layouts, image reading and the clear errors of the data layer."
import io
import numpy as np, pytest
from pathlib import Path
from PIL import Image
from fastai.vision.all import get_image_files
from covid_fastai.data import *
from conftest import tree_digest

def test_flat_layout(xray_folder):
    lay = find_layout(xray_folder)
    assert lay.vocab == ['covid', 'normal'] and len(lay.items) == 48 and not lay.split and lay.test_items == []

def test_split_layout_with_test(split_folder):
    lay = find_layout(split_folder)
    assert lay.vocab == ['COVID-19', 'No_findings', 'Pneumonia']
    assert sum(lay.is_valid) == 12 and len(lay.items) == 48 and len(lay.test_items) == 12
    assert not set(lay.items) & set(lay.test_items)

def test_val_name_and_nested_images(tmp_path):
    for s in ('train', 'val'): make_synthetic_xrays(tmp_path/s, n_per_class=2, size=16)
    (tmp_path/'train'/'covid'/'patient1').mkdir()
    Image.new('L', (16, 16)).save(tmp_path/'train'/'covid'/'patient1'/'x.png')
    lay = find_layout(tmp_path)
    assert sum(lay.is_valid) == 4 and len(lay.items) == 9

def test_dls_split_is_stratified_and_seeded(xray_folder):
    dls = covid_dls(xray_folder, size=32, bs=8, num_workers=0)
    assert len(dls.valid_ds) == 10
    assert sorted(dls.valid_ds.items.label.value_counts().tolist()) == [5, 5]
    dls2 = covid_dls(xray_folder, size=32, bs=8, num_workers=0)
    assert list(dls.valid_ds.items.fname) == list(dls2.valid_ds.items.fname)
    xb, yb = dls.one_batch()
    assert xb.shape == (8, 3, 32, 32) and set(yb.tolist()) <= {0, 1}

def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='Data folder not found'): find_layout(tmp_path/'missing')

def test_path_is_a_file(tmp_path):
    (tmp_path/'f.png').write_bytes(b'x')
    with pytest.raises(NotADirectoryError): find_layout(tmp_path/'f.png')

def test_fewer_than_two_classes(tmp_path):
    make_synthetic_xrays(tmp_path, n_per_class=2, classes=('covid',), size=16)
    with pytest.raises(ValueError, match="at least two class folders.*found 1: {'covid': 2}"): find_layout(tmp_path)

def test_no_class_folders(tmp_path):
    Image.new('L', (16, 16)).save(tmp_path/'loose.png')
    with pytest.raises(ValueError, match='found 0'): find_layout(tmp_path)

def test_empty_class_folder(tmp_path):
    make_synthetic_xrays(tmp_path, n_per_class=2, size=16)
    (tmp_path/'pneumonia').mkdir(); (tmp_path/'pneumonia'/'notes.txt').write_text('no images here')
    with pytest.raises(ValueError, match='pneumonia holds no image files'): find_layout(tmp_path)

def test_train_without_valid(tmp_path):
    make_synthetic_xrays(tmp_path/'train', n_per_class=2, size=16)
    with pytest.raises(ValueError, match='no valid/ folder'): find_layout(tmp_path)

def test_valid_class_not_in_train(tmp_path):
    make_synthetic_xrays(tmp_path/'train', n_per_class=2, size=16)
    make_synthetic_xrays(tmp_path/'valid', n_per_class=2, classes=('covid', 'other'), size=16)
    with pytest.raises(ValueError, match=r"\['other'\] are in valid/"): find_layout(tmp_path)

def test_unreadable_images_are_named(tmp_path):
    make_synthetic_xrays(tmp_path, n_per_class=4, size=32)
    (tmp_path/'covid'/'text.png').write_text('not an image')
    good = (tmp_path/'normal'/'normal_000.png').read_bytes()
    (tmp_path/'normal'/'truncated.png').write_bytes(good[:len(good)//2])
    assert sorted(f.name for f in find_unreadable(get_image_files(tmp_path))) == ['text.png', 'truncated.png']
    with pytest.raises(ImageReadError, match=r'(?s)2 image file\(s\).*text\.png'): covid_dls(tmp_path, num_workers=0)
    with pytest.raises(ImageReadError, match='Cannot read image .*text.png'): load_xray(tmp_path/'covid'/'text.png')

def _png(im):
    b = io.BytesIO(); im.save(b, format='PNG'); return b.getvalue()

@pytest.mark.parametrize('make', [
    lambda: Image.fromarray((np.arange(32*32).reshape(32, 32)*60).astype(np.uint16)),  # 16-bit
    lambda: Image.new('RGBA', (32, 32), (120, 120, 120, 255)),
    lambda: Image.new('L', (32, 32), 90).convert('P'),
    lambda: Image.new('LA', (32, 32), (90, 255)),
    lambda: Image.new('L', (32, 32), 90),
], ids=['I16', 'RGBA', 'P', 'LA', 'L'])
def test_modes_become_rgb8(make):
    for src in (make(), _png(make())):  # a PIL image, and the bytes of a PNG file
        im = XrayImage.create(src)
        a = np.asarray(im)
        assert im.mode == 'RGB' and a.dtype == np.uint8 and a.shape == (32, 32, 3)

def test_16bit_keeps_contrast():
    a = np.linspace(1000, 3000, 64*64).reshape(64, 64).astype(np.uint16)
    out = np.asarray(load_xray(io.BytesIO(_png(Image.fromarray(a)))))[..., 0]
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 200

def test_dls_never_write_to_source(xray_folder):
    before = tree_digest(xray_folder)
    dls = covid_dls(xray_folder, size=32, bs=8, num_workers=0)
    dls.one_batch()
    assert tree_digest(xray_folder) == before
    assert dls.path.resolve() != xray_folder.resolve()
