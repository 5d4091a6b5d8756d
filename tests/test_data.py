"Layouts from folders and tables, label maps, multi-label, splits, sampling and the clear errors of the data layer."
import warnings
import numpy as np, pandas as pd, pytest, torch
from pathlib import Path
from PIL import Image
from covid_fastai.images import *
from covid_fastai.data import *
from covid_fastai.dataloaders import *
from covid_fastai.check import checked_layout
from covid_fastai.prep import cached_layout
from conftest import tree_digest, write_image_kinds, make_dls

# ---- folders
def test_flat_layout(xray_folder):
    lay = folder_layout(xray_folder)
    assert lay.vocab == ['covid', 'normal'] and len(lay.df) == 48 and not lay.is_split and lay.test_items == []

def test_split_layout_with_test(split_folder):
    lay = folder_layout(split_folder)
    assert lay.vocab == ['COVID-19', 'No_findings', 'Pneumonia'] and lay.is_split
    assert lay.df.split.value_counts().to_dict() == {'train': 36, 'valid': 12, 'test': 12}

def test_val_name_and_nested_images(tmp_path):
    for s in ('train', 'val'): make_synthetic_xrays(tmp_path/s, n_per_class=2, size=16)
    (tmp_path/'train'/'covid'/'patient1').mkdir()
    Image.new('L', (16, 16)).save(tmp_path/'train'/'covid'/'patient1'/'x.png')
    lay = folder_layout(tmp_path)
    assert (lay.df.split == 'valid').sum() == 4 and len(lay.df) == 9

def test_dls_split_is_stratified_and_seeded(xray_folder):
    dls = make_dls(xray_folder, size=32, bs=8, num_workers=0)
    assert len(dls.valid_ds) == 10
    assert sorted(dls.valid_ds.items.label.value_counts().tolist()) == [5, 5]
    dls2 = make_dls(xray_folder, size=32, bs=8, num_workers=0)
    assert list(dls.valid_ds.items.fname) == list(dls2.valid_ds.items.fname)
    xb, yb = dls.one_batch()
    assert xb.shape == (8, 3, 32, 32) and set(yb.tolist()) <= {0, 1}

# ---- errors
def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='Data folder not found'): folder_layout(tmp_path/'missing')

def test_path_is_a_file(tmp_path):
    (tmp_path/'f.png').write_bytes(b'x')
    with pytest.raises(NotADirectoryError): folder_layout(tmp_path/'f.png')

def test_fewer_than_two_classes(tmp_path):
    make_synthetic_xrays(tmp_path, n_per_class=2, classes=('covid',), size=16)
    with pytest.raises(ValueError, match="at least two class folders.*found 1: {'covid': 2}"): folder_layout(tmp_path)

def test_no_class_folders(tmp_path):
    Image.new('L', (16, 16)).save(tmp_path/'loose.png')
    with pytest.raises(ValueError, match='found 0'): folder_layout(tmp_path)

def test_empty_class_folder(tmp_path):
    make_synthetic_xrays(tmp_path, n_per_class=2, size=16)
    (tmp_path/'pneumonia').mkdir(); (tmp_path/'pneumonia'/'notes.txt').write_text('no images here')
    with pytest.raises(ValueError, match='pneumonia holds no image files'): folder_layout(tmp_path)

def test_train_without_valid(tmp_path):
    make_synthetic_xrays(tmp_path/'train', n_per_class=2, size=16)
    with pytest.raises(ValueError, match='no valid/ folder'): folder_layout(tmp_path)

def test_valid_class_not_in_train(tmp_path):
    make_synthetic_xrays(tmp_path/'train', n_per_class=2, size=16)
    make_synthetic_xrays(tmp_path/'valid', n_per_class=2, classes=('covid', 'other'), size=16)
    with pytest.raises(ValueError, match=r"\['other'\] are in valid/"): folder_layout(tmp_path)

def test_unreadable_images_stop_or_are_skipped(tmp_path):
    make_synthetic_xrays(tmp_path, n_per_class=6, size=32)
    good, bad = write_image_kinds(tmp_path/'covid')
    with pytest.raises(ImageReadError, match=r'(?s)3 image file\(s\).*skip_unreadable=True.*(empty|text|truncated)'):
        make_dls(tmp_path, num_workers=0)
    with pytest.warns(UserWarning, match='Leaving out 3 unreadable'):
        dls = make_dls(tmp_path, size=32, skip_unreadable=True, num_workers=0)
    used = set(dls.layout.df.fname.map(lambda f: f.name))
    assert not used & {f.name for f in bad.values()} and set(f.name for f in good.values()) <= used
    for dl in (dls.train, dls.valid):            # every remaining kind (16-bit, RGBA, CMYK, DICOM...) loads
        for xb, yb in dl: assert xb.shape[1:] == (3, 32, 32)

