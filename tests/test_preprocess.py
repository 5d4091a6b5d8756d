"Source-robust preprocessing: the border/text crop, histogram equalization and CLAHE, by name, the same in training and inference (issue 16)."
import json
import numpy as np, pytest
from PIL import Image
from covid_fastai.imread import PREPROCESS, preprocess_image, border_box, crop_borders, equalize, clahe, load_xray
from covid_fastai.registry import UnknownNameError
from covid_fastai.card import ModelCard

def framed_xray(seed=0, h=200, w=180):
    "A synthetic chest image (noise and bright discs) in a black frame, with a strip of burnt-in text above it; and the lung box"
    rng = np.random.default_rng(seed)
    a = np.zeros((h, w))
    t, b, l, r = 26, 184, 14, 166                                     # the lung area
    yy, xx = np.mgrid[t:b, l:r]
    lung = rng.normal(90, 25, (b - t, r - l))
    lung[(yy - 100)**2 + (xx - 70)**2 < 30**2] += 100
    a[t:b, l:r] = lung
    a[5:14, 20:160] = rng.choice([0., 255.], (9, 140), p=[0.6, 0.4])  # text strip, a black gap below it
    return Image.fromarray(a.clip(0, 255).astype(np.uint8), 'L'), (t, b, l, r)

def test_crop_removes_border_and_text_keeps_lungs():
    im, (t, b, l, r) = framed_xray()
    assert border_box(np.asarray(im)) == (t, b, l, r)
    out = crop_borders(im)
    assert out.size == (r - l, b - t) and out.mode == 'L'                             # gray stays gray
    np.testing.assert_array_equal(np.asarray(out), np.asarray(im)[t:b, l:r])          # the lung area untouched
    assert crop_borders(im.convert('RGB')).mode == 'RGB'
    white = Image.fromarray(np.pad(np.asarray(im), ((0, 0), (0, 12)), constant_values=255))   # a white margin on the right
    assert crop_borders(white).size == (r - l, b - t)

def test_crop_is_capped_and_leaves_a_clean_image():
    clean = np.random.default_rng(1).normal(100, 20, (200, 180)).clip(0, 255).astype(np.uint8)
    assert border_box(clean) == (0, 200, 0, 180) and crop_borders(Image.fromarray(clean)).size == (180, 200)   # nothing to cut
    tall = np.zeros((300, 180), np.uint8); tall[100:] = clean                 # 100 black rows: a third of the height
    assert border_box(tall) == (int(300 * 0.15), 300, 0, 180)               # at most 15% of a side is cut

def test_equalization_spreads_a_low_contrast_histogram():
    rng = np.random.default_rng(0)
    low = Image.fromarray((110 + rng.normal(0, 6, (96, 96))).clip(95, 125).astype(np.uint8), 'L')
    a = np.asarray(low).astype(float)
    for f in (equalize, clahe):
        g = np.asarray(f(low))
        assert g.shape == (96, 96)                                                   # an 'L' image stays 'L'
        rgb = np.asarray(f(low.convert('RGB')))
        assert rgb.shape == (96, 96, 3) and (rgb == g[..., None]).all()              # its RGB copy: 8-bit RGB, the same gray levels
        assert g.std() > 2 * a.std(), f.__name__
        assert np.corrcoef(g.ravel(), a.ravel())[0, 1] > 0.9                         # monotone: the same picture
    e = np.asarray(equalize(low))
    assert (e.min(), e.max()) == (0, 255)
    hist = np.histogram(e, bins=8, range=(0, 256))[0]
    assert hist.min() > 0.05 * e.size                                                # flat-ish: every eighth of the range used
    colour = Image.fromarray(np.dstack([np.asarray(low)] * 2 + [np.full((96, 96), 40, np.uint8)]), 'RGB')
    c = np.asarray(clahe(colour))
    assert c.shape == (96, 96, 3) and not (c[..., 0] == c[..., 2]).all()             # a colour image keeps its colour

