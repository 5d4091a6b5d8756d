"Never lose a user's file, never call a broken model a success, and predict the same everywhere (issue 31): each test failed on the main of its day"
import io, json, os, shutil, subprocess
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from covid_fastai.inference import save_covid_model, load_covid_model
from conftest import tree_digest
from test_cli import cli, one_line_error

TRAIN = ['--arch', 'efficientnet_lite0', '--epochs', '1', '--freeze-epochs', '0', '--size', '32', '--bs', '8', '--report', 'false']

def test_train_never_deletes_files_it_did_not_write(xray_folder, tmp_path):
    "was: an --out holding model.json had every other file deleted (exit 0)"
    out = tmp_path/'u'
    cli('train', xray_folder, *TRAIN, '--out', out)
    assert (out/'model.json').exists() and (out/'.covid_fastai_files').exists()
    cli('train', xray_folder, *TRAIN, '--out', out)          # its own result is replaced
    (out/'sub').mkdir(); (out/'notes.txt').write_text('my notes'); (out/'sub'/'x.txt').write_text('x')
    before = tree_digest(out)
    one_line_error(cli('train', xray_folder, *TRAIN, '--out', out, ok=False), 'holds notes.txt, which covid-fastai did not write')
    assert tree_digest(out) == before
    (out/'notes.txt').unlink()
    one_line_error(cli('train', xray_folder, *TRAIN, '--out', out, ok=False), 'holds sub/')
    assert (out/'sub'/'x.txt').read_text() == 'x'
    legacy = tmp_path/'legacy'; legacy.mkdir(); shutil.copy(out/'model.json', legacy); (legacy/'notes.txt').write_text('n')
    one_line_error(cli('train', xray_folder, *TRAIN, '--out', legacy, ok=False), 'older covid-fastai')
    assert (legacy/'notes.txt').exists()

def test_resize_rebuild_never_empties_an_unrelated_folder(xray_folder, tmp_path):
    "was: `covid-fastai resize DATA unrelated` advised --rebuild, which emptied the folder"
    other = tmp_path/'unrelated'; other.mkdir(); (other/'thesis.tex').write_text('years')
    one_line_error(cli('resize', xray_folder, other, ok=False), 'not a cache made by this version')
    one_line_error(cli('resize', xray_folder, other, '--rebuild', ok=False), 'never emptied')
    assert [p.name for p in other.iterdir()] == ['thesis.tex']

@pytest.mark.parametrize('opt,msg', [(['--lr', 'nan'], 'lr=nan: expected a finite number > 0'), (['--epochs', '0', '--freeze-epochs', '0'], 'at least one epoch'),
                                     (['--epochs', '-1'], 'epochs=-1'), (['--bs', '0'], 'bs=0'), (['--size', '0'], 'size=0'),
                                     (['--valid-pct', '1'], 'valid_pct=1.0'), (['--test-pct', '0.9'], 'must stay below 1'), (['--head-sizes', '0'], 'head_sizes=0'),
                                     (['--window', '0,40'], 'window=0.0')])
def test_options_checked_before_anything_runs(xray_folder, tmp_path, opt, msg):
    "was: raw messages from torch, PIL or scikit-learn after reading the data, or an untrained model saved with exit 0"
    one_line_error(cli('train', xray_folder, '--out', tmp_path/'m', *opt, ok=False), msg, f"--{opt[0][2:]}")
    assert not (tmp_path/'m').exists() and list(tmp_path.iterdir()) == []

def test_diverged_training_fails_and_saves_nothing(xray_folder, tmp_path):
    "was: --lr 1e30 gave NaN losses, 255 of 306 weight tensors NaN, 'Saved to...', exit 0"
    r = cli('train', xray_folder, *TRAIN[:-2], '--lr', '1e30', '--out', tmp_path/'m', ok=False)
    one_line_error(r, 'training diverged; lower the learning rate')
    assert not (tmp_path/'m').exists() and [p.name for p in tmp_path.iterdir()] == []

def test_outputs_never_go_into_the_data(xray_folder, tmp_path):
    "was: --history DATA/history.csv wrote into the data; with a CSV of absolute paths an --out inside an image folder was accepted"
    before = tree_digest(xray_folder)
    one_line_error(cli('train', xray_folder, '--history', xray_folder/'history.csv', '--out', tmp_path/'m', ok=False), 'history file', 'inside the input')
    rows = [dict(path=str(f), label=f.parent.name) for f in sorted(xray_folder.rglob('*.png'))]
    (tmp_path/'t').mkdir(); pd.DataFrame(rows).to_csv(tmp_path/'t'/'labels.csv', index=False)   # the table lives elsewhere
    one_line_error(cli('train', tmp_path/'t'/'labels.csv', '--out', xray_folder/'covid'/'m', ok=False), 'output folder', 'inside the input')
    one_line_error(cli('train', tmp_path/'t'/'labels.csv', '--cache', xray_folder/'cache', '--out', tmp_path/'m', ok=False), 'cache folder', 'inside the input')
    assert tree_digest(xray_folder) == before

