"Bad input, interruption and concurrent runs: a clear one-line error or a correct result, no partial output, nothing under the input modified"
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from covid_fastai.inference import save_covid_model
from conftest import tree_digest
from test_cli import cli, one_line_error

@pytest.fixture(scope='module')
def model(three_class, tmp_path_factory):
    "A saved 3-class model and a copy of its labelled test folder (18 images)"
    learn, test = three_class
    root = tmp_path_factory.mktemp('reliability')
    save_covid_model(learn, root/'model')
    return root/'model', Path(test)

def _leftovers(folder):
    "Hidden temporary files or folders and lock files a run left beside its outputs"
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith('.') and p.name.endswith(('.part', '.lock', '.old')))

def test_folder_links_and_fifos(model, tmp_path):
    "was: `ln -s .. COVID-19/loop` read 3,690 images from 90 and relabelled other classes; a FIFO named pipe.jpg hung every reader"
    m, test = model
    d = tmp_path/'d'; shutil.copytree(test, d)
    (d/'COVID-19'/'loop').symlink_to('..')
    os.mkfifo(d/'Normal'/'pipe.jpg')
    before = tree_digest(d)
    r = cli('check-data', d, '--min-size', 8)
    assert '18 files, 18 readable' in r.stdout and 'loop' in r.stderr   # the link is named in a warning, not followed
    ev = tmp_path/'rep'
    cli('evaluate', m, d, '--out', ev, '--n-boot', 20, '--cam', 'none')
    assert json.loads((ev/'metrics.json').read_text())['n'] == 18
    res = cli('resize', d, tmp_path/'small', '--size', 24)
    assert '18 of 18 images' in res.stdout
    assert tree_digest(d) == before

def test_names_that_are_not_utf8(model, tmp_path):
    "was: check-data, train, predict and evaluate failed with 'surrogates not allowed', naming no file, after half a CSV"
    m, test = model
    d = tmp_path/'d'; shutil.copytree(test, d)
    first = sorted((d/'COVID-19').iterdir())[0]
    odd = first.with_name(os.fsdecode(b'caf\xe9_') + first.name); first.rename(odd)
    shutil.copy(odd, d/'COVID-19'/'copy.png')   # an exact duplicate: the report lists both names
    r = cli('check-data', d, '--min-size', 8, '--save', tmp_path/'chk'/'check.md')
    assert 'caf\\xe9_' in (tmp_path/'chk'/'check.md').read_text() and 'caf\\xe9_' in r.stdout
    assert str(odd) in set(pd.read_csv(tmp_path/'chk'/'check.csv', encoding_errors='surrogateescape').fname)
    r = cli('predict', m, d, '--out', tmp_path/'p.csv')
    p = pd.read_csv(tmp_path/'p.csv', encoding_errors='surrogateescape')
    assert len(p) == 19 and str(odd) in set(p.file) and 'caf\\xe9_' in r.stdout
    cli('evaluate', m, d, '--out', tmp_path/'rep', '--n-boot', 20)
    assert json.loads((tmp_path/'rep'/'metrics.json').read_text())['n'] == 19
    cli('train', d, '--arch', 'efficientnet_lite0', '--epochs', 1, '--freeze-epochs', 0, '--size', 32, '--bs', 8,
        '--num-workers', 0, '--out', tmp_path/'m2')
    assert (tmp_path/'m2'/'report'/'report.html').exists()

def test_outputs_are_whole_or_left_as_they_were(model, tmp_path):
    "was: predict wrote 30 of 93 rows, a failed train left an empty --out, augment stopped half-way with no skip option"
    m, test = model
    imgs = sorted(test.rglob('*.png'))
    bad = tmp_path/'zz_bad.png'; bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'0' * 100)
    out = tmp_path/'p.csv'; out.write_text('previous\n')
    one_line_error(cli('predict', m, *imgs, bad, '--out', out, ok=False), 'zz_bad.png')
    assert out.read_text() == 'previous\n'
    rep = tmp_path/'rep'
    cli('evaluate', m, test, '--out', rep, '--n-boot', 20, '--cam', 'none')
    before = tree_digest(rep)
    broken = tmp_path/'broken'; shutil.copytree(test, broken); shutil.copy(bad, broken/'Normal'/'zz_bad.png')
    one_line_error(cli('evaluate', m, broken, '--out', rep, '--n-boot', 20, ok=False), 'zz_bad.png')
    assert tree_digest(rep) == before
    one_line_error(cli('train', tmp_path/'broken'/'Normal', '--out', tmp_path/'never', ok=False), 'at least two class folders')
    assert not (tmp_path/'never').exists()
    one_line_error(cli('augment', broken, tmp_path/'aug', '--n-per-image', 1, ok=False), 'zz_bad.png', '--skip-unreadable')
    assert not (tmp_path/'aug').exists()
    r = cli('augment', broken, tmp_path/'aug', '--n-per-image', 1, '--skip-unreadable')
    assert len(list((tmp_path/'aug').rglob('*.png'))) == 36 and 'zz_bad.png' in r.stderr
    docs = tmp_path/'docs'; docs.mkdir(); (docs/'thesis.tex').write_text('years of work')
    one_line_error(cli('evaluate', m, test, '--out', docs, ok=False), 'it holds thesis.tex, which covid-fastai did not write')
    assert (docs/'thesis.tex').read_text() == 'years of work'
    assert _leftovers(tmp_path) == []

