"Chest-X-ray-pretrained backbones (torchxrayvision DenseNet-121 weights, made here from random weights: no network), and the warning when a test set may have been seen in pretraining (issue 16)."
import os, shutil, sys, types, urllib.error, warnings
from pathlib import Path
import numpy as np, pytest, torch
from torch import nn
from covid_fastai.models import ARCHS, get_arch, create_covid_model, pretrained_model, read_xrv_weights, read_pickled_model, \
    PretrainedWeightsError, XrvInput, XRV_WEIGHTS, _xrv_densenet121
from covid_fastai.card import ModelCard
from covid_fastai.evaluation import XRAY_DATASETS, SAME_IMAGES, pretraining_overlap, Evaluation
from covid_fastai.images import make_synthetic_xrays

XRV = [f'xrv_densenet121_{k}' for k in ('all', 'nih', 'pc', 'chex', 'rsna', 'mimic_nb', 'mimic_ch')]

def xrv_state_dict(seed=0) -> dict:
    "What torchxrayvision's DenseNet-121 holds, with random weights: one-channel conv0, 18 outputs, `op_threshs`"
    torch.manual_seed(seed)
    sd = _xrv_densenet121().state_dict()
    sd['op_threshs'] = torch.rand(18)
    return sd

@pytest.fixture(scope='module')
def xrv_file(tmp_path_factory):
    fn = tmp_path_factory.mktemp('xrv')/'nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt'
    torch.save(xrv_state_dict(), fn)
    return fn

def test_registered_by_name():
    assert set(XRV) <= set(ARCHS)
    for a in XRV:
        s = get_arch(a)
        assert s.stats == ([0.]*3, [1.]*3) and s.url.startswith('https://github.com/mlmed/torchxrayvision/releases/download/v1/')
        assert s.url.endswith('-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt')
        for d in s.pretrained_on: assert d in XRAY_DATASETS or d in SAME_IMAGES, d   # every pretraining set can be recognised
    assert get_arch('xrv_densenet121_all').url.endswith('/nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt')
    with pytest.raises(ValueError, match="did you mean 'xrv_densenet121_nih'"): get_arch('xrv_densenet121_nhi')

def test_local_state_dict_by_name(xrv_file):
    sd = xrv_state_dict()
    assert 'op_threshs' not in read_xrv_weights(xrv_file) and len(read_xrv_weights(xrv_file)) == len(sd) - 1
    m = create_covid_model('xrv_densenet121_nih', n_out=3, weights=xrv_file)
    body = m[0]
    assert isinstance(body[0], XrvInput) and body.conv0.weight.shape == (64, 1, 7, 7)
    assert torch.equal(body.conv0.weight, sd['features.conv0.weight'])
    assert torch.equal(body.norm5.running_mean, sd['features.norm5.running_mean'])
    assert not any('op_threshs' in k or 'classifier' in k for k in m.state_dict())      # the 18-output classifier is gone too
    x = torch.tensor([0., 0.25, 1.]).view(1, 3, 1, 1).expand(2, 3, 4, 4)                # mean 5/12 -> (2 * 5/12 - 1) * 1024
    np.testing.assert_allclose(body[0](x).numpy(), np.full((2, 1, 4, 4), (2 * 5/12 - 1) * 1024), rtol=1e-6)
    assert body[0](torch.zeros(1, 3, 2, 2)).unique().item() == -1024 and body[0](torch.ones(1, 3, 2, 2)).unique().item() == 1024
    m.eval()
    with torch.no_grad(): assert m(torch.rand(2, 3, 32, 32)).shape == (2, 3)

def test_pickled_model_files_read_without_torchxrayvision(tmp_path):
    "torchxrayvision publishes whole pickled models (zip and legacy torch formats): read without running code; code in a pickle is refused"
    class DenseNet(nn.Module):
        def __init__(self):
            super().__init__()
            m = _xrv_densenet121()
            self.features, self.classifier = m.features, m.classifier
            self.register_buffer('op_threshs', torch.rand(18))
    DenseNet.__module__, DenseNet.__qualname__ = 'torchxrayvision.models', 'DenseNet'
    sys.modules['torchxrayvision'], sys.modules['torchxrayvision.models'] = types.ModuleType('torchxrayvision'), types.SimpleNamespace(DenseNet=DenseNet)
    try:
        net = DenseNet()
        with warnings.catch_warnings():   # (torch cannot keep the source of a class defined in a test)
            warnings.simplefilter('ignore')
            torch.save(net, tmp_path/'zip.pt'); torch.save(net, tmp_path/'legacy.pt', _use_new_zipfile_serialization=False)
    finally: del sys.modules['torchxrayvision'], sys.modules['torchxrayvision.models']
    ref = {k: v for k, v in net.state_dict().items() if k != 'op_threshs'}
    for f in ('zip.pt', 'legacy.pt'):
        sd = read_xrv_weights(tmp_path/f)
        assert list(sd) == list(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    m = create_covid_model('xrv_densenet121_chex', n_out=2, weights=tmp_path/'legacy.pt')
    assert torch.equal(m[0].conv0.weight, ref['features.conv0.weight'])
    class Evil:
        def __reduce__(self): return (os.system, ('touch ' + str(tmp_path/'pwned'),))
    torch.save({'x': Evil()}, tmp_path/'evil.pt')
    with pytest.raises(PretrainedWeightsError, match='refused to load'): read_pickled_model(tmp_path/'evil.pt')
    with pytest.raises(PretrainedWeightsError): create_covid_model('xrv_densenet121_chex', weights=tmp_path/'evil.pt')
    assert not (tmp_path/'pwned').exists()

def test_download_path_and_offline_help(monkeypatch, tmp_path, xrv_file):
    "The real download code runs (the transfer itself is replaced: no network here); offline, the error says what to do"
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path/'hub'))
    got = []
    def fake_download(url, dst, **kw): got.append(url); shutil.copy(xrv_file, dst)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    spec = get_arch('xrv_densenet121_rsna')
    m = pretrained_model(spec)
    assert got == [spec.url] and spec.url.endswith('/kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt')
    assert torch.equal(m.features.conv0.weight, xrv_state_dict()['features.conv0.weight'])
    pretrained_model(spec); assert len(got) == 1                                  # cached: downloaded once
    def offline(*args, **kwargs): raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    with pytest.raises(PretrainedWeightsError) as e: create_covid_model('xrv_densenet121_pc', n_out=2)
    for hint in ("weights='path/to/pc-densenet121-d121", str(tmp_path/'hub'/'checkpoints'), 'pretrained=False', 'name resolution'):
        assert hint in str(e.value)