def test_save_best_checkpoint_goes_under_out(xray_folder, tmp_path):
    "was: --save-best wrote ./models/best.pth into the working folder (which may be the data folder)"
    cwd = tmp_path/'cwd'; cwd.mkdir()
    r = subprocess.run(['covid-fastai', 'train', str(xray_folder), *TRAIN, '--epochs', '2', '--save-best', 'accuracy', '--out', str(tmp_path/'m')],
                       capture_output=True, text=True, timeout=600, cwd=cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    assert list(cwd.iterdir()) == [] and not (tmp_path/'m'/'checkpoints').exists()
    cfg = json.loads((tmp_path/'m'/'model.json').read_text())['recipe']['config']
    assert cfg['model_dir'] == 'checkpoints' and cfg['save_best'] == 'accuracy'

def test_same_probabilities_through_every_entry_point(three_class, tmp_path):
    "was: the web app decoded uploads at full scale, files at the model's scale: the class flipped on 11 of 22 real X-rays"
    from starlette.testclient import TestClient
    from covid_fastai.serve import create_app
    learn, test = three_class
    learn.card.preprocess = 'clahe'   # the default of today's models: preprocessing after a reduced-scale JPEG decode
    try: save_covid_model(learn, tmp_path/'model')
    finally: learn.card.preprocess = None
    (tmp_path/'imgs').mkdir()
    for i, f in enumerate(sorted(Path(test).rglob('*.png'))[:6]):
        Image.open(f).convert('RGB').resize((300 + 40 * i, 280)).save(tmp_path/'imgs'/f'x{i}.jpg', quality=90)
    jpgs = sorted((tmp_path/'imgs').glob('*.jpg'))
    pred = load_covid_model(tmp_path/'model')
    lib = pred.predict_proba(jpgs)
    cli('predict', tmp_path/'model', tmp_path/'imgs', '--out', tmp_path/'p.csv')
    df = pd.read_csv(tmp_path/'p.csv')
    assert [Path(f).name for f in df.file] == [j.name for j in jpgs]
    assert np.allclose(df[pred.vocab].values, lib, atol=1e-5)
    cli('export', tmp_path/'model', '--out', tmp_path/'m.onnx')
    assert np.allclose(load_covid_model(tmp_path/'m.onnx').predict_proba(jpgs), lib, atol=1e-5)
    with TestClient(create_app(pred, cam='none')) as c:
        web = [c.post('/api/predict', files={'image': (j.name, j.read_bytes(), 'image/jpeg')}).json()['probabilities'] for j in jpgs]
    assert np.allclose([[w[k] for k in pred.vocab] for w in web], lib, atol=1e-5)

def test_save_best_names_the_metrics_it_knows(xray_folder, tmp_path):
    "was: 'tuple index out of range' from fastai's tracker for a metric the learner does not compute"
    one_line_error(cli('train', xray_folder, *TRAIN, '--save-best', 'error_rate', '--out', tmp_path/'m', ok=False),
                   "Unknown metric to keep the best epoch by (save_best) 'error_rate'", 'valid_loss', 'accuracy')
    assert not (tmp_path/'m').exists()

def test_duplicate_spelled_with_dotdot_is_a_conflict(tmp_path):
    "was: imgs/normal/../covid/x.png listed as normal beside imgs/covid/x.png as covid was not detected"
    from covid_fastai.images import make_synthetic_xrays
    from covid_fastai.data import table_layout
    make_synthetic_xrays(tmp_path/'imgs', n_per_class=3, size=16)
    rows = [dict(path=f"imgs/{c}/{c}_00{i}.png", label=c) for c in ('covid', 'normal') for i in range(3)]
    rows.append(dict(path='imgs/normal/../covid/covid_000.png', label='normal'))
    pd.DataFrame(rows).to_csv(tmp_path/'labels.csv', index=False)
    with pytest.raises(ValueError, match='more than once with different labels'): table_layout(tmp_path/'labels.csv')

def test_hidden_class_folder_warns_on_one_line(xray_folder, tmp_path):
    "was: a class folder named .hidden was skipped without a word, and warnings printed a line of library source"
    data = tmp_path/'d'; shutil.copytree(xray_folder, data); (data/'covid').rename(data/'.covid'); shutil.copytree(data/'normal', data/'other')
    r = cli('check-data', data)
    warn = [l for l in r.stderr.splitlines() if 'hidden folder' in l]
    assert len(warn) == 1 and warn[0].startswith('covid-fastai check-data: warning: Skipped the hidden folder(s) .covid'), r.stderr
    assert 'warnings.warn' not in r.stderr and 'UserWarning' not in r.stderr, r.stderr