# ---- tables
@pytest.fixture
def table(tmp_path):
    "A labels.csv like ../shared/data/xray3's, with NIH-style patients (3 images each)"
    make_synthetic_xrays(tmp_path/'imgs', n_per_class=18, classes=('COVID-19', 'Pneumonia', 'No_findings'), size=32, per_patient=3)
    rows = [dict(path=str(f.relative_to(tmp_path)), label=f.parent.name, patient='p' + f.name.split('_')[0])
            for f in sorted(get_xray_files(tmp_path/'imgs'))]
    pd.DataFrame(rows).to_csv(tmp_path/'labels.csv', index=False)
    return tmp_path/'labels.csv'

def test_table_layout_and_patient_split(table):
    lay = table_layout(table)
    assert len(lay.df) == 54 and lay.has_patients and lay.vocab == ['COVID-19', 'No_findings', 'Pneumonia']
    sp = split_layout(lay, valid_pct=0.2, test_pct=0.2, seed=0)   # auto: patients known -> grouped
    assert patient_overlap(sp) == {}
    assert set(sp.df.split) == {'train', 'valid', 'test'}
    for s in ('valid', 'test'): assert sp.subset(s).label.nunique() == 3   # stratified as far as groups allow
    dls = make_dls(lay, size=32, bs=8, num_workers=0)
    assert patient_overlap(dls.layout) == {}
    assert set(dls.layout.df.split) == {'train', 'valid'}

