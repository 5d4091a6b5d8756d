"Training end to end on CPU on synthetic images, for both folder layouts, and the command line."
import json, subprocess, sys
import pytest, torch
import pandas as pd
from covid_fastai.train import train_covid_learner
from covid_fastai.images import make_synthetic_xrays
from conftest import tree_digest

def test_pretrained_lite0_beats_chance(xray_folder):
    before = tree_digest(xray_folder)
    # the synthetic classes differ by bright discs, a brightness cue that CLAHE (the default preprocessing) is meant to even out
    # on real X-rays (it scores 0.8 here): this test is about the pretrained backbone and the recipe, so it trains without it
    learn = train_covid_learner(xray_folder, arch='efficientnet_lite0', epochs=3, freeze_epochs=1, size=64, bs=8, num_workers=0, preprocess='none')
    loss, acc, f1 = learn.validate()
    assert acc >= 0.8 and f1 >= 0.8, (acc, f1)   # 10 validation images, 2 classes: chance is 0.5
    assert learn.recorder.metric_names[1:5] == ['train_loss', 'valid_loss', 'accuracy', 'f1_score']
    assert learn.history.stage.tolist() == [1, 2, 2, 2]  # 1 frozen + 3 unfrozen epochs
    assert tree_digest(xray_folder) == before    # the data folder is only read

def test_fine_tune_freezes_then_unfreezes(xray_folder):
    learn = train_covid_learner(xray_folder, arch='efficientnet_lite0', epochs=1, freeze_epochs=1, size=32, bs=8, num_workers=0)
    assert all(p.requires_grad for p in learn.model.parameters())  # unfrozen at the end
    learn.freeze()
    body_conv = learn.model[0].stem[0].weight
    assert not body_conv.requires_grad and all(p.requires_grad for p in learn.model[1].parameters())

def test_split_layout_with_test_folder(split_folder):
    learn = train_covid_learner(split_folder, arch='efficientnet_lite0', epochs=1, freeze_epochs=1, size=48, bs=8, num_workers=0)
    assert list(learn.dls.vocab) == ['COVID-19', 'No_findings', 'Pneumonia']
    assert len(learn.dls.valid_ds) == 12
    assert set(learn.card.metrics['test']) == {'loss', 'accuracy', 'f1_score'}
    assert 0 <= learn.card.metrics['test']['accuracy'] <= 1

def test_random_init_mobilenet_trains(xray_folder):
    learn = train_covid_learner(xray_folder, arch='mobilenet', pretrained=False, epochs=1, freeze_epochs=0, size=32, bs=8, num_workers=0)
    assert learn.history.stage.tolist() == [1] and learn.card.arch == 'mobilenet' and learn.card.weights == 'random initialization'

def test_seeded_runs_match(xray_folder):
    kw = dict(arch='efficientnet_lite0', epochs=1, freeze_epochs=0, size=32, bs=8, num_workers=0)
    a, b = (train_covid_learner(xray_folder, **kw).recorder.values for _ in range(2))
    assert a == b

def test_errors_before_training(tmp_path):
    with pytest.raises(ValueError, match='Valid names'): train_covid_learner(tmp_path, arch='alexnet')
    with pytest.raises(FileNotFoundError): train_covid_learner(tmp_path/'nope', arch='efficientnet_lite0')

