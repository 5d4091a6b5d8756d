"`from covid_fastai.all import *`: fastai's vision API and every covid-fastai module (written by hand, like fastai's own `all.py`: nbdev export would give it an empty `__all__`)."
from fastai.vision.all import *
from .images import *
from .data import *
from .prep import *
from .check import *
from .models import *
from .learner import *
from .recipes import *
from .train import *
from .ensemble import *
from .cli import *
from .inference import *
from .metrics import *
from .calibration import *
from .cam import *
from .plots import *
from .report import *
