"Training on several processes (PyTorch DDP through fastai's `distrib_ctx`), with 2 CPU processes on the gloo backend"
import csv, json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from covid_fastai.images import make_synthetic_xrays

def _script(name):
    exe = Path(sys.executable).parent/name
    return str(exe if exe.exists() else shutil.which(name))

def test_two_processes_train_one_model(tmp_path):
    "`torchrun --nproc_per_node 2 covid-fastai train`: one model folder, the first process speaks, gathered metrics = one process's"
    src = make_synthetic_xrays(tmp_path/'data', n_per_class=22, size=48, seed=2)   # 9 validation images: uneven over 2 processes
    out = tmp_path/'model'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', _script('covid-fastai'),
           'train', str(src), '--out', str(out), '--arch', 'efficientnet_lite0', '--epochs', '2', '--freeze-epochs', '1',
           '--size', '48', '--bs', '4', '--num-workers', '0', '--sampling', 'weighted']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # one model folder, written by one process; nothing else beside the data
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'model'], list(tmp_path.iterdir())
    assert {'model.json', 'model.safetensors', 'history.csv', 'stages.csv', 'report'} <= {p.name for p in out.iterdir()}
    assert r.stdout.count('Processes: 2 (DistributedDataParallel)') == 1 and r.stdout.count('Saved to') == 1, r.stdout
    assert r.stdout.count('Stage 2 (full)') == 1, r.stdout
    card = json.loads((out/'model.json').read_text())
    assert card['recipe']['processes'] == 2
    # the validation metrics of the last epoch, gathered over both processes during training ...
    last = list(csv.DictReader(open(out/'history.csv')))[-1]
    # ... equal those of one process on the saved weights, on the same validation images
    from covid_fastai.train import prepare_layout
    from covid_fastai.inference import load_covid_model
    from sklearn.metrics import f1_score
    lay = prepare_layout(src, seed=42, check=False)
    valid = lay.subset('valid')
    assert len(valid) == 9
    pred = load_covid_model(out).with_card(tta=False).predict_proba(list(valid.fname))   # as the Learner scored: no TTA
    vocab = card['classes']
    y = np.array([vocab.index(l) for l in valid.label])
    acc, f1 = float((pred.argmax(1) == y).mean()), float(f1_score(y, pred.argmax(1), average='macro'))
    assert abs(float(last['accuracy']) - acc) < 1e-6 and abs(float(last['f1_score']) - f1) < 1e-6, (last, acc, f1)
    assert abs(card['metrics']['valid']['accuracy'] - acc) < 1e-6 and abs(card['metrics']['valid']['f1_score'] - f1) < 1e-6