def test_cli_trains_and_saves(xray_folder, tmp_path):
    out = tmp_path/'model'
    r = subprocess.run(['covid-fastai-train', str(xray_folder), '--arch', 'efficientnet_lite0', '--epochs', '1',
                        '--size', '32', '--bs', '8', '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads((out/'model.json').read_text())
    assert d['arch'] == 'efficientnet_lite0' and d['classes'] == ['covid', 'normal'] and d['mean'] == [0.5]*3
    assert set(d['metrics']['valid']) == {'loss', 'accuracy', 'f1_score'}
    from safetensors.torch import load_file
    sd = load_file(str(out/'model.safetensors'))
    assert any(k.startswith('1.') for k in sd)            # the head is saved with the body
    hist = pd.read_csv(out/'history.csv')
    assert hist.stage.tolist() == [1, 2] and {'train_loss', 'valid_loss', 'accuracy', 'f1_score'} <= set(hist.columns)
    assert 'not a medical device' in r.stdout

def test_cli_errors_are_one_line(xray_folder, tmp_path):
    r = subprocess.run(['covid-fastai-train', str(tmp_path/'nope')], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().startswith('covid-fastai train: error: No such file or folder') and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr
    r = subprocess.run(['covid-fastai-train', str(xray_folder), '--out', str(xray_folder/'out')], capture_output=True, text=True)
    assert r.returncode == 1 and 'inputs are never modified' in r.stderr and not (xray_folder/'out').exists()
    r = subprocess.run(['covid-fastai-train', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and '--arch' in r.stdout and 'Backbone, one of mobilenet, ' in r.stdout and 'efficientnet_lite0' in r.stdout

@pytest.mark.parametrize('loss', ['bce', 'focal'])
def test_multi_label_trains(tmp_path, loss):
    from covid_fastai.images import make_synthetic_xrays, get_xray_files
    make_synthetic_xrays(tmp_path/'imgs', n_per_class=16, classes=('a', 'b'), size=48)
    labels = {'a': 'Pneumonia|COVID-19', 'b': 'No_findings'}
    rows = [dict(path=str(f.relative_to(tmp_path)), label=labels[f.parent.name]) for f in get_xray_files(tmp_path/'imgs')]
    pd.DataFrame(rows).to_csv(tmp_path/'labels.csv', index=False)
    from covid_fastai.data import table_layout
    learn = train_covid_learner(table_layout(tmp_path/'labels.csv', label_delim='|'), arch='efficientnet_lite0', recipe='head', epochs=4,
                                size=48, bs=8, aug='none', num_workers=0, loss=None if loss == 'bce' else loss)
    assert learn.recorder.metric_names[3:8] == ['accuracy_multi', 'f1_score', 'f1_COVID-19', 'f1_No_findings', 'f1_Pneumonia']
    h = learn.history
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0]
    assert type(learn.loss_func).__name__ == ('BCEWithLogitsLossFlat' if loss == 'bce' else 'SigmoidFocalLossFlat')
    assert learn.card.loss == loss
    from covid_fastai.inference import save_covid_model, load_covid_model
    pred = load_covid_model(save_covid_model(learn, tmp_path/'model'))
    p = pred.predict_proba(learn.dls.layout.subset('valid').fname.tolist())
    assert p.shape[1] == 3 and ((p >= 0) & (p <= 1)).all() and not torch.allclose(torch.tensor(p).sum(1), torch.ones(len(p)))  # sigmoid, not softmax

def test_class_weighted_loss(tmp_path):
    from covid_fastai.images import make_synthetic_xrays
    make_synthetic_xrays(tmp_path, n_per_class=30, classes=('common',), size=32)
    make_synthetic_xrays(tmp_path, n_per_class=10, classes=('rare',), size=32, seed=1)
    learn = train_covid_learner(tmp_path, arch='efficientnet_lite0', epochs=1, size=32, bs=8, class_weighted=True, num_workers=0)
    w = learn.loss_func.func.weight
    assert torch.allclose(w.cpu(), torch.tensor([40/60, 40/20]), atol=0.05)

def test_cli_defaults_are_the_library_defaults():
    "`covid-fastai train` trains with `train_covid_learner`'s defaults (the ones bench/quality.py measures)"
    import inspect
    from covid_fastai.cli import covid_fastai_train
    lib, cli = (inspect.signature(f).parameters for f in (train_covid_learner, covid_fastai_train.__wrapped__))
    for k in ('arch', 'recipe', 'epochs', 'freeze_epochs', 'lr', 'size', 'bs', 'seed', 'opt', 'schedule', 'loss', 'sampling', 'mixup'):
        assert lib[k].default == cli[k].default, k

def test_mixup_blends_training_batches_only(xray_folder):
    "mixup=0.4 trains every batch through fastai's MixUp loss and validates with the plain loss; the card records it"
    from fastai.callback.core import Callback
    from fastai.callback.mixup import MixUp
    class See(Callback):
        def before_fit(self): self.seen = []
        def after_loss(self): self.seen.append((self.training, getattr(self.learn.loss_func, '__func__', None)))
    see = See()
    learn = train_covid_learner(xray_folder, arch='efficientnet_lite0', epochs=1, size=32, bs=8, num_workers=0, mixup=0.4, cbs=[see])
    assert {f for t, f in see.seen if t} == {MixUp.lf} and not any(f is MixUp.lf for t, f in see.seen if not t)
    assert learn.card.recipe['config']['mixup'] == 0.4 and not getattr(learn.loss_func, '__func__', None)
    r = subprocess.run(['covid-fastai-train', '--help'], capture_output=True, text=True)
    assert '--mixup' in r.stdout and "MixUp" in r.stdout

@pytest.mark.parametrize('train_bn', [True, False])
def test_train_bn(xray_folder, train_bn):
    "train_bn=False (the default) keeps the frozen body's batch norm as pretrained (weights and running statistics); True trains it"
    from covid_fastai.models import create_covid_model
    learn = train_covid_learner(xray_folder, arch='efficientnet_lite0', recipe='head', epochs=1, size=32, bs=8, num_workers=0, train_bn=train_bn)
    ref = create_covid_model('efficientnet_lite0', 2)   # the same pretrained body
    bns = lambda m: [t.detach().cpu() for mod in m[0].modules() if isinstance(mod, torch.nn.BatchNorm2d) for t in (mod.weight, mod.bias, mod.running_mean)]
    same = all(torch.equal(a, b) for a, b in zip(bns(learn.model), bns(ref)))
    assert same == (not train_bn)
    assert learn.card.recipe['config']['train_bn'] is train_bn

def test_card_records_the_data_as_given_even_with_a_cache(tmp_path, capsys):
    "was: a model trained from Python recorded no data source, and after cache= the summary named the cache folder"
    from covid_fastai.data import folder_layout, data_source
    from covid_fastai.inference import save_covid_model, load_covid_model
    src = make_synthetic_xrays(tmp_path/'my_xrays', n_per_class=8, size=40)
    learn = train_covid_learner(src, arch='efficientnet_lite0', epochs=1, freeze_epochs=0, size=32, bs=8, num_workers=0, cache=tmp_path/'cache', cache_size=36)
    out = capsys.readouterr().out
    assert 'Data: my_xrays/, 16 images' in out and 'read from the cache cache/' in out, out
    d = learn.card.data
    assert d == data_source(src, folder_layout(src)) and d['name'] == 'my_xrays' and d['kind'] == 'folder' and d['n_files'] == 16
    assert str(learn.dls.layout.path).endswith('cache')   # the images it trained from were the cached copies
    back = load_covid_model(save_covid_model(learn, tmp_path/'m'))
    assert back.card.data == d and 'trained on my_xrays (16 images' in back.card.summary()
    (src/'covid'/'covid_000.png').write_bytes((src/'covid'/'covid_000.png').read_bytes() + b'\0')   # one byte more: another data set
    assert data_source(src, folder_layout(src))['fingerprint'] != d['fingerprint']
