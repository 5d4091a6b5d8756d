"Evaluation: metrics against scikit-learn, confidence intervals, Grad-CAM, calibration, the report folder and its HTML in Chromium"
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, precision_recall_fscore_support, roc_auc_score,
                             f1_score, confusion_matrix)
from covid_fastai.metrics import classification_metrics, bootstrap_ci
from covid_fastai.calibration import expected_calibration_error, fit_temperature, calibrate_learner
from covid_fastai.inference import probs_from_logits, save_covid_model, load_covid_model, Predictor
from covid_fastai.cam import heatmaps, cam_layer
from covid_fastai.models import ARCHS, create_covid_model
from conftest import arch_kinds
from covid_fastai.report import evaluate
from covid_fastai.images import make_synthetic_xrays
from conftest import tree_digest

def _fixed(n=240, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)); logits[np.arange(n), y] += 1.2
    return y, probs_from_logits(logits)

def test_metrics_equal_sklearn():
    y, p = _fixed()
    m = classification_metrics(y, p, ['a', 'b', 'c'], n_boot=0)
    pred = p.argmax(1)
    assert m['accuracy'] == pytest.approx(accuracy_score(y, pred))
    assert m['balanced_accuracy'] == pytest.approx(balanced_accuracy_score(y, pred))
    pr, rc, f, s = precision_recall_fscore_support(y, pred)
    cm = confusion_matrix(y, pred)
    for j, c in enumerate('abc'):
        d = m['per_class'][c]
        assert (d['precision'], d['recall'], d['f1'], d['support']) == pytest.approx((pr[j], rc[j], f[j], s[j]))
        tn = cm.sum() - cm[j].sum() - cm[:, j].sum() + cm[j, j]
        assert d['specificity'] == pytest.approx(tn / (cm.sum() - cm[j].sum()))
        assert d['auc'] == pytest.approx(roc_auc_score(y == j, p[:, j]))
    for avg in ('macro', 'weighted'):
        pr, rc, f, _ = precision_recall_fscore_support(y, pred, average=avg)
        assert (m[f'{avg}_precision'], m[f'{avg}_recall'], m[f'{avg}_f1']) == pytest.approx((pr, rc, f))
    assert m['macro_auc'] == pytest.approx(roc_auc_score(y, p, multi_class='ovr'))
    assert m['confusion_matrix'] == cm.tolist()

def test_multi_label_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    Y = (rng.random((200, 3)) < 0.4).astype(int)
    p = np.clip(Y * 0.5 + rng.random((200, 3)) * 0.6, 0, 1)
    m = classification_metrics(Y, p, ['x', 'y', 'z'], n_boot=50)
    P = (p > 0.5).astype(int)
    assert m['multi_label'] and m['accuracy'] == pytest.approx(accuracy_score(Y, P))
    assert m['macro_f1'] == pytest.approx(f1_score(Y, P, average='macro'))
    for j, c in enumerate('xyz'):
        assert m['per_class'][c]['auc'] == pytest.approx(roc_auc_score(Y[:, j], p[:, j]))
        assert m['per_class'][c]['recall'] == pytest.approx(precision_recall_fscore_support(Y[:, j], P[:, j], average='binary')[1])
    assert len(m['confusion_matrix']) == 3 and m['confusion_matrix'][0] == confusion_matrix(Y[:, 0], P[:, 0]).tolist()

def test_ci_contains_estimate_and_narrows():
    widths = {}
    for n in (60, 600):
        y, p = _fixed(n, seed=2)
        m = classification_metrics(y, p, ['a', 'b', 'c'], n_boot=500, seed=0)
        ci = m['ci']
        for name in ('accuracy', 'macro_f1', 'macro_auc'): assert ci[name][0] <= m[name] <= ci[name][1], (n, name)
        for c in 'abc':
            assert ci['recall'][c][0] <= m['per_class'][c]['recall'] <= ci['recall'][c][1]
            assert ci['auc'][c][0] <= m['per_class'][c]['auc'] <= ci['auc'][c][1]
        widths[n] = {k: ci[k][1] - ci[k][0] for k in ('accuracy', 'macro_f1', 'macro_auc')}
    for k in widths[60]: assert widths[600][k] < widths[60][k] * 0.6, (k, widths)
    # seeded: the same seed gives the same interval
    y, p = _fixed(100)
    assert classification_metrics(y, p, list('abc'), n_boot=100, seed=5)['ci'] == classification_metrics(y, p, list('abc'), n_boot=100, seed=5)['ci']

