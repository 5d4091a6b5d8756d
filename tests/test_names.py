"Names and registries: `covid_fastai.all` shadows no fastai name, and every registry fails the same way on an unknown name."
import importlib, pytest

MODULES = ['registry', 'imread', 'images', 'data', 'check', 'prep', 'dataloaders', 'models', 'card', 'learner', 'recipes', 'config', 'train',
           'inference', 'metrics', 'calibration', 'evaluation', 'ensemble', 'cam', 'plots', 'report', 'serve', 'cli']

def test_all_shadows_no_fastai_name():
    "was: load_model, resize_images, resize_image, FocalLoss, FocalLossFlat, trainable_params replaced fastai's own"
    import fastai.vision.all as fa
    clash = []
    for m in MODULES:
        mod = importlib.import_module(f'covid_fastai.{m}')
        for n in mod.__all__:
            if hasattr(fa, n) and getattr(fa, n) is not getattr(mod, n): clash.append(f'{m}.{n}')
    assert clash == []
    import covid_fastai.all as ca
    for n in ('load_model', 'FocalLoss', 'FocalLossFlat', 'trainable_params'): assert getattr(ca, n) is getattr(fa, n)

@pytest.mark.parametrize('call, typo, meant', [
    ('covid_fastai.models:get_arch', 'resnet81', 'resnet18'),
    ('covid_fastai.learner:covid_opt', 'sdg', 'sgd'),
    ('covid_fastai.dataloaders:aug_preset', 'xrya', 'xray'),
    ('covid_fastai.config:train_config', None, None),
])
def test_registries_suggest(call, typo, meant):
    from covid_fastai.registry import UnknownNameError
    mod, fn = call.split(':')
    f = getattr(importlib.import_module(mod), fn)
    if typo is None:  # a training option
        with pytest.raises(UnknownNameError, match="did you mean 'schedule'"): f(schedul='flat')
        with pytest.raises(UnknownNameError, match="Unknown recipe 'progresive'; did you mean 'progressive'"): f(recipe='progresive')
        return
    with pytest.raises(UnknownNameError, match=f"did you mean '{meant}'.*Valid names: "): f(typo)
