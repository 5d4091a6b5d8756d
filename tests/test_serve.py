"The web app: a real server on 127.0.0.1, driven by headless Chromium (Playwright) and by HTTP clients"
import io, json, socket, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, pytest, requests
from PIL import Image
from covid_fastai.inference import save_covid_model
from covid_fastai.images import write_dicom

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def server(three_class, tmp_path_factory):
    "`covid-fastai serve` on a free port (uploads limited to 0.2 MB), its URL and a few test images"
    learn, test = three_class
    root = tmp_path_factory.mktemp('serve')
    save_covid_model(learn, root/'model')
    (root/'cwd').mkdir()
    port = _free_port()
    log = open(root/'server.log', 'w')   # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen(['covid-fastai', 'serve', str(root/'model'), '--port', str(port), '--max-mb', '0.2'],
                            cwd=root/'cwd', stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}'
    for _ in range(240):
        try:
            if requests.get(url + '/health', timeout=1).ok: break
        except requests.ConnectionError: pass
        if proc.poll() is not None: pytest.fail(f"server exited: {(root/'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    else: pytest.fail("server did not start")
    yield url, sorted(Path(test).rglob('*.png')), root
    proc.terminate(); proc.wait(10); log.close()

def _post(url, data, name='x.png', field='image', ctype='image/png', query='?heatmap=1'):
    return requests.post(url + '/api/predict' + query, files={field: (name, data, ctype)}, timeout=60)

def test_browser_upload(server, browser, tmp_path):
    url, imgs, _ = server
    pg = browser.new_page()
    errors = []
    pg.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
    pg.goto(url + '/')
    assert 'not a medical device' in pg.content()
    pg.set_input_files('#file', str(imgs[0]))
    pg.select_option('#explain', 'Pneumonia')   # the heatmap of a class chosen on the page
    pg.click('#submit')
    pg.wait_for_function("document.getElementById('label').textContent.length > 0", timeout=60000)
    label = pg.text_content('#label')
    assert label.split(' (')[0] in ('COVID-19', 'Normal', 'Pneumonia'), label
    pg.wait_for_function("document.getElementById('heatmap').complete && document.getElementById('heatmap').naturalWidth > 0")
    w = pg.evaluate("[document.getElementById('heatmap').naturalWidth, document.getElementById('image').naturalWidth]")
    assert w[0] > 0 and w[1] > 0
    assert pg.locator('#bars .bar').count() == 3
    assert pg.is_visible('#result') and 'not a medical device' in pg.text_content('#result')
    assert pg.text_content('#explains') == 'Pneumonia' and pg.is_visible('.scale .grad') and 'calibrated' in pg.text_content('#calibration')
    pg.screenshot(path=str(tmp_path/'app.png'), full_page=True)
    pg.close()
    assert errors == []   # no console error (the favicon is served)

def test_api_answers_and_bad_uploads(server):
    url, imgs, root = server
    assert _post(url, imgs[0].read_bytes(), query='').json()['heatmap'] is None   # the heatmap only when asked for
    r = _post(url, imgs[0].read_bytes())
    assert r.status_code == 200
    j = r.json()
    assert set(j['probabilities']) == {'COVID-19', 'Normal', 'Pneumonia'} and abs(sum(j['probabilities'].values()) - 1) < 1e-4
    assert j['heatmap'].startswith('data:image/png;base64,') and 'not a medical device' in j['disclaimer']
    # the type comes from the content, not the name: a PNG called .txt is fine, text called .png is not
    assert _post(url, imgs[0].read_bytes(), name='scan.txt', ctype='text/plain').status_code == 200
    bad = {'oversize': (_post(url, b'\x89PNG' + b'\0' * 300_000), 413, 'over the limit'),
           'not an image': (_post(url, b'just some text'), 415, 'Not an image'),
           'corrupt': (_post(url, imgs[0].read_bytes()[:60]), 400, 'Corrupt'),
           'missing field': (_post(url, imgs[0].read_bytes(), field='file'), 400, "No file in the form field 'image'"),
           'no body': (requests.post(url + '/api/predict', timeout=10), 400, 'multipart')}
    for what, (r, code, msg) in bad.items():
        assert r.status_code == code, (what, r.status_code, r.text[:300])
        assert msg in r.json()['error'], (what, r.json())
    assert requests.get(url + '/health', timeout=5).json()['status'] == 'ok'
    assert _post(url, imgs[1].read_bytes()).status_code == 200      # still serving
    log = (root/'server.log').read_text()
    assert '"POST /api/predict?heatmap=1 HTTP/1.1" 200' in log and '"GET /health HTTP/1.1" 200' in log   # a line per request

def test_dicom_upload(server, tmp_path):
    url, imgs, _ = server
    a = np.asarray(Image.open(imgs[0]).convert('L')).astype(np.uint16) * 16
    write_dicom(a, tmp_path/'x.dcm')
    r = _post(url, (tmp_path/'x.dcm').read_bytes(), name='x.dcm', ctype='application/dicom')
    assert r.status_code == 200 and r.json()['image_type'] == 'DICOM'

def test_concurrent_requests_do_not_mix(server):
    url, imgs, root = server
    picks = [imgs[0], imgs[5], imgs[-1]]
    single = {p: _post(url, p.read_bytes()).json() for p in picks}
    jobs = [picks[i % 3] for i in range(50)]
    with ThreadPoolExecutor(8) as ex: answers = list(ex.map(lambda p: (p, _post(url, p.read_bytes())), jobs))
    for p, r in answers:
        assert r.status_code == 200
        j, s = r.json(), single[p]
        assert j['predicted'] == s['predicted'] and j['heatmap'] == s['heatmap']
        assert all(abs(j['probabilities'][c] - s['probabilities'][c]) < 1e-6 for c in s['probabilities'])
    assert len({single[p]['heatmap'] for p in picks}) == 3
    assert list((root/'cwd').iterdir()) == []       # nothing written where the server runs

def test_many_fields_and_a_slow_upload_do_not_block(server):
    "was: the standard-library email parser ran on the event loop: 382,090 form fields held every request for 47 s"
    url, imgs, _ = server
    body = b''.join(b'--XX\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(3000)) + b'--XX--\r\n'
    r = requests.post(url + '/api/predict', data=body, headers={'Content-Type': 'multipart/form-data; boundary=XX'}, timeout=30)
    assert r.status_code == 400 and 'Too many fields' in r.json()['error']
    host, port = url.split('//')[1].split(':')
    s = socket.create_connection((host, int(port)))
    try:   # an upload that stalls half-way: the server keeps answering others
        s.sendall(b'POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 150000\r\n\r\n' + imgs[0].read_bytes()[:1000])
        for _ in range(3): assert requests.get(url + '/health', timeout=5).ok
        ok = _post(url, imgs[0].read_bytes())
        assert ok.status_code == 200 and ok.json()['predicted']
    finally: s.close()

def test_dicom_bomb_is_refused_from_its_header(server, tmp_path):
    "was: a 510 KB deflated 16384 x 16384 DICOM took the server from 2.1 to 6.9 GB"
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian
    url, _, _ = server
    ds = pydicom.dcmread(write_dicom(np.zeros((64, 64), np.uint16), tmp_path/'small.dcm'))
    ds.Rows = ds.Columns = 16384
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path/'bomb.dcm', enforce_file_format=True)
    r = _post(url, (tmp_path/'bomb.dcm').read_bytes(), name='bomb.dcm', ctype='application/dicom')
    assert r.status_code == 413 and '16384 x 16384 pixels' in r.json()['error']
    assert requests.get(url + '/health', timeout=5).ok

def test_serves_an_ensemble_folder(three_class, tmp_path):
    "An ensemble folder (`covid-fastai train --quality best`) serves like one model: averaged probabilities, no heatmap, the disclaimer"
    from starlette.testclient import TestClient
    from covid_fastai.ensemble import Ensemble, save_ensemble
    from covid_fastai.serve import create_app
    learn, test = three_class
    save_ensemble(Ensemble([learn, learn], names=['a', 'b']), tmp_path/'ens')
    app = create_app(tmp_path/'ens')
    img = sorted(Path(test).rglob('*.png'))[0]
    with TestClient(app) as c:
        assert c.get('/health').json()['model'].startswith('ensemble(a, b')
        r = c.post('/api/predict?heatmap=1', files={'image': ('x.png', img.read_bytes(), 'image/png')})
    j = r.json()
    assert r.status_code == 200 and j['heatmap'] is None and 'not a medical device' in j['disclaimer'].lower()
    p = app.predictor.members[0].predict_proba([str(img)])[0]      # both members are the same model: the average is the model
    assert np.allclose([j['probabilities'][c] for c in app.predictor.vocab], p, atol=1e-5)

def test_upload_predicts_as_a_file_does(three_class, tmp_path):
    "was: the web app decoded an upload at full scale while files are read at the model's scale (JPEG draft) before CLAHE: classes flipped"
    from starlette.testclient import TestClient
    from covid_fastai.inference import load_covid_model
    from covid_fastai.serve import create_app
    learn, test = three_class
    save_covid_model(learn, tmp_path/'model')
    pred = load_covid_model(tmp_path/'model').with_card(preprocess='clahe')
    jpgs = []
    for i, f in enumerate(sorted(Path(test).rglob('*.png'))[::4]):   # large JPEGs: read at 1/2 or 1/4 scale for a 64 px model
        jpgs.append(tmp_path/f'x{i}.jpg'); Image.open(f).convert('RGB').resize((320 + 32 * i, 300)).save(jpgs[-1], quality=92)
    files = pred.predict_proba([str(j) for j in jpgs])
    with TestClient(create_app(pred, cam='none')) as c:
        for j, p in zip(jpgs, files):
            r = c.post('/api/predict', files={'image': (j.name, j.read_bytes(), 'image/jpeg')}).json()
            assert np.allclose([r['probabilities'][k] for k in pred.vocab], p, atol=1e-5), (r['probabilities'], p)
    assert np.allclose(pred.predict_proba([j.read_bytes() for j in jpgs]), files, atol=1e-5)

def test_full_queue_answers_503_and_health_stays_fast(three_class, tmp_path):
    "was: /health waited behind ~40 queued uploads in the same thread pool"
    import threading
    from starlette.testclient import TestClient
    from covid_fastai.inference import Predictor
    from covid_fastai.serve import create_app
    learn, test = three_class
    pred, gate, entered = Predictor.from_learner(learn), threading.Event(), threading.Event()
    run = pred.run
    def slow(x): entered.set(); gate.wait(30); return run(x)
    pred.run = slow
    img = sorted(Path(test).rglob('*.png'))[0].read_bytes()
    with TestClient(create_app(pred, cam='none', max_queue=1, workers=1)) as c:
        first = ThreadPoolExecutor(1).submit(c.post, '/api/predict', files={'image': ('x.png', img, 'image/png')})
        assert entered.wait(30)
        t = time.perf_counter(); h = c.get('/health')
        assert h.status_code == 200 and h.json()['queued'] == 1 and time.perf_counter() - t < 5
        busy = c.post('/api/predict', files={'image': ('x.png', img, 'image/png')})
        assert busy.status_code == 503 and busy.headers['retry-after'] == '1' and 'Busy' in busy.json()['error']
        gate.set()
        assert first.result(60).status_code == 200
        assert c.post('/api/predict', files={'image': ('x.png', img, 'image/png')}).status_code == 200   # free again

@pytest.mark.parametrize('args,msg', [(['--cam', 'bogus'], "cam='bogus': heatmaps are one of gradcam, gradcam++ or none"),
                                      (['--max-mb', '-1'], 'max_mb=-1.0: the largest upload must be a number of MB > 0')])
def test_serve_options_checked_at_start(three_class, tmp_path, args, msg):
    learn, _ = three_class
    save_covid_model(learn, tmp_path/'model')
    r = subprocess.run(['covid-fastai', 'serve', str(tmp_path/'model'), '--port', str(_free_port()), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_serve_port_in_use_is_one_line(three_class, tmp_path):
    learn, _ = three_class
    save_covid_model(learn, tmp_path/'model')
    with socket.create_server(('127.0.0.1', 0)) as s:
        port = s.getsockname()[1]
        r = subprocess.run(['covid-fastai', 'serve', str(tmp_path/'model'), '--port', str(port)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and f'Cannot listen on 127.0.0.1:{port}' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_space_folder_starts_and_answers(three_class, tmp_path):
    "`covid-fastai space MODEL OUT` writes a Hugging Face Space folder; its app.py starts the web app, which predicts as the model does"
    from covid_fastai.inference import load_covid_model
    from huggingface_hub import SpaceCard
    learn, test = three_class
    save_covid_model(learn, tmp_path/'model')
    r = subprocess.run(['covid-fastai', 'space', str(tmp_path/'model'), '--out', str(tmp_path/'space')], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    sp = tmp_path/'space'
    assert {'app.py', 'Dockerfile', 'requirements.txt', 'README.md', 'model'} <= {p.name for p in sp.iterdir()}
    card = SpaceCard.load(sp/'README.md')
    assert card.data.sdk == 'docker' and card.data.app_port == 7860 and 'not a medical device' in card.text
    port = _free_port()
    (tmp_path/'cwd').mkdir()
    log = open(tmp_path/'space.log', 'w')
    proc = subprocess.Popen([sys.executable, str(sp/'app.py')], cwd=tmp_path/'cwd', env={**__import__('os').environ, 'PORT': str(port), 'HOST': '127.0.0.1'},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f'http://127.0.0.1:{port}'
        for _ in range(240):
            try:
                if requests.get(url + '/health', timeout=1).ok: break
            except requests.ConnectionError: pass
            assert proc.poll() is None, (tmp_path/'space.log').read_text()[-2000:]
            time.sleep(0.5)
        img = sorted(Path(test).rglob('*.png'))[0]
        ans = _post(url, img.read_bytes(), query='').json()
        want = load_covid_model(tmp_path/'model').predict_proba([str(img)])[0]
        pred = load_covid_model(tmp_path/'model')
        assert np.allclose([ans['probabilities'][k] for k in pred.vocab], want, atol=1e-4) and 'not a medical device' in ans['disclaimer']
    finally: proc.terminate(); proc.wait(10); log.close()