def test_bootstrap_ci_of_mean():
    x = np.random.default_rng(0).normal(size=1000)
    lo, hi = bootstrap_ci(np.mean, x, n_boot=500)
    assert lo < x.mean() < hi and 0.09 < hi - lo < 0.16

@pytest.mark.parametrize('arch', arch_kinds())   # (the xrv_ DenseNets: one for all)
def test_cam_every_arch(arch):
    m = create_covid_model(arch, n_out=3, pretrained=False)
    assert any(True for _ in cam_layer(m).parameters())
    hm = heatmaps(m, torch.randn(1, 3, 64, 64))
    assert hm.shape == (1, 64, 64) and np.isfinite(hm).all()

def test_cam_heatmap_not_constant(three_class):
    learn, test = three_class
    pred = Predictor.from_learner(learn)
    fns = sorted(Path(test).rglob('*.png'))[:4]
    for method in ('gradcam', 'gradcam++'):
        hm = pred.heatmaps(fns, method=method)
        assert hm.shape == (4, 64, 64)
        # Grad-CAM keeps only positive evidence (ReLU), so an image can have an empty map; most must not
        assert sum(h.std() > 1e-3 for h in hm) >= 3, [h.std() for h in hm]
        assert hm.min() >= 0 and hm.max() <= 1

def test_temperature_fitted_stored_and_applied(three_class, tmp_path):
    learn, test = three_class
    res = calibrate_learner(learn)
    assert res['nll_after'] <= res['nll_before'] + 1e-9 and learn.card.temperature == res['temperature']
    save_covid_model(learn, tmp_path/'m')
    assert json.loads((tmp_path/'m'/'model.json').read_text())['temperature'] == pytest.approx(res['temperature'])
    p = load_covid_model(tmp_path/'m').with_card(tta=False)   # one view: the logits' own probabilities
    fns = sorted(Path(test).rglob('*.png'))[:5]
    logits = p.logits(fns)
    np.testing.assert_allclose(p.predict_proba(fns), probs_from_logits(logits, temperature=res['temperature']), atol=1e-6)
    learn.card.temperature = 1.   # the fixture is shared by other tests

def test_ece_and_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 3)) * 2
    y = np.array([rng.choice(3, p=q) for q in probs_from_logits(z).astype(np.float64) / probs_from_logits(z).astype(np.float64).sum(1, keepdims=True)])
    assert expected_calibration_error(y, probs_from_logits(z)) < 0.03
    assert expected_calibration_error(y, probs_from_logits(4 * z)) > 0.1
    assert fit_temperature(4 * z, y) == pytest.approx(4, rel=0.15)

def test_evaluate_report_folder(three_class, tmp_path, browser):
    learn, test = three_class
    before = tree_digest(test)
    m = evaluate(learn, test, tmp_path/'report', n_boot=200, progress=False)
    out = tmp_path/'report'
    assert tree_digest(test) == before
    saved = json.loads((out/'metrics.json').read_text())
    assert saved['accuracy'] == pytest.approx(m['accuracy']) and saved['n'] == 18
    preds = pd.read_csv(out/'predictions.csv')
    assert list(preds.columns) == ['path', 'label', 'predicted', 'correct', 'loss', 'COVID-19', 'Normal', 'Pneumonia']
    # metrics.json agrees with scikit-learn on predictions.csv
    y = preds.label.map(saved['classes'].index).to_numpy()
    P = preds[saved['classes']].to_numpy()
    assert saved['accuracy'] == pytest.approx(accuracy_score(y, P.argmax(1)))
    assert saved['macro_f1'] == pytest.approx(f1_score(y, P.argmax(1), average='macro'))
    assert np.allclose(P.sum(1), 1, atol=1e-5)
    pngs = sorted(p.name for p in out.glob('*.png'))
    for name in ('confusion_matrix.png', 'roc_curves.png', 'reliability.png', 'learning_curves.png', 'top_losses.png',
                 'sample_predictions.png', 'gradcam_top_losses.png', 'gradcam_correct.png'): assert name in pngs, name
    assert sorted(saved['figures']) == pngs
    page = (out/'report.html').read_text()
    for name in pngs: assert f'data-file="{name}"' in page and f'href="{name}"' in page
    assert 'src="http' not in page and '<script' not in page and 'not a medical device' in page
    # headless Chromium: every image has loaded, and nothing was fetched from the network
    pg = browser.new_page()
    urls = []
    pg.on('request', lambda r: urls.append(r.url))
    pg.goto((out/'report.html').as_uri())
    pg.wait_for_load_state('load')
    imgs = pg.evaluate("Array.from(document.images).map(i => [i.dataset.file, i.complete, i.naturalWidth])")
    pg.close()
    assert sorted(f for f, _, _ in imgs) == pngs
    assert all(ok and w > 0 for _, ok, w in imgs), imgs
    assert all(u.startswith(('file:', 'data:')) for u in urls), urls