@pytest.fixture(scope='module')
def xrv_learner(tmp_path_factory, xrv_file):
    "A DenseNet-121 from the stand-in NIH weights, trained one epoch on 32 px synthetic images (DenseNet-121 is slow on a CPU)"
    from covid_fastai.train import prepare_layout
    from covid_fastai.dataloaders import covid_dls
    from covid_fastai.learner import covid_learner
    src = make_synthetic_xrays(tmp_path_factory.mktemp('xrv_data')/'x', n_per_class=6, size=32, seed=5)
    dls = covid_dls(prepare_layout(src, check=False), size=32, bs=8, num_workers=0, stats=get_arch('xrv_densenet121_nih').stats)
    learn = covid_learner(dls, 'xrv_densenet121_nih', weights=xrv_file)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return learn, src

def test_tiny_train_save_load(xrv_learner, tmp_path):
    from covid_fastai.inference import Predictor, save_covid_model, load_covid_model
    learn, src = xrv_learner
    assert learn.card.arch == 'xrv_densenet121_nih' and learn.card.pretrained_on == ['NIH ChestX-ray14']
    assert (learn.card.mean, learn.card.std) == ([0.]*3, [1.]*3)                  # the DataLoaders give [0, 1] pixels
    save_covid_model(learn, tmp_path/'m')
    p = load_covid_model(tmp_path/'m')
    assert p.card.pretrained_on == ['NIH ChestX-ray14'] and 'pretrained on NIH ChestX-ray14' in p.card.summary()
    fns = sorted(Path(src).rglob('*.png'))[::4][:3]
    np.testing.assert_allclose(p.predict_proba(fns), Predictor.from_learner(learn).predict_proba(fns), atol=1e-5)
    import covid_fastai.cam   # adds Predictor.heatmaps
    hm = p.heatmaps(fns[:1])
    assert hm.shape == (1, 32, 32) and np.isfinite(hm).all()
    from covid_fastai.learner import data_card
    assert data_card(learn.dls, get_arch('xrv_densenet121_nih'), pretrained=False).pretrained_on == []   # random weights: pretrained on nothing

def test_overlap_warns_by_name(xrv_learner, tmp_path):
    "Evaluating on NIH-named files warns, naming the data set and the weights; other names do not"
    learn, src = xrv_learner
    nih = make_synthetic_xrays(tmp_path/'set_a', n_per_class=2, size=32, seed=7, per_patient=2)   # names like 07000001_001.png
    assert all(len(f.stem) == 12 for f in nih.rglob('*.png'))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        ev = Evaluation.from_model(learn, nih, progress=False)
    msgs = [str(x.message) for x in w if 'pretrained on' in str(x.message)]
    assert len(msgs) == 1 and 'look like NIH ChestX-ray14' in msgs[0] and 'xrv_densenet121_nih' in msgs[0] and 'pretrained on NIH ChestX-ray14' in msgs[0]
    assert ev.pretraining_overlap == msgs
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        ev = Evaluation.from_model(learn, make_synthetic_xrays(tmp_path/'set_b', n_per_class=2, size=32, seed=7), progress=False)
    assert not [x for x in w if 'pretrained on' in str(x.message)] and ev.pretraining_overlap == []
    rsna = ModelCard(['a', 'b'], arch='xrv_densenet121_rsna', pretrained_on=['RSNA Pneumonia'])   # RSNA's images are NIH's
    assert 'pretrained on RSNA Pneumonia' in pretraining_overlap(rsna, sorted(nih.rglob('*.png')))[0]
    assert pretraining_overlap(ModelCard(['a', 'b'], pretrained_on=['ImageNet']), sorted(nih.rglob('*.png'))) == []
