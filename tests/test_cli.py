"The `covid-fastai` command through subprocess: train -> evaluate -> predict -> export, safe model files, and bad input"
import os, json, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from covid_fastai.inference import load_covid_model, save_covid_model, export_onnx, Predictor
from covid_fastai.images import make_synthetic_xrays
from conftest import tree_digest

def cli(*args, ok=True, env=None):
    r = subprocess.run(['covid-fastai', *map(str, args)], capture_output=True, text=True, timeout=600,
                       env=None if env is None else {**os.environ, **env})
    if ok: assert r.returncode == 0, r.stderr[-3000:]
    return r

def one_line_error(r, *needles, code=1):
    "A bad input: exit status `code`, exactly one line on stderr naming the problem, no traceback"
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    err = r.stderr.strip()
    assert '\n' not in err and 'Traceback' not in err and err.startswith('covid-fastai '), err
    for n in needles: assert n in err, (n, err)
    return err

@pytest.fixture(scope='module')
def trained(split_folder, tmp_path_factory):
    "A model trained by `covid-fastai train` on a split folder (train/valid/test, 3 classes)"
    out = tmp_path_factory.mktemp('cli')/'model'
    before = tree_digest(split_folder)
    r = cli('train', split_folder, '--arch', 'efficientnet_lite0', '--epochs', 1, '--size', 32, '--bs', 8, '--out', out)
    assert tree_digest(split_folder) == before
    return out, r

def test_train_writes_model_and_report(trained):
    out, r = trained
    for f in ('model.safetensors', 'model.json', 'history.csv', 'stages.csv', 'report/report.html', 'report/metrics.json', 'report/predictions.csv'):
        assert (out/f).exists(), f
    d = json.loads((out/'model.json').read_text())
    assert d['classes'] == ['COVID-19', 'No_findings', 'Pneumonia'] and d['size'] == 32 and d['arch'] == 'efficientnet_lite0'
    assert d['metrics']['test'] is not None and 'torch' in d['versions']
    assert d['recipe']['config']['epochs'] == 1 and d['split']['method'] == 'folders'
    m = json.loads((out/'report'/'metrics.json').read_text())
    assert m['n'] == 12  # the test/ folder: 4 per class
    assert 'not a medical device' in r.stdout and 'test images' in r.stdout
    # the model card for people: Hugging Face format, with the test metrics and their intervals
    from huggingface_hub import ModelCard as HubCard
    card = HubCard((out/'README.md').read_text())
    assert card.data.library_name == 'covid-fastai' and card.data.eval_results[0].metric_value == round(m['accuracy'], 4)
    assert f"[{m['ci']['accuracy'][0]:.3f}, {m['ci']['accuracy'][1]:.3f}]" in card.text and '## Intended use' in card.text

def test_evaluate_predict_export(trained, split_folder, tmp_path):
    out, _ = trained
    before_model, before_data = tree_digest(out), tree_digest(split_folder)
    r = cli('evaluate', out, split_folder/'test', '--out', tmp_path/'rep', '--n-boot', 100)
    m = json.loads((tmp_path/'rep'/'metrics.json').read_text())
    assert m['n'] == 12 and 'accuracy' in r.stdout
    r = cli('evaluate', out, split_folder/'test', '--out', tmp_path/'rep2', '--label-map', 'No_findings=Other,Pneumonia=Other', '--cam', 'none')
    assert json.loads((tmp_path/'rep2'/'metrics.json').read_text())['classes'] == ['COVID-19', 'Other']
    imgs = sorted((split_folder/'test').rglob('*.png'))
    r = cli('predict', out, split_folder/'test', '--out', tmp_path/'p.csv', '--heatmaps', tmp_path/'hm')
    p = pd.read_csv(tmp_path/'p.csv')
    assert list(p.columns) == ['file', 'predicted', 'probability', 'COVID-19', 'No_findings', 'Pneumonia', 'heatmap'] and len(p) == len(imgs)
    assert np.allclose(p[['COVID-19', 'No_findings', 'Pneumonia']].sum(axis=1), 1, atol=1e-4)
    assert len(list((tmp_path/'hm').glob('*_gradcam.png'))) == len(imgs)
    assert 'not a medical device' in r.stdout and imgs[0].name in r.stdout
    r = cli('export', out, '--out', tmp_path/'m.onnx')
    assert (tmp_path/'m.onnx').exists() and 'difference' in r.stdout
    cli('predict', tmp_path/'m.onnx', *imgs, '--out', tmp_path/'p_onnx.csv')
    po = pd.read_csv(tmp_path/'p_onnx.csv')
    assert (po.predicted == p.predicted).all()
    assert np.abs(po[['COVID-19', 'No_findings', 'Pneumonia']].to_numpy() - p[['COVID-19', 'No_findings', 'Pneumonia']].to_numpy()).max() < 1e-4
    assert tree_digest(out) == before_model and tree_digest(split_folder) == before_data