def test_heatmaps_of_inputs_with_one_name(model, tmp_path):
    "was: 62 predictions, 32 heatmaps: inputs sharing a file name overwrote each other's heatmap"
    m, test = model
    a, b = tmp_path/'a', tmp_path/'b'
    a.mkdir(); b.mkdir()
    for f in sorted(test.rglob('*.png'))[:3]: shutil.copy(f, a/f.name); shutil.copy(f, b/f.name)
    cli('predict', m, a, b, '--out', tmp_path/'p.csv', '--heatmaps', tmp_path/'h')
    p = pd.read_csv(tmp_path/'p.csv')
    assert len(p) == 6 and p.heatmap.nunique() == 6 and all(Path(h).exists() for h in p.heatmap)

def test_model_files_and_tables_are_checked(model, tmp_path):
    "was: temperature -1 inverted every probability with exit 0; a ';' in a label made a 4-class multi-label task; an empty CSV failed with an AttributeError"
    m, test = model
    bad = tmp_path/'bad'; shutil.copytree(m, bad)
    card = json.loads((m/'model.json').read_text())
    (bad/'model.json').write_text(json.dumps({**card, 'temperature': -1}))
    img = sorted(test.rglob('*.png'))[0]
    one_line_error(cli('predict', bad, img, '--out', tmp_path/'p.csv', ok=False), 'temperature must be a positive number')
    tab = tmp_path/'tables'; tab.mkdir()   # the reports go beside it: never inside the folder of a table
    rows = [dict(path=str(f), label=f.parent.name) for f in sorted(test.rglob('*.png'))]
    rows[0]['label'] = 'COVID-19;x'
    pd.DataFrame(rows).to_csv(tab/'semi.csv', index=False)
    one_line_error(cli('evaluate', m, tab/'semi.csv', '--out', tmp_path/'r1', ok=False), "label_delim=';'")
    (tab/'empty.csv').write_text('')
    one_line_error(cli('evaluate', m, tab/'empty.csv', '--out', tmp_path/'r2', ok=False), 'is empty')
    (tab/'header.csv').write_text('path,label\n')
    one_line_error(cli('evaluate', m, tab/'header.csv', '--out', tmp_path/'r3', ok=False), 'lists no labelled images')
    rows[0]['label'] = 'COVID-19'
    rows.append(dict(path=str(tab/'gone.png'), label='Normal'))
    pd.DataFrame(rows).to_csv(tab/'missing.csv', index=False)
    one_line_error(cli('evaluate', m, tab/'missing.csv', '--out', tmp_path/'r4', ok=False), 'missing')
    cli('evaluate', m, tab/'missing.csv', '--out', tmp_path/'r4', '--skip-unreadable', '--n-boot', 20, '--cam', 'none')
    assert json.loads((tmp_path/'r4'/'metrics.json').read_text())['n'] == 18

def test_pixel_limit_everywhere(model, tmp_path):
    "was: a 12000 x 12000 PNG was accepted by the CLI; the limit is one setting, read from the header before decoding"
    m, test = model
    env = {**os.environ, 'COVID_FASTAI_MAX_PIXELS': '1000'}   # the 48 x 48 test images (2,304 pixels) are over it
    img = sorted(test.rglob('*.png'))[0]
    r = subprocess.run(['covid-fastai', 'predict', str(m), str(img), '--out', str(tmp_path/'p.csv')], capture_output=True, text=True, env=env, timeout=300)
    one_line_error(r, '48 x 48 pixels, over the limit of 1,000', img.name)
    r = subprocess.run(['covid-fastai', 'check-data', str(test)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 3 and '18 files, 0 readable' in r.stdout

def test_ctrl_c_and_a_second_run_into_one_folder(xray_folder, tmp_path):
    "was: Ctrl-C ignored (exit 0), full tracebacks, or new weights beside an old model.json; two runs into one --out mixed their files"
    out = tmp_path/'m'
    args = ['train', str(xray_folder), '--arch', 'efficientnet_lite0', '--epochs', '200', '--size', '48', '--bs', '8', '--out', str(out)]
    p = subprocess.Popen(['covid-fastai', *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for _ in range(600):   # until training has run an epoch (its history is in the temporary folder)
            if list(tmp_path.glob('.m.*.part/history.csv')) or p.poll() is not None: break
            time.sleep(0.2)
        assert p.poll() is None, p.stderr.read()[-2000:]
        one_line_error(cli(*args, ok=False), 'Another covid-fastai run is writing to')
        os.killpg(p.pid, signal.SIGINT)   # what Ctrl-C in a terminal does: the whole process group, DataLoader workers included
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert p.returncode == 130, err[-2000:]
    assert 'Traceback' not in err and err.strip().splitlines()[-1].startswith('covid-fastai train: interrupted'), err[-2000:]
    assert not out.exists() and _leftovers(tmp_path) == []