def test_table_from_dataframe_with_filter_and_map(table):
    df = pd.read_csv(table)
    df['view'] = ['PA', 'L'] * (len(df)//2)
    lay = table_layout(df, path=table.parent, filters=dict(view='PA'), label_fn=BINARY_INFECTED)
    assert len(lay.df) == 27 and lay.vocab == ['Infected', 'Normal']

def test_table_errors(table, tmp_path):
    with pytest.raises(KeyError, match=r"no column 'file'; its columns are \['path', 'label', 'patient'\]"):
        table_layout(table, fn_col='file')
    df = pd.read_csv(table); df.loc[0, 'path'] = 'imgs/missing.png'
    with pytest.raises(FileNotFoundError, match='1 of 54 files .* missing'): table_layout(df, path=table.parent)
    with pytest.raises(FileNotFoundError, match='Label file not found'): table_layout(tmp_path/'nope.csv')

def _labels_csv(tmp_path, labels, name='labels.csv', **cols):
    "A table of one synthetic image per label (and extra columns), as a user would write it"
    make_synthetic_xrays(tmp_path/'imgs', n_per_class=len(labels), classes=('x',), size=16)
    files = sorted(get_xray_files(tmp_path/'imgs'))
    df = pd.DataFrame(dict(path=[str(f.relative_to(tmp_path)) for f in files], label=labels, **cols))
    df.to_csv(tmp_path/name, index=False, sep='\t' if name.endswith('.tsv') else ',')
    return tmp_path/name

def test_labels_pandas_reads_as_missing_are_labels(tmp_path):
    "A class named NA, None, null or nan is a class: never dropped as a missing value"
    for word in ('NA', 'None', 'null', 'nan', 'N/A'):
        lay = table_layout(_labels_csv(tmp_path/word, [word] * 10 + ['normal'] * 10))
        assert lay.vocab == sorted([word, 'normal']) and len(lay.df) == 20, word

def test_empty_label_is_an_error_naming_the_rows(tmp_path):
    with pytest.raises(ValueError, match=r'rows 3, 5 have no label'): table_layout(_labels_csv(tmp_path, ['a', '', 'b', '', 'a', 'b']))

def test_split_column_values(tmp_path):
    "One typo, a blank, 'training' or 'dev' in a split column is an error naming the rows: the data is never silently re-split"
    good = ['train', 'train', 'Valid', 'val', 'test', 'TRAIN']
    lay = table_layout(_labels_csv(tmp_path/'ok', ['a', 'b'] * 3, split=good), split_col='split')
    assert lay.df.split.tolist() == ['train', 'train', 'valid', 'valid', 'test', 'train'] and lay.is_split
    for bad, row in (('tst', 6), ('', 3), ('training', 2), ('dev', 4)):
        sp = list(good); sp[row - 2] = bad
        with pytest.raises(ValueError, match=rf"rows {row} have split values '{bad}'"):
            read_layout(_labels_csv(tmp_path/f'bad{row}', ['a', 'b'] * 3, split=sp))   # the column is found by its name

def test_tsv_is_tab_separated(tmp_path):
    lay = read_layout(_labels_csv(tmp_path, ['a, with comma', 'b'] * 3, name='labels.tsv', patient=['p1', 'p2', 'p3'] * 2))
    assert lay.vocab == ['a, with comma', 'b'] and lay.df.patient.tolist() == ['p1', 'p2', 'p3'] * 2

def test_latin1_table_fails_at_reading(tmp_path):
    fn = _labels_csv(tmp_path, ['Pneumonía', 'normal'] * 3)
    fn.write_bytes(fn.read_text().encode('latin-1'))
    with pytest.raises(ValueError, match='not UTF-8 text.*save the table as UTF-8'): table_layout(fn)

def test_blank_patient_is_no_patient(tmp_path):
    lay = table_layout(_labels_csv(tmp_path, ['a', 'b'] * 2, patient=['p1', '', 'NA', 'p2']))
    assert lay.df.patient.isna().tolist() == [False, True, False, False] and lay.df.patient[2] == 'NA'

def test_covid_chestxray_metadata(tmp_path):
    make_synthetic_xrays(tmp_path/'raw', n_per_class=8, classes=('a', 'b'), size=32)
    (tmp_path/'images').mkdir()
    files = sorted(get_xray_files(tmp_path/'raw'))
    findings = ['Pneumonia/Viral/COVID-19', 'No Finding', 'Pneumonia/Bacterial/Streptococcus', 'todo']
    rows = []
    for i, f in enumerate(files):
        f.rename(tmp_path/'images'/f.name)
        rows.append(dict(patientid=i // 2, finding=findings[i % 4], view=['PA', 'AP', 'L', 'AP Supine'][i % 4 if i < 12 else 0],
                         modality='CT' if i == 15 else 'X-ray', filename=f.name))
    pd.DataFrame(rows).to_csv(tmp_path/'metadata.csv', index=False)
    lay = covid_chestxray_layout(tmp_path)
    kept = [r for r in rows if r['view'] != 'L' and r['modality'] == 'X-ray' and r['finding'] != 'todo']
    assert len(lay.df) == len(kept) and lay.has_patients
    assert set(lay.vocab) == {'COVID-19', 'No_findings', 'Pneumonia'}
    assert chestxray_3class('Pneumonia/Viral/COVID-19') == 'COVID-19' and chestxray_3class('todo') is None

def test_multi_label(tmp_path):
    make_synthetic_xrays(tmp_path/'imgs', n_per_class=12, classes=('a', 'b', 'c'), size=32)
    labels = {'a': 'Pneumonia|COVID-19', 'b': 'Pneumonia', 'c': 'No_findings'}
    rows = [dict(path=str(f.relative_to(tmp_path)), label=labels[f.parent.name]) for f in get_xray_files(tmp_path/'imgs')]
    pd.DataFrame(rows).to_csv(tmp_path/'labels.csv', index=False)
    lay = table_layout(tmp_path/'labels.csv', label_delim='|')   # 'COVID-19' is never alone: the separator is named
    assert lay.multi_label and lay.vocab == ['COVID-19', 'No_findings', 'Pneumonia']
    dls = make_dls(lay, size=32, bs=8, num_workers=0)
    xb, yb = dls.one_batch()
    assert yb.shape == (8, 3) and set(yb.flatten().tolist()) <= {0., 1.}
    binary = map_labels(lay, BINARY_INFECTED)
    assert binary.vocab == ['Infected', 'Normal']

def test_label_map_collapses_folder_classes(split_folder):
    dls = make_dls(split_folder, size=32, bs=8, label_map=BINARY_INFECTED, num_workers=0)
    assert list(dls.vocab) == ['Infected', 'Normal']
    assert dls.valid_ds.items.label.value_counts().to_dict() == {'Infected': 8, 'Normal': 4}
    dls = make_dls(split_folder, size=32, bs=8, label_map=BINARY_COVID, num_workers=0)
    assert list(dls.vocab) == ['COVID-19', 'Not_COVID']

def test_split_methods(tmp_path):
    src = make_synthetic_xrays(tmp_path, n_per_class=30, size=16, per_patient=3)
    lay = folder_layout(src, patient_re=NIH_PATIENT_RE)
    assert lay.df.patient.nunique() == 20
    for m in ('patient', 'auto'): assert patient_overlap(split_layout(lay, m, seed=5)) == {}
    with pytest.warns(UserWarning, match='look like NIH patient ids'): strat = split_layout(lay, 'stratified', seed=5)
    assert strat.subset('valid').label.value_counts().tolist() == [6, 6]
    assert patient_overlap(strat)                          # an image-level split leaks patients: that is why it is not the default
    with pytest.warns(UserWarning):
        assert split_layout(lay, 'random', seed=5).df.split.tolist() == split_layout(lay, 'random', seed=5).df.split.tolist()
    with pytest.raises(ValueError, match='patient split needs a patient id'): split_layout(folder_layout(src, patient_re=None), 'patient')
    with pytest.raises(ValueError, match='Unknown split method'): split_layout(lay, 'temporal')

def test_duplicates_across_splits_warn(tmp_path):
    make_synthetic_xrays(tmp_path/'train', n_per_class=6, size=64, seed=1)
    make_synthetic_xrays(tmp_path/'valid', n_per_class=2, size=64, seed=2)
    Image.open(tmp_path/'train'/'normal'/'normal_003.png').resize((70, 70)).save(tmp_path/'valid'/'normal'/'dup.png')
    with pytest.warns(UserWarning, match=r'(?s)1 pair\(s\) of near-duplicate.*normal_003.png \(train\) ~ .*dup.png \(valid\)'):
        make_dls(tmp_path, size=32, num_workers=0)

def test_weighted_sampling_balances_batches(tmp_path):
    make_synthetic_xrays(tmp_path, n_per_class=40, classes=('common',), size=16)
    make_synthetic_xrays(tmp_path, n_per_class=8, classes=('rare',), size=16, seed=1)
    dls = make_dls(tmp_path, size=16, bs=8, sampling='weighted', num_workers=0, aug='none')
    ys = torch.cat([yb for _ in range(20) for _, yb in dls.train]).float()
    assert 0.35 < ys.mean().item() < 0.65                  # ~ half 'rare', against 1/6 without weighting
    plain = make_dls(tmp_path, size=16, bs=8, num_workers=0, aug='none')
    ys = torch.cat([yb for _ in range(5) for _, yb in plain.train]).float()
    assert ys.mean().item() < 0.3

def test_cache_is_used_and_source_untouched(xray_folder, tmp_path):
    before = tree_digest(xray_folder)
    dls = make_dls(xray_folder, size=32, bs=8, cache=tmp_path/'cache', cache_size=40, num_workers=0)
    assert all(str(f).startswith(str(tmp_path/'cache')) for f in dls.layout.df.fname)
    assert Image.open(dls.layout.df.fname[0]).size == (40, 40)
    dls.one_batch()
    assert tree_digest(xray_folder) == before
    assert dls.path.resolve() != xray_folder.resolve()

# ---- regressions of the trustworthy-core issue
def test_valid_is_never_augmented(xray_folder):
    "Two passes over dls.valid with workers on a CPU are identical, whatever was iterated before (was: augmented by the workers)"
    lay = split_layout(folder_layout(xray_folder), seed=0)
    grab = lambda dl: torch.cat([b[0].as_subclass(torch.Tensor) for b in dl])
    dls = covid_dls(lay, size=32, bs=8, num_workers=2, aug='ct')
    v1 = grab(dls.valid); t = grab(dls.train); v2 = grab(dls.valid)
    assert torch.equal(v1, v2)
    assert torch.equal(v1, grab(covid_dls(lay, size=32, bs=8, num_workers=0, aug='ct').valid))
    assert not torch.equal(t[:8], grab(dls.train)[:8])              # while training batches are augmented (and shuffled)
    tdl = dls.test_dl(lay.subset('valid'), with_labels=True)         # test_dl of the same images: the validation pipeline
    assert torch.equal(v1, grab(tdl))

def test_nih_names_split_by_patient_by_default(tmp_path):
    src = make_synthetic_xrays(tmp_path/'nih', n_per_class=30, size=16, per_patient=3)
    lay = split_layout(folder_layout(src))
    assert lay.has_patients and lay.split_method == 'patient' and patient_overlap(lay) == {}
    with pytest.warns(UserWarning, match='look like NIH patient ids'):
        by_image = split_layout(folder_layout(src, patient_re=None))
    assert by_image.split_method == 'stratified'

def test_augmented_copies_stay_with_their_original(tmp_path):
    "augment then split an unsplit folder: no original and its copy on two sides (was: 53 of 90 originals leaked)"
    from covid_fastai.prep import augment_folder
    src = make_synthetic_xrays(tmp_path/'tiny', n_per_class=15, size=32)
    out = augment_folder(src, tmp_path/'aug', n_per_image=3, seed=0)
    lay = make_dls(out, size=32, bs=8, num_workers=0).layout
    orig = lambda f: f.stem.split('_aug')[0]
    sides = lay.df.assign(o=lay.df.fname.map(orig)).groupby('o').split.nunique()
    assert len(sides) == 30 and sides.max() == 1
    assert lay.grouping.startswith('augmented copies')
