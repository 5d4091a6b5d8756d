__version__ = "0.1.0"

import warnings
# fastai's import compiles a few activations with `torch.jit.script`, which recent PyTorch flags as deprecated on every import
warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)