def test_evaluate_saved_model_and_label_map(three_class, tmp_path):
    learn, test = three_class
    save_covid_model(learn, tmp_path/'model')
    learn.history.to_csv(tmp_path/'model'/'history.csv', index=False)
    m = evaluate(tmp_path/'model', test, tmp_path/'r', n_boot=100, cam=None, progress=False)
    assert (tmp_path/'r'/'learning_curves.png').exists() and not (tmp_path/'r'/'gradcam_correct.png').exists()
    mb = evaluate(tmp_path/'model', test, tmp_path/'rb', label_map={'Normal': 'Other', 'Pneumonia': 'Other'}, n_boot=100, cam=None, progress=False)
    assert mb['classes'] == ['COVID-19', 'Other'] and mb['per_class']['Other']['support'] == 12
    preds = pd.read_csv(tmp_path/'r'/'predictions.csv')
    pb = pd.read_csv(tmp_path/'rb'/'predictions.csv')
    np.testing.assert_allclose(pb.Other, preds.Normal + preds.Pneumonia, atol=1e-5)
    np.testing.assert_allclose(pb['COVID-19'], preds['COVID-19'], atol=1e-6)
    # a binary test set with its own labels, scored through the map
    csv = pd.DataFrame(dict(path=[str(p) for p in sorted(Path(test).rglob('*.png'))]))
    csv['label'] = ['COVID-19' if '/COVID-19/' in p else 'Other' for p in csv.path]
    mc = evaluate(tmp_path/'model', csv, tmp_path/'rc', label_map={'Normal': 'Other', 'Pneumonia': 'Other'}, n_boot=100, cam=None, progress=False)
    assert mc['accuracy'] == pytest.approx(mb['accuracy'])

def test_evaluate_bad_inputs(three_class, tmp_path):
    learn, test = three_class
    other = make_synthetic_xrays(tmp_path/'other', n_per_class=2, size=32, classes=('yes', 'no'))
    with pytest.raises(ValueError, match='label_map'): evaluate(learn, other, tmp_path/'r1', progress=False)
    with pytest.raises(ValueError, match='would be written inside the input'): evaluate(learn, test, Path(test)/'report', progress=False)
    assert not (Path(test)/'report').exists()
    bad = make_synthetic_xrays(tmp_path/'bad', n_per_class=3, size=48, classes=('COVID-19', 'Normal', 'Pneumonia'))
    (bad/'Normal'/'broken.png').write_text('not an image')
    with pytest.raises(ValueError, match='unreadable'): evaluate(learn, bad, tmp_path/'r2', progress=False)
    m = evaluate(learn, bad, tmp_path/'r3', skip_unreadable=True, n_boot=50, cam=None, progress=False)
    assert m['n'] == 9 and len(m['test']['unreadable']) == 1
    with pytest.raises(ValueError, match='Learner'): evaluate(Predictor.from_learner(learn), test, tmp_path/'r4', calibrate=True)

