"The local docs site (tools/docs_site.py) and its browser check (tools/check_docs.py)"
import importlib.util, os, shutil, subprocess, sys
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parent.parent

def _tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT/'tools'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

docs_site, check_docs = _tool('docs_site'), _tool('check_docs')

def test_sidebar_yml_lists_every_page():
    "nbs/sidebar.yml (used by `nbdev-docs`) has the builder's pages in its order: index, modules, then the sections (Tutorials)"
    def flat(items): return [o for i in items for o in (flat(i['contents']) if isinstance(i, dict) else [i])]
    listed = flat(yaml.safe_load((ROOT/'nbs'/'sidebar.yml').read_text())['website']['sidebar']['contents'])
    pages = [p.relative_to(docs_site.NBS).as_posix() for _, l in docs_site.pages() for p in l]
    assert listed == pages, "nbs/sidebar.yml is out of date: run `python tools/docs_site.py --sidebar`"

@pytest.fixture(scope='module')
def small_site(tmp_path_factory):
    "index and one module notebook, built by the command line"
    if importlib.util.find_spec('nbconvert') is None:
        if os.environ.get('COVID_FASTAI_REQUIRE_BROWSER') == '1': pytest.fail("nbconvert is needed to build the docs site")
        pytest.skip("nbconvert is not installed")
    out = tmp_path_factory.mktemp('site')
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'docs_site.py'), '--out', str(out), '--only', 'index.ipynb', '--only', '04_check.ipynb'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '2 pages written' in r.stdout
    return out

def test_site_pages(small_site):
    index, check = (small_site/'index.html').read_text(), (small_site/'check.html').read_text()
    assert '<title>Checking a dataset' in check and 'class="description"' in check
    assert 'celltag_show_doc' in check and 'id="check_dataset"' in check      # show_doc executed and rendered
    assert 'default_exp' not in check and '#|' not in check                  # directives and hidden cells gone
    assert 'href="tutorials/' in index or not (ROOT/'nbs'/'tutorials').exists()  # the sidebar has the tutorials
    assert (small_site/'images'/'app.png').exists() and 'src="images/app.png"' in index

def test_check_docs(small_site, browser, tmp_path):
    n, problems = check_docs.check_site(small_site, browser, partial=True, screenshots=tmp_path/'shots')
    assert (n, problems) == (2, [])
    assert (tmp_path/'shots'/'check.png').stat().st_size > 10_000
    # ... and it sees what is wrong: a missing image, a module page without its API, a broken link, a missing page
    bad = tmp_path/'bad'; shutil.copytree(small_site, bad)
    (bad/'index.html').write_text((bad/'index.html').read_text().replace('src="images/app.png"', 'src="images/nope.png"')
                                  .replace('</main>', '<a href="check.html#nowhere">x</a></main>'))
    (bad/'check.html').write_text((bad/'check.html').read_text().replace('def', 'xyz'))
    n, problems = check_docs.check_site(bad, browser)
    assert any(p.startswith('index.html: image not loaded') for p in problems), problems
    assert 'check.html: module page without any API (show_doc) block' in problems
    assert 'index.html: broken link to check.html#nowhere (no such anchor)' in problems
    assert 'data.html: missing (no page for its notebook)' in problems

def test_api_methods_need_entries():
    "check_docs knows every public method of the API classes (class methods patched in with fastcore's `patch` too), on its module's page"
    m = check_docs.api_methods()
    assert {'Evaluation.from_model', 'Evaluation.metrics', 'Evaluation.chance'} <= m['evaluation.html']
    assert {'Predictor.predict', 'Predictor.from_file'} <= m['inference.html'] and 'Layout.split_summary' in m['data.html']
    assert 'ModelCard.load' in m['card.html'] and 'Ensemble.keep_probs' in m['ensemble.html']
    assert not any(n.split('.')[1].startswith('_') or n in ('Evaluation.table', 'Layout.vocab') for s in m.values() for n in s)  # no private names, no properties