def test_safe_round_trip_and_onnx_parity(three_class, tmp_path):
    learn, test = three_class
    fns = sorted(Path(test).rglob('*.png'))
    # The Learner trains in channels-last memory format, whose kernels round differently in the last bits; the file holds the
    # weights, so compare in the format a loaded model has
    learn.model.to(memory_format=torch.contiguous_format)
    p0 = Predictor.from_learner(learn).predict_proba(fns)
    save_covid_model(learn, tmp_path/'m')
    p1 = load_covid_model(tmp_path/'m').predict_proba(fns)
    np.testing.assert_array_equal(p0, p1)                       # identical, not just close
    onx = load_covid_model(export_onnx(tmp_path/'m', tmp_path/'m.onnx'))
    assert onx.backend == 'onnx' and onx.model is None
    assert np.abs(onx.predict_proba(fns) - p0).max() < 1e-4
    # the ONNX path needs neither torch nor fastai
    code = (f"import sys; from covid_fastai.inference import load_covid_model; p = load_covid_model({str(tmp_path/'m.onnx')!r});"
            f"p.predict_proba([{str(fns[0])!r}]); print('torch' in sys.modules, 'fastai' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.stdout.strip() == 'False False', r.stderr

def test_pickle_needs_opt_in(three_class, tmp_path):
    learn, test = three_class
    learn.export(tmp_path/'export.pkl')
    img = sorted(Path(test).rglob('*.png'))[0]
    err = one_line_error(cli('predict', tmp_path/'export.pkl', img, '--out', tmp_path/'p.csv', ok=False), 'pickle', '--allow-pickle')
    assert 'run' in err and not (tmp_path/'p.csv').exists()
    cli('predict', tmp_path/'export.pkl', img, '--out', tmp_path/'p.csv', '--allow-pickle')
    assert len(pd.read_csv(tmp_path/'p.csv')) == 1

def test_bad_inputs(trained, tmp_path):
    model, _ = trained
    good = make_synthetic_xrays(tmp_path/'imgs', n_per_class=2, size=32)
    img = next(good.rglob('*.png'))
    (tmp_path/'notes.txt').write_text('not an image')
    corrupt = tmp_path/'corrupt.jpg'; corrupt.write_bytes(b'\xff\xd8\xff\xe0' + b'\x00' * 50)
    (tmp_path/'empty').mkdir()
    onx = export_onnx(model, tmp_path/'onnx'/'m.onnx')   # the ONNX model starts fast: most image errors are tried with it
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
    out = tmp_path/'o.csv'
    one_line_error(cli('predict', onx, tmp_path/'notes.txt', '--out', out, ok=False), 'Cannot read image', 'notes.txt')
    one_line_error(cli('predict', onx, corrupt, '--out', out, ok=False), 'Cannot read image', 'corrupt.jpg')
    one_line_error(cli('predict', onx, tmp_path/'empty', '--out', out, ok=False), 'No image files in folder')
    one_line_error(cli('predict', onx, tmp_path/'missing.png', '--out', out, ok=False), 'No such image file')
    # wrong or truncated model files
    (tmp_path/'bad_model').mkdir()
    (tmp_path/'bad_model'/'model.json').write_text('{"arch": "efficientnet_lite0"')
    one_line_error(cli('predict', tmp_path/'bad_model', img, '--out', out, ok=False), 'not a valid model description')
    (tmp_path/'trunc').mkdir()
    (tmp_path/'trunc'/'model.json').write_bytes((model/'model.json').read_bytes())
    (tmp_path/'trunc'/'model.safetensors').write_bytes((model/'model.safetensors').read_bytes()[:5000])
    one_line_error(cli('predict', tmp_path/'trunc', img, '--out', out, ok=False), 'SHA-256 differs')   # the card's checksum catches it first
    (tmp_path/'other').mkdir()
    meta = json.loads((model/'model.json').read_text()); meta['arch'] = 'mobilenet'
    (tmp_path/'other'/'model.json').write_text(json.dumps(meta))
    (tmp_path/'other'/'model.safetensors').write_bytes((model/'model.safetensors').read_bytes())
    one_line_error(cli('predict', tmp_path/'other', img, '--out', out, ok=False), 'not a valid weights file for the mobilenet model')
    (tmp_path/'junk.onnx').write_bytes(b'\x08\x07junk' * 10)
    one_line_error(cli('predict', tmp_path/'junk.onnx', img, '--out', out, ok=False), 'not a valid ONNX model')
    one_line_error(cli('predict', tmp_path/'notes.txt', img, '--out', out, ok=False), 'not a model file')
    # a model whose classes do not match the task
    one_line_error(cli('evaluate', model, good, '--out', tmp_path/'r', ok=False), "not classes of the model", 'label_map')
    # outputs inside the inputs are refused
    one_line_error(cli('predict', onx, good, '--out', good/'p.csv', ok=False), 'inputs are never modified')
    one_line_error(cli('evaluate', model, good, '--out', good/'rep', ok=False), 'inputs are never modified')
    assert not out.exists() and not (good/'p.csv').exists() and not (good/'rep').exists() and not (tmp_path/'r').exists()
    assert {p: p.read_bytes() for p in snapshot} == snapshot
    # --debug shows the traceback
    r = cli('predict', onx, tmp_path/'notes.txt', '--out', out, '--debug', ok=False)
    assert r.returncode != 0 and 'Traceback' in r.stderr
    # --skip-unreadable goes on, listing the bad file with its error
    r = cli('predict', onx, img, corrupt, '--out', out, '--skip-unreadable')
    df = pd.read_csv(out)
    assert len(df) == 2 and df.predicted.notna().sum() == 1 and df.error[df.predicted.isna()].str.contains('corrupt.jpg').all() and 'corrupt.jpg' in r.stderr
    # --resume with nothing to resume predicts everything
    cli('predict', onx, img, '--out', tmp_path/'resumed.csv', '--resume')
    assert len(pd.read_csv(tmp_path/'resumed.csv')) == 1

def test_data_commands(xray_folder, tmp_path):
    before = tree_digest(xray_folder)
    r = cli('check-data', xray_folder)
    assert '48' in r.stdout or 'images' in r.stdout
    cli('resize', xray_folder, tmp_path/'small', '--size', 32)
    im = Image.open(next((tmp_path/'small').rglob('*.png')))
    assert max(im.size) == 32
    one_line_error(cli('resize', xray_folder, tmp_path/'small', '--size', 48, ok=False), 'size 32 (asked 48)', '--rebuild')
    cli('resize', xray_folder, tmp_path/'small', '--size', 48, '--rebuild')
    assert max(Image.open(next((tmp_path/'small').rglob('*.png'))).size) == 48
    cli('augment', xray_folder, tmp_path/'aug', '--n-per-image', 1)
    assert len(list((tmp_path/'aug').rglob('*.png'))) == 2 * len(list(Path(xray_folder).rglob('*.png')))
    one_line_error(cli('resize', xray_folder, xray_folder/'small', ok=False), 'inputs are never modified')
    one_line_error(cli('check-data', tmp_path/'nothing', ok=False), 'No such file or folder')
    assert tree_digest(xray_folder) == before
    r = cli('fly', ok=False)
    assert r.returncode == 2 and 'valid commands' in r.stderr

@pytest.mark.parametrize('cmd', ['demo', 'train', 'evaluate', 'predict', 'export', 'check-data', 'resize', 'augment', 'serve', 'push'])
def test_help_from_docments(cmd):
    r = cli(cmd, '--help')
    assert f'covid-fastai {cmd}' in r.stdout and '--debug' in r.stdout
    assert 'Show the full traceback on errors' in r.stdout

def test_train_options_come_from_the_config():
    "covid-fastai train has one option per TrainConfig field, parsed as train_covid_learner reads them"
    from dataclasses import fields
    from fastcore.script import anno_parser
    from covid_fastai.config import TrainConfig
    from covid_fastai.cli import covid_fastai_train
    p = anno_parser(covid_fastai_train.__wrapped__)
    opts = {a.dest for a in p._actions}
    assert {f.name for f in fields(TrainConfig)} <= opts
    ns = p.parse_args(['data', '--epochs', '1,3,3,4', '--recipe', 'progressive', '--patient-re', 'none', '--window', '1500,-600',
                       '--aug', 'ct', '--save-best', 'f1_score', '--early-stop', '2', '--pretrained', 'false', '--fp16', 'auto',
                       '--loss-kwargs', 'gamma=2,alpha=0.25', '--label-map', 'Pneumonia=Infected'])
    kw = {k: v for k, v in vars(ns).items() if k in {f.name for f in fields(TrainConfig)}}
    c = TrainConfig(**kw)
    assert (c.epochs, c.patient_re, c.window, c.aug, c.save_best, c.early_stop, c.pretrained, c.fp16) == \
           ([1, 3, 3, 4], None, (1500., -600.), 'ct', 'f1_score', 2, False, None)
    assert c.loss_kwargs == dict(gamma=2, alpha=0.25) and c.label_map == {'Pneumonia': 'Infected'}
    d = p.parse_args(['data'])
    assert {k: getattr(d, k) for k in ('epochs', 'size', 'sampling', 'patient_re')} == \
           {k: getattr(TrainConfig(), k) for k in ('epochs', 'size', 'sampling', 'patient_re')}

def test_augment_then_train_keeps_copies_with_their_original(tmp_path):
    "was: `augment` on an unsplit folder then `train` put copies of 53 of 90 originals on both sides of the split"
    src = make_synthetic_xrays(tmp_path/'tiny', n_per_class=10, size=32)
    cli('augment', src, tmp_path/'aug', '--n-per-image', 3)
    cli('train', tmp_path/'aug', '--arch', 'efficientnet_lite0', '--epochs', 1, '--freeze-epochs', 0, '--size', 32, '--bs', 8,
        '--report', 'false', '--out', tmp_path/'model')
    card = json.loads((tmp_path/'model'/'model.json').read_text())
    assert card['split']['method'] == 'patient' and 'augmented copies' in card['split']['grouping']
    assert card['split']['patients']['valid'] >= 2
    assert sum(card['split']['counts']['valid'].values()) % 4 == 0      # whole groups: an original and its 3 copies

def test_demo_runs_offline_on_the_bundled_sample(tmp_path):
    "The README's main job: no data folder, no network; a log that reads as lines (stdout is a pipe here)"
    from covid_fastai.datasets import sample_xrays
    before = tree_digest(sample_xrays())
    r = cli('demo', '--epochs', 1, '--freeze-epochs', 1, '--size', 64, '--out', tmp_path/'demo')
    m = json.loads((tmp_path/'demo'/'report'/'metrics.json').read_text())
    assert m['n'] == 120 and m['classes'] == ['No_findings', 'Pneumonia'] and m['chance']['majority_accuracy'] == 0.5
    out = r.stdout
    assert '480 X-rays of 480 patients' in out and 'split by patient' in out and 'Stage 1 (head)' in out and '  epoch 1/1: train_loss ' in out
    assert 'Report: ' in out and out.strip().splitlines()[-1].startswith('Result on 120 held-out test images: accuracy ')   # ends with the result against chance
    assert '\r' not in out and '█' not in out and len(out.splitlines()) < 40   # no progress-bar redraws in a log
    assert tree_digest(sample_xrays()) == before

def test_help_lists_the_backbones():
    "`--help` names every backbone of the registry (the docment is checked against `ARCHS`, so it cannot drift)"
    from covid_fastai.models import ARCHS
    r = cli('train', '--help')
    text = ' '.join(r.stdout.split())
    assert all(a in text for a in ARCHS), [a for a in ARCHS if a not in text]

def test_ensembles_and_tta_from_the_command_line(trained, split_folder, tmp_path, three_class):
    "`predict/evaluate MODEL_A MODEL_B ...` average the models' probabilities; `--tta true` averages flips and a 10% zoom"
    import shutil
    out, _ = trained
    twin = tmp_path/'twin'; shutil.copytree(out, twin)          # the same weights: the ensemble must equal the model
    imgs = sorted((split_folder/'test').rglob('*.png'))[:4]
    classes = ['COVID-19', 'No_findings', 'Pneumonia']
    cli('predict', out, *imgs, '--out', tmp_path/'one.csv', '--tta', 'false')   # (saved models use TTA by default)
    cli('predict', out, twin, *imgs, '--out', tmp_path/'two.csv', '--tta', 'false')
    one, two = pd.read_csv(tmp_path/'one.csv'), pd.read_csv(tmp_path/'two.csv')
    assert len(two) == 4 and np.allclose(one[classes], two[classes], atol=1e-5)
    cli('predict', out, *imgs, '--out', tmp_path/'tta.csv', '--tta', 'true')
    tta = pd.read_csv(tmp_path/'tta.csv')
    assert np.allclose(tta[classes].sum(axis=1), 1, atol=1e-4) and not np.allclose(tta[classes], one[classes], atol=1e-6)
    cli('evaluate', out, twin, split_folder/'test', '--out', tmp_path/'rep', '--n-boot', 20, '--tta', 'true')
    m = json.loads((tmp_path/'rep'/'metrics.json').read_text())
    assert m['n'] == 12 and m['model']['arch'].startswith('ensemble(') and m['provenance']['tta'] is False   # the members' cards carry it
    other_classes = tmp_path/'other'; save_covid_model(three_class[0], other_classes)
    one_line_error(cli('predict', out, other_classes, *imgs, '--out', tmp_path/'x.csv', ok=False), "classes differ")
    one_line_error(cli('predict', out, twin, *imgs, '--heatmaps', tmp_path/'h', ok=False), 'explains one model')

def test_quality_preset_trains_a_saved_ensemble(split_folder, tmp_path):
    "`train --quality best` trains the preset's members on one split into one folder, which predict/evaluate read as one model"
    from covid_fastai.presets import QUALITY_PRESETS
    out, classes = tmp_path/'best', ['COVID-19', 'No_findings', 'Pneumonia']
    before = tree_digest(split_folder)
    r = cli('train', split_folder, '--quality', 'best', '--epochs', 1, '--size', 32, '--bs', 8, '--out', out)
    assert tree_digest(split_folder) == before
    spec = json.loads((out/'ensemble.json').read_text())
    assert len(spec['members']) == len(QUALITY_PRESETS['best']) == len(set(spec['members'])) and spec['quality'] == 'best'
    for n in spec['members']: assert json.loads((out/n/'model.json').read_text())['size'] == 32
    assert (out/'report'/'report.html').exists() and 'not a medical device' in r.stdout and "'best' ensemble" in r.stdout
    imgs = sorted((split_folder/'test').rglob('*.png'))[:3]
    cli('predict', out, *imgs, '--out', tmp_path/'p.csv')
    p = pd.read_csv(tmp_path/'p.csv')
    ens = load_covid_model(out)
    assert type(ens).__name__ == 'Ensemble' and ens.names == spec['members']
    assert np.allclose(p[classes], ens.predict_proba([str(i) for i in imgs]), atol=1e-4)
    one_line_error(cli('train', split_folder, '--quality', 'bset', '--out', tmp_path/'x', ok=False), "did you mean 'best'")
    assert not (tmp_path/'x').exists()

def test_hub_names_offline(trained, split_folder, tmp_path):
    "A model in the Hub cache (laid out as huggingface_hub writes it) predicts by its hf:// name with no network; pushing without network fails in one line"
    import shutil
    out, _ = trained
    commit = '0123456789abcdef0123456789abcdef01234567'
    root = tmp_path/'hub'/'models--someone--covid'
    shutil.copytree(out, root/'snapshots'/commit, ignore=shutil.ignore_patterns('report', '*.csv'))
    (root/'refs').mkdir(parents=True); (root/'refs'/'main').write_text(commit)
    env = dict(HF_HUB_CACHE=str(tmp_path/'hub'), HF_HUB_OFFLINE='1')
    imgs = sorted((split_folder/'test').rglob('*.png'))[:3]
    cli('predict', 'hf://someone/covid', *imgs, '--out', tmp_path/'hub.csv', '--backend', 'torch', env=env)
    cli('predict', out, *imgs, '--out', tmp_path/'local.csv', '--backend', 'torch')
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path/'hub.csv'), pd.read_csv(tmp_path/'local.csv'))
    one_line_error(cli('predict', 'hf://someone/missing', *imgs, '--out', tmp_path/'x.csv', ok=False, env=env), 'not in the Hub cache')
    one_line_error(cli('push', out, 'someone/covid', ok=False, env=env), 'cannot reach the Hugging Face Hub', 'check the network')