def test_names_and_unknown_names():
    assert list(PREPROCESS) == ['none', 'equalize', 'clahe', 'crop', 'crop+equalize', 'crop+clahe']
    im, _ = framed_xray()
    assert preprocess_image(im, None) is im and preprocess_image(im, 'none') is im
    with pytest.raises(UnknownNameError, match=r"Unknown preprocessing 'clahee'; did you mean 'clahe'.*Valid names: none, equalize, clahe, crop, crop\+equalize, crop\+clahe"):
        preprocess_image(im, 'clahee')
    with pytest.raises(ValueError, match='preprocess must be one of none, equalize, clahe'):
        ModelCard.from_dict(dict(classes=['a', 'b'], preprocess='sharpen'))
    from covid_fastai.config import train_config
    with pytest.raises(UnknownNameError, match='Valid names: none, equalize'): train_config(preprocess='hist')
    assert train_config(preprocess='crop+clahe').preprocess == 'crop+clahe' and train_config(preprocess='none').preprocess is None
    assert ModelCard.from_dict(dict(classes=['a', 'b'])).preprocess is None                     # older cards: none

def test_load_xray_preprocesses_after_reading(tmp_path):
    im, (t, b, l, r) = framed_xray()
    im.save(tmp_path/'x.png'); im.convert('RGB').save(tmp_path/'x.jpg', quality=95)
    assert load_xray(tmp_path/'x.png', preprocess='crop').size == (r - l, b - t)
    assert load_xray(tmp_path/'x.jpg', draft=90, preprocess='crop+clahe').size[0] < 100      # decoded at 1/2 scale, then cropped
    with pytest.raises(UnknownNameError): load_xray(tmp_path/'x.png', preprocess='crop+clahe+crop')

def test_trained_with_clahe_predicts_the_same_everywhere(tmp_path):
    "A model trained with preprocess='clahe': the saved model, its ONNX export and the Learner give the same probabilities"
    from covid_fastai.images import make_synthetic_xrays, get_xray_files
    from covid_fastai.train import prepare_layout
    from covid_fastai.dataloaders import covid_dls
    from covid_fastai.learner import covid_learner
    from covid_fastai.models import get_arch
    from covid_fastai.inference import Predictor, save_covid_model, load_covid_model, export_onnx
    src = make_synthetic_xrays(tmp_path/'x', n_per_class=12, size=48, seed=3)
    dls = covid_dls(prepare_layout(src, check=False), size=32, bs=8, num_workers=0, stats=get_arch('efficientnet_lite0').stats, preprocess='clahe')
    assert dls.reading['preprocess'] == 'clahe'
    learn = covid_learner(dls, 'efficientnet_lite0')
    learn.fit(1, 1e-3)
    assert learn.card.preprocess == 'clahe'
    save_covid_model(learn, tmp_path/'m')
    assert json.loads((tmp_path/'m'/'model.json').read_text())['preprocess'] == 'clahe'
    fns = sorted(get_xray_files(src))[::3]
    with learn.no_bar(): ref = learn.get_preds(dl=learn.dls.test_dl(fns))[0].numpy()
    p_learn, p_saved = Predictor.from_learner(learn), load_covid_model(tmp_path/'m')
    p_onnx = load_covid_model(export_onnx(p_saved, tmp_path/'m.onnx'))
    assert [p.card.preprocess for p in (p_learn, p_saved, p_onnx)] == ['clahe'] * 3
    np.testing.assert_allclose(p_learn.predict_proba(fns), ref, atol=1e-5)
    np.testing.assert_allclose(p_saved.predict_proba(fns), ref, atol=1e-5)
    np.testing.assert_allclose(p_onnx.predict_proba(fns), ref, atol=1e-4)
    np.testing.assert_allclose(p_saved.preprocess(fns), learn.dls.test_dl(fns).one_batch()[0].numpy(), atol=1e-5)
    assert np.abs(p_saved.with_card(preprocess=None).preprocess(fns) - p_saved.preprocess(fns)).max() > 0.5   # it is applied
    ims = [Image.open(f) for f in fns]                                    # PIL images (the web app's path) too
    np.testing.assert_allclose(p_saved.predict_proba(ims), ref, atol=1e-5)