def test_proportions_get_wilson_intervals():
    "was: the percentile bootstrap gave [1.0, 1.0] for a specificity of 12/12, and only recall and AUC had intervals in the report"
    y = np.array([0] * 12 + [1] * 12)
    p = np.where(y[:, None] == np.arange(2), 0.9, 0.1)
    p[12:15] = [0.8, 0.2]                                   # 3 of the 12 of class 1 missed: class 0's specificity is 9/12
    p[:12] = [0.9, 0.1]
    m = classification_metrics(y, p, ['COVID-19', 'Normal'], n_boot=200)
    assert m['per_class']['Normal']['specificity'] == 1.0          # 12 of 12
    lo, hi = m['ci']['specificity']['Normal']
    assert hi == 1.0 and 0.7 < lo < 0.8                            # Wilson [0.757, 1]
    for k in ('precision', 'recall', 'specificity', 'f1', 'auc'):
        for c in ('COVID-19', 'Normal'): assert m['ci'][k][c][0] <= m['per_class'][c][k] <= m['ci'][k][c][1], (k, c)
    assert m['ci']['accuracy'][1] < 1 and 'Wilson' in m['ci']['method']

def test_report_shows_every_interval(three_class, tmp_path):
    learn, test = three_class
    m = evaluate(learn, test, tmp_path/'r', cam=None, n_boot=50, progress=False)
    page = (tmp_path/'r'/'report.html').read_text()
    for c in m['classes']:
        for k in ('precision', 'recall', 'specificity', 'f1', 'auc'):
            lo, hi = m['ci'][k][c]
            if lo is not None: assert f"[{lo:.3f}, {hi:.3f}]" in page, (c, k)

def test_results_by_subgroup(three_class, tmp_path):
    "Two sources of known difference: the model is right on every image of source A and wrong on every image of source B"
    import shutil, subprocess
    learn, test = three_class
    save_covid_model(learn, tmp_path/'model')
    pred = load_covid_model(tmp_path/'model')
    imgs = sorted(Path(test).rglob('*.png'))
    said = pred.predict(imgs, names=[str(f) for f in imgs]).predicted.tolist()
    rows = []
    for src, k in [('A', 0), ('A', 1), ('B', 0), ('B', 1)]:   # 36 images per source: enough for its interval to compare
        d = tmp_path/'table'/f'{src}{k}'; d.mkdir(parents=True)
        for f, p in zip(imgs, said):
            shutil.copy(f, d/f.name)
            wrong = next(c for c in pred.vocab if c != p)
            rows.append(dict(path=f'{src}{k}/{f.name}', label=p if src == 'A' else wrong, source=src))
    pd.DataFrame(rows).to_csv(tmp_path/'table'/'test.csv', index=False)
    with pytest.warns(UserWarning, match='differs by source'):
        m = evaluate(tmp_path/'model', tmp_path/'table'/'test.csv', tmp_path/'r', by='source', n_boot=20, cam=None, progress=False, quiet=True)
    g = pd.read_csv(tmp_path/'r'/'by_group.csv')
    assert list(g.source) == ['A', 'B'] and list(g.n) == [36, 36] and list(g.accuracy) == [1.0, 0.0]
    assert m['by_group']['column'] == 'source' and len(m['by_group']['warnings']) == 1
    assert (tmp_path/'r'/'by_group.png').exists() and 'By source' in (tmp_path/'r'/'report.html').read_text()
    # the command line: --by, and a column that is not there
    r = subprocess.run(['covid-fastai', 'evaluate', str(tmp_path/'model'), str(tmp_path/'table'/'test.csv'), '--by', 'source',
                        '--out', str(tmp_path/'r2'), '--cam', 'none', '--n-boot', '20'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and 'differs by source' in r.stderr, r.stderr[-2000:]
    assert pd.read_csv(tmp_path/'r2'/'by_group.csv').accuracy.tolist() == [1.0, 0.0]
    r = subprocess.run(['covid-fastai', 'evaluate', str(tmp_path/'model'), str(tmp_path/'table'/'test.csv'), '--by', 'site',
                        '--out', str(tmp_path/'r3'), '--cam', 'none'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "no column 'site'" in r.stderr and not (tmp_path/'r3').exists(), r.stderr
    with pytest.raises(ValueError, match='give a test table'): evaluate(tmp_path/'model', test, tmp_path/'r4', by='source', progress=False)
    ck = {c['item']: c['status'] for c in m['checklist']}
    assert ck['Results by subgroup'] == 'reported' and ck['Metrics with confidence intervals'] == 'reported'
    assert sum(s == 'cannot be known here' for s in ck.values()) == 3 and 'Checklist (CLAIM)' in (tmp_path/'r'/'report.html').read_text()