def test_two_processes_write_one_csv(trained, split_folder, tmp_path):
    "Two processes (as `torchrun --nproc_per_node 2` starts them: RANK/WORLD_SIZE) write the single-process CSV; so do `--shard` runs one after the other"
    out, _ = trained
    test = split_folder/'test'
    cli('predict', out, test, '--out', tmp_path/'one.csv', '--bs', 2)
    one = pd.read_csv(tmp_path/'one.csv')
    cmd = ['covid-fastai', 'predict', str(out), str(test), '--out', str(tmp_path/'two.csv'), '--bs', '2']
    env = lambda r: {**os.environ, 'RANK': str(r), 'LOCAL_RANK': str(r), 'WORLD_SIZE': '2', 'MASTER_ADDR': 'localhost', 'MASTER_PORT': '29533'}
    procs = [subprocess.Popen(cmd, env=env(r), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    res = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in res]
    two = pd.read_csv(tmp_path/'two.csv')
    assert list(two.file) == list(one.file) and (two.predicted == one.predicted).all()
    assert np.abs(two.iloc[:, 2:].to_numpy() - one.iloc[:, 2:].to_numpy()).max() < 1e-5
    assert 'shares merged into two.csv' in res[0][1] + res[1][1]
    assert sorted(f.name for f in tmp_path.iterdir()) == ['one.csv', 'two.csv']   # no share left behind
    r = cli('predict', out, test, '--out', tmp_path/'three.csv', '--bs', 2, '--shard', '1/2')
    assert not (tmp_path/'three.csv').exists() and 'the last share to finish writes three.csv' in r.stderr
    cli('predict', out, test, '--out', tmp_path/'three.csv', '--bs', 2, '--shard', '0/2')
    assert (tmp_path/'three.csv').read_bytes() == (tmp_path/'two.csv').read_bytes()
    one_line_error(cli('predict', out, test, '--out', tmp_path/'x.csv', '--shard', '2/2', ok=False), '0 <= i < n')

def test_train_logs_to_every_tracker(tmp_path):
    "--log: TensorBoard, W&B (offline), MLflow (file store) and CSV each get the run; an unknown tracker is a one-line error naming the valid ones"
    src = make_synthetic_xrays(tmp_path/'xrays', n_per_class=8, size=32)
    one_line_error(cli('train', src, '--log', 'tensorbored', '--out', tmp_path/'m0', ok=False), 'Valid names: tensorboard, wandb, mlflow, csv')
    env = {'WANDB_MODE': 'offline', 'WANDB_SILENT': 'true'}
    cli('train', src, '--arch', 'efficientnet_lite0', '--epochs', 1, '--size', 32, '--bs', 8, '--out', tmp_path/'model',
        '--log', 'csv,tensorboard,mlflow,wandb', '--log-dir', tmp_path/'runs', env=env)
    assert sorted(p.name for p in (tmp_path/'runs').iterdir()) == ['csv', 'mlruns', 'tensorboard', 'wandb']
    run = next((tmp_path/'runs'/'csv').iterdir())
    h = pd.read_csv(run/'history.csv')
    assert list(h.stage) == ['head', 'full'] and list(h.step) == [1, 2] and 'valid_loss' in h
    assert json.loads((run/'config.json').read_text())['log'] == ['csv', 'tensorboard', 'mlflow', 'wandb']
    assert json.loads((run/'model.json').read_text())['folder'] == str(tmp_path/'model')
    assert any((tmp_path/'runs'/'tensorboard').rglob('events.out.tfevents.*')) and any((tmp_path/'runs'/'wandb').glob('offline-run-*/run-*.wandb'))
    from mlflow.tracking import MlflowClient
    os.environ.setdefault('MLFLOW_ALLOW_FILE_STORE', 'true')
    c = MlflowClient((tmp_path/'runs'/'mlruns').resolve().as_uri())
    r = c.search_runs([c.get_experiment_by_name('covid-fastai').experiment_id])[0]
    assert r.data.params['arch'] == 'efficientnet_lite0' and r.data.tags['model_folder'] == str(tmp_path/'model') and r.info.status == 'FINISHED'
    assert [m.step for m in c.get_metric_history(r.info.run_id, 'valid_loss')] == [1, 2]
