"""Tests of substrate/prepare.py, the fixed harness: profiles, corpora, tokenizer,
dataloader, metric, download, idempotent preparation.

Each test loads its own copy of prepare.py (as a workspace would) with its environment
(tiny profile, a temporary cache), so nothing global is mutated."""

import bisect
import functools
import http.server
import importlib.util
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import time

import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

PREPARE = Path(__file__).resolve().parents[1] / "substrate" / "prepare.py"


def load_prepare(cache_dir, profile="tiny", path=PREPARE, **env):
    """A fresh module from prepare.py, its constants computed under the given environment."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("COCKPIT_PROFILE", "COCKPIT_TIME_BUDGET", "COCKPIT_DATA_URL", "COCKPIT_BUDGET_CLOCK"):
            mp.delenv(name, raising=False)
        if profile:
            mp.setenv("COCKPIT_PROFILE", profile)
        mp.setenv("COCKPIT_CACHE_DIR", str(cache_dir))
        for name, value in env.items():
            mp.setenv(name, value)
        spec = importlib.util.spec_from_file_location("prepare_under_test", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny profile, prepared once in a temporary cache (about 1 s)."""
    module = load_prepare(tmp_path_factory.mktemp("cache"))
    module.prepare(progress=False)
    return module


@pytest.fixture(scope="session")
def tok(tiny):
    return tiny.Tokenizer.from_directory()


def split_texts(module, split):
    return [t for p in module.shard_paths(split) for t in pq.read_table(p).column("text").to_pylist()]

# -----------------------------------------------------------------------------
# Profiles


def test_profile_constants_and_dirs(tmp_path):
    m = load_prepare(tmp_path, "cpu", COCKPIT_TIME_BUDGET="12.5")
    assert (m.PROFILE, m.MAX_SEQ_LEN, m.VOCAB_SIZE, m.EVAL_TOKENS) == ("cpu", 256, 4096, 2**17)
    assert m.TIME_BUDGET == 12.5
    assert m.DATA_DIR == tmp_path / "cpu" / "data" and m.TOKENIZER_DIR == tmp_path / "cpu" / "tokenizer"
    h = load_prepare(tmp_path, profile=None)  # no env, no cockpit.toml beside substrate/prepare.py
    assert (h.PROFILE, h.MAX_SEQ_LEN, h.TIME_BUDGET, h.EVAL_TOKENS, h.VOCAB_SIZE) == \
        ("h100", 2048, 300.0, 40 * 524288, 8192)


def test_the_budget_clock_per_profile_and_what_it_counts(tmp_path):
    """h100 counts wall seconds; cpu and tiny count the process's CPU seconds per thread,
    so a sleep (time given to other processes) does not advance them and work does."""
    assert load_prepare(tmp_path, profile=None).BUDGET_CLOCK == "wall"
    assert load_prepare(tmp_path, "h100", COCKPIT_BUDGET_CLOCK="cpu").BUDGET_CLOCK == "cpu"
    wall, cpu = load_prepare(tmp_path, "cpu", COCKPIT_BUDGET_CLOCK="wall"), load_prepare(tmp_path, "cpu")
    assert cpu.BUDGET_CLOCK == "cpu" and load_prepare(tmp_path, "tiny").BUDGET_CLOCK == "cpu"
    assert 1 <= cpu.BUDGET_THREADS <= min(torch.get_num_threads(), len(os.sched_getaffinity(0)))
    w0, c0 = wall.budget_clock(), cpu.budget_clock()
    time.sleep(0.3)
    w1, c1 = wall.budget_clock(), cpu.budget_clock()
    assert w1 - w0 >= 0.3 and c1 - c0 < 0.05
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert cpu.budget_clock() - c1 >= 0.2 / cpu.BUDGET_THREADS * 0.9


def test_a_budget_clock_that_is_neither_is_one_clear_error(tmp_path):
    with pytest.raises(Exception, match="COCKPIT_BUDGET_CLOCK='gpu' is not wall or cpu"):
        load_prepare(tmp_path, "cpu", COCKPIT_BUDGET_CLOCK="gpu")


def test_profile_from_cockpit_toml_and_env_precedence(tmp_path):
    shutil.copy(PREPARE, tmp_path / "prepare.py")
    (tmp_path / "cockpit.toml").write_text('profile = "cpu"\n[agent]\nmodel = "x"\n')
    assert load_prepare(tmp_path, None, path=tmp_path / "prepare.py").PROFILE == "cpu"
    assert load_prepare(tmp_path, "tiny", path=tmp_path / "prepare.py").PROFILE == "tiny"


def test_unknown_profile_is_one_clear_error(tmp_path):
    with pytest.raises(Exception, match=r"unknown profile 'nope' \(from env COCKPIT_PROFILE\); choose one of") as e:
        load_prepare(tmp_path, "nope")
    assert type(e.value).__name__ == "PrepareError"

# -----------------------------------------------------------------------------
# Corpus kjv


def test_kjv_chapters_and_documents(tiny):
    chapters = tiny.kjv_chapters(tiny.kjv_db_path())
    assert len(chapters) == 1189 and sum(len(v) for _, _, v in chapters) == 31102
    assert chapters[0][:2] == ("Genesis", 1) and chapters[0][2][0].startswith("In the beginning God created")
    for _, _, verses in chapters[::37]:
        docs = tiny.split_chapter(verses)
        assert "\n".join(docs) == "\n".join(verses)
        assert all(len(d) <= tiny.KJV_DOC_CHARS or "\n" not in d for d in docs)
    assert not any(tiny.VERSE_MARK.search(" " + v) for _, _, vs in chapters for v in vs)


def test_kjv_split_is_by_book_and_deterministic(tiny, tmp_path):
    val, train = split_texts(tiny, "val"), split_texts(tiny, "train")
    assert tiny.shard_paths("val")[0].name == "shard_val.parquet"
    assert not set(val) & set(train)
    chapters = tiny.kjv_chapters(tiny.kjv_db_path())
    assert val == [d for b, _, v in chapters if b in tiny.KJV_VAL_BOOKS for d in tiny.split_chapter(v)]
    holdout = split_texts(tiny, "holdout")
    assert holdout == [d for b, _, v in chapters if b in tiny.KJV_HOLDOUT_BOOKS for d in tiny.split_chapter(v)]
    assert not set(tiny.KJV_HOLDOUT_BOOKS) & set(tiny.KJV_VAL_BOOKS) and not set(holdout) & set(train)
    assert sorted(train) == sorted(d for b, _, v in chapters
                                   if b not in tiny.KJV_VAL_BOOKS and b not in tiny.KJV_HOLDOUT_BOOKS
                                   for d in tiny.split_chapter(v))
    assert tiny.text_sha256(val) == tiny.KJV_VAL_TEXT_SHA256
    tiny.build_kjv(tmp_path, progress=False)  # same bytes on a second build
    for p in [*tiny.shard_paths("train"), *tiny.shard_paths("val"), *tiny.shard_paths("holdout")]:
        assert (tmp_path / p.name).read_bytes() == p.read_bytes()

# -----------------------------------------------------------------------------
# Tokenizer

SAMPLES = ["", "hello world", "In the beginning God created the heaven and the earth.\n",
           "digits 0 7 42 123 4567 3.14159 1,000,000", "naïve café – “quotes” … ünïcödé Ω≈ç√ 漢字 🙂👍🏽",
           "  leading and trailing spaces  \n\n\ttabs\r\n", "<|reserved_0|> is not special in plain text",
           "x" * 300]


def test_tokenizer_round_trip(tok):
    n_special = len(tok.enc.special_tokens_set)
    assert tok.get_vocab_size() == 512 and tok.get_bos_token_id() == 512 - n_special
    for s in SAMPLES:
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        assert all(0 <= i < tok.get_vocab_size() - n_special for i in ids)  # no special from text
    batch = tok.encode(SAMPLES, prepend=tok.get_bos_token_id())
    assert batch == [[tok.get_bos_token_id()] + tok.encode(s) for s in SAMPLES]
    assert tok.encode("a b", prepend="<|reserved_0|>")[0] == tok.get_bos_token_id()


def test_rustbpe_and_tiktoken_agree(tiny):
    texts = split_texts(tiny, "train")[:200] + SAMPLES
    bpe = tiny.train_bpe(texts, 400)
    enc = tiny.bpe_to_tiktoken(bpe)
    assert enc.n_vocab == bpe.vocab_size + 4
    for s in texts[:50] + SAMPLES:
        assert bpe.encode(s) == enc.encode_ordinary(s)


def test_token_bytes(tiny, tok):
    tb = tiny.get_token_bytes("cpu")
    assert tb.dtype == torch.int32 and tb.shape == (tok.get_vocab_size(),)
    special = {tok.enc.encode_single_token(s) for s in tiny.SPECIAL_TOKENS}
    for i in range(tok.get_vocab_size()):
        assert tb[i] == (0 if i in special else len(tok.enc.decode_single_token_bytes(i)))

def test_upstream_byte_count_counts_a_token_that_is_not_utf8_alone_as_its_replacement_chars(tiny, tok):
    exact, upstream = tiny.token_byte_lengths(tok.enc), tiny.token_byte_lengths(tok.enc, "upstream")
    enc = tok.enc
    lead = enc.encode_single_token(b"\xe4")       # first byte of a 3-byte character: not UTF-8 alone
    cont = enc.encode_single_token(b"\xa0")       # a continuation byte alone
    ascii_ = enc.encode_single_token(b"e")
    assert (exact[lead].item(), upstream[lead].item()) == (1, 3)  # upstream: len("\ufffd".encode()) = 3
    assert (exact[cont].item(), upstream[cont].item()) == (1, 3)
    assert exact[ascii_].item() == upstream[ascii_].item() == 1
    special = {enc.encode_single_token(s) for s in tiny.SPECIAL_TOKENS}
    for i in range(enc.n_vocab):  # upstream's formula (karpathy/autoresearch prepare.py), token by token
        text = enc.decode([i])
        assert upstream[i].item() == (0 if text in tiny.SPECIAL_TOKENS else len(text.encode("utf-8")))
        assert (exact[i] == upstream[i]).item() == (i in special or _valid_utf8(enc.decode_single_token_bytes(i)))
    with pytest.raises(ValueError, match="'exact' or 'upstream'"):
        tiny.token_byte_lengths(enc, "utf16")


def _valid_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_each_profile_names_its_byte_count_and_the_h100_recipe_says_so(tiny):
    assert {name: p["BYTE_COUNT"] for name, p in tiny.PROFILES.items()} == {
        "h100": "upstream", "cpu": "exact", "tiny": "exact"}
    assert tiny.recipes("h100")[1].endswith("; token bytes counted as upstream")
    assert "token bytes" not in tiny.recipes("cpu")[1]  # the cpu/tiny caches keep their stamps

# -----------------------------------------------------------------------------
# Dataloader


def segments(row, bos):
    """Split a row at BOS tokens: each segment starts with BOS."""
    starts = [i for i, t in enumerate(row) if t == bos] + [len(row)]
    assert starts[0] == 0, "row does not start with BOS"
    return [tuple(row[a:b]) for a, b in zip(starts, starts[1:])]


@pytest.mark.parametrize("split", ["train", "val"])
def test_dataloader_invariants(tiny, tok, split):
    B, T, bos = 4, 64, tok.get_bos_token_id()
    docs = {tuple(ids) for ids in tok.encode(split_texts(tiny, split), prepend=bos)}
    sorted_docs = sorted(docs)
    loader = tiny.make_dataloader(tok, B, T, split)
    for _ in range(20):
        x, y, epoch = next(loader)
        assert x.shape == y.shape == (B, T) and x.dtype == y.dtype == torch.int64 and epoch == 1
        assert x.device.type == "cpu"
        assert (x[:, 0] == bos).all()
        assert torch.equal(x[:, 1:], y[:, :-1])
        assert int(torch.cat([x, y]).max()) <= bos  # never reserved_1..3: nothing padded
        for row in torch.cat([x[:, :1], y], dim=1).tolist():  # the underlying T+1 row
            segs = segments(row, bos)
            assert all(s in docs for s in segs[:-1])  # whole documents of this split...
            j = bisect.bisect_left(sorted_docs, segs[-1])  # ...and the last one a prefix (crop)
            assert j < len(sorted_docs) and sorted_docs[j][:len(segs[-1])] == segs[-1]


class CharTokenizer:
    """Stub tokenizer for exact packing tests: one token per character, BOS = 0."""
    def get_bos_token_id(self):
        return 0

    def encode(self, texts, prepend=None):
        return [[prepend] + [ord(c) for c in t] for t in texts]


def test_best_fit_packing_and_epochs(tmp_path, tiny):
    # documents with BOS: A=5, B=3, C=2, D=7, E=9 tokens; rows of T+1 = 8
    tiny.write_parquet(tmp_path / "shard_00000.parquet", ["aaaa", "bb", "c", "dddddd", "eeeeeeee"])
    tiny.write_parquet(tmp_path / "shard_val.parquet", ["v"])
    loader = tiny.make_dataloader(CharTokenizer(), 1, 7, "train", data_dir=tmp_path)
    rows = []
    for _ in range(4):
        x, y, epoch = next(loader)
        rows.append((torch.cat([x[0, :1], y[0]]).tolist(), epoch))
    a, b, c, d, e = ([0] + [ord(ch)] * n for ch, n in zip("abcde", (4, 2, 1, 6, 8)))
    assert rows[0] == (d + c[:1], 1)  # largest that fits (D), then nothing fits: crop shortest (C)
    assert rows[1] == (a + b, 1)      # largest that fits (A), then B fills the row exactly
    assert rows[2] == (e[:8], 1)      # only E left, too long: cropped; the pass is complete
    assert rows[3] == (d + c[:1], 2)  # second pass starts over
    x, y, epoch = next(tiny.make_dataloader(CharTokenizer(), 1, 3, "val", data_dir=tmp_path))
    assert torch.cat([x[0, :1], y[0]]).tolist() == [0, ord("v"), 0, ord("v")] and epoch == 2  # val only

# -----------------------------------------------------------------------------
# Metric


class LossModel(torch.nn.Module):
    """Returns per-token nats of uniform logits over V (ln V each), or zeros."""
    def __init__(self, vocab_size, zero=False):
        super().__init__()
        self.V, self.zero, self.dummy = vocab_size, zero, torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, y, reduction="mean"):
        if self.zero:
            return torch.zeros(y.shape)
        logits = torch.zeros(y.numel(), self.V) + self.dummy
        return F.cross_entropy(logits, y.reshape(-1), reduction=reduction)  # [B*T]


def test_evaluate_bpb_uniform_and_zero(tiny, tok):
    V, B = tok.get_vocab_size(), 8
    steps = tiny.EVAL_TOKENS // (B * tiny.MAX_SEQ_LEN)
    loader = tiny.make_dataloader(tok, B, tiny.MAX_SEQ_LEN, "val")
    targets = [t for _ in range(steps) for t in next(loader)[1].reshape(-1).tolist()]
    special = {tok.enc.encode_single_token(s) for s in tiny.SPECIAL_TOKENS}
    n_tokens = sum(t not in special for t in targets)
    n_bytes = sum(len(tok.enc.decode_single_token_bytes(t)) for t in targets if t not in special)
    assert n_tokens < len(targets)  # some targets are BOS, excluded
    expected = math.log2(V) * n_tokens / n_bytes
    assert tiny.evaluate_bpb(LossModel(V), tok, B) == pytest.approx(expected, rel=1e-6)
    assert tiny.evaluate_bpb(LossModel(V), tok, 4) == pytest.approx(expected, rel=1e-6)  # same rows
    assert tiny.evaluate_bpb(LossModel(V, zero=True), tok, B) == 0.0
    with pytest.raises(ValueError):
        tiny.evaluate_bpb(LossModel(V), tok, 1024)


class BigramModel(torch.nn.Module):
    """Per-token nats of a random bigram table (seeded): non-uniform, different for every token."""
    def __init__(self, vocab_size):
        super().__init__()
        self.table = torch.nn.Embedding(vocab_size, vocab_size)
        torch.nn.init.normal_(self.table.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x, y, reduction="mean"):
        logits = self.table(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1), reduction=reduction)


def test_evaluate_bpb_equals_per_batch_readback(tiny, tok):
    # evaluate_bpb keeps each batch's sums on the device and reads them back once; the number
    # must be exactly the one of reading each batch's float32 sum back per batch (the earlier
    # loop), added in the same order as Python floats.
    model, B, T = BigramModel(tok.get_vocab_size()), 8, tiny.MAX_SEQ_LEN
    token_bytes = tiny.get_token_bytes("cpu")
    loader = tiny.make_dataloader(tok, B, T, "val")
    total_nats, total_bytes = 0.0, 0
    with torch.no_grad():
        for _ in range(tiny.EVAL_TOKENS // (B * T)):
            x, y, _ = next(loader)
            nats = model(x, y, reduction="none").reshape(-1).float()
            nbytes = token_bytes[y.reshape(-1)]
            total_nats += torch.where(nbytes > 0, nats, torch.zeros_like(nats)).sum().item()
            total_bytes += nbytes.sum().item()
    expected = total_nats / (math.log(2) * total_bytes)
    assert tiny.evaluate_bpb(model, tok, B) == expected
    assert tiny.evaluate_bpb(model, tok, 4) == pytest.approx(expected, rel=1e-6)  # same rows, other sums

# -----------------------------------------------------------------------------
# Download (climbmix path) against a local HTTP server


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; /flaky/* fails with 500 the first time, /short/* sends a short body."""
    requests = []

    def do_GET(self):
        Handler.requests.append(self.path)
        if self.path.startswith("/flaky/") and Handler.requests.count(self.path) == 1:
            return self.send_error(500)
        if self.path.startswith("/short/"):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten b")
            self.close_connection = True
            return
        self.path = self.path.replace("/flaky/", "/", 1)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, served dir) of a local HTTP server, stopped after the test."""
    root = tmp_path / "served"
    root.mkdir()
    Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def fake_climbmix(tiny, root, shards):
    for i in shards:
        tiny.write_parquet(root / f"shard_{i:05d}.parquet",
                           [f"Document {k} of shard {i}: the quick brown fox, {k * i} times." for k in range(50)])


def test_download_file_success_and_retry(tiny, server, tmp_path):
    base, root = server
    fake_climbmix(tiny, root, [0])
    dest = tmp_path / "out" / "shard_00000.parquet"
    dest.parent.mkdir()
    assert tiny.download_file(f"{base}/shard_00000.parquet", dest) == dest
    assert dest.read_bytes() == (root / "shard_00000.parquet").read_bytes()
    dest.unlink()
    tiny.download_file(f"{base}/flaky/shard_00000.parquet", dest, backoff=0.01)  # 500, then 200
    assert dest.read_bytes() == (root / "shard_00000.parquet").read_bytes()
    assert Handler.requests.count("/flaky/shard_00000.parquet") == 2
    assert sorted(p.name for p in dest.parent.iterdir()) == ["shard_00000.parquet"]


def test_download_failures_leave_nothing(tiny, server, tmp_path):
    base, _ = server
    dest = tmp_path / "shard_00001.parquet"
    with pytest.raises(tiny.PrepareError, match=r"download failed: .*/shard_00001.parquet \(HTTP 404"):
        tiny.download_file(f"{base}/shard_00001.parquet", dest, backoff=0.01)
    assert Handler.requests == ["/shard_00001.parquet"]  # a 404 is not retried
    with pytest.raises(tiny.PrepareError, match=r"/short/x.parquet .*3 attempt\(s\)"):
        tiny.download_file(f"{base}/short/x.parquet", dest, tries=3, backoff=0.01)
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(tiny.PrepareError, match=f"(?s)127.0.0.1:{port}/y.parquet .*COCKPIT_DATA_URL"):
        tiny.download_file(f"http://127.0.0.1:{port}/y.parquet", dest, tries=2, backoff=0.01)
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]  # no .tmp, no partial file


def test_prepare_h100_from_local_mirror(tiny, server, tmp_path, monkeypatch):
    base, root = server
    fake_climbmix(tiny, root, [*range(10), 6541, 6542])
    monkeypatch.setenv("COCKPIT_DATA_URL", base)
    cache = tmp_path / "cache"
    assert tiny.prepare("h100", progress=False, cache_dir=cache)["data"] == "built"
    data_dir, tokenizer_dir = tiny.profile_dirs("h100", cache)
    assert [p.name for p in tiny.shard_paths("val", data_dir)] == ["shard_06542.parquet"]
    assert len(tiny.shard_paths("train", data_dir)) == 10
    assert tiny.shard_paths("holdout", data_dir) == [data_dir / "holdout.parquet"]  # shard 06541, renamed
    tok = tiny.Tokenizer.from_directory(tokenizer_dir)
    x, y, epoch = next(tiny.make_dataloader(tok, 2, 32, "val", data_dir=data_dir))
    assert tok.decode(x[0, 1:].tolist()).startswith("Document ")
    # val_bpb's byte count is upstream's: a lone high byte counts 3 (its U+FFFD), not 1
    token_bytes = tiny.get_token_bytes("cpu", tokenizer_dir)
    assert token_bytes[tok.enc.encode_single_token(b"\xe4")].item() == 3
    assert torch.equal(token_bytes, tiny.token_byte_lengths(tok.enc, "upstream"))
    # no CUDA here: the attention kernel is not fetched, and prepare says why
    result = tiny.prepare("h100", progress=False, cache_dir=cache)
    assert result["attention"].startswith("attention kernel: not fetched, no CUDA here (torch ")


def test_cli_reports_download_failure(tiny, server, tmp_path):
    base, _ = server
    env = {**os.environ, "COCKPIT_PROFILE": "h100", "COCKPIT_CACHE_DIR": str(tmp_path / "c"),
           "COCKPIT_DATA_URL": base}
    r = subprocess.run([sys.executable, str(PREPARE)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "prepare.py: error: download failed: " + base + "/shard_00000.parquet (HTTP 404" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "c" / "h100" / "data").iterdir())

# -----------------------------------------------------------------------------
# Preparation


def test_prepare_is_idempotent(tmp_path):
    m = load_prepare(tmp_path)
    first = m.prepare(progress=False)
    assert (first["data"], first["tokenizer"]) == ("built", "trained")
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "tiny/data/holdout.parquet", "tiny/data/prepared.txt", "tiny/data/shard_00000.parquet", "tiny/data/shard_00001.parquet",
        "tiny/data/shard_val.parquet", "tiny/tokenizer/prepared.txt", "tiny/tokenizer/token_bytes.pt",
        "tiny/tokenizer/tokenizer.pkl"]
    mtimes = [p.stat().st_mtime_ns for p in files]
    second = m.prepare(progress=False)
    assert (second["data"], second["tokenizer"]) == ("cached", "cached")
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    (tmp_path / "tiny" / "data" / "prepared.txt").write_text("an older recipe")  # stale cache: rebuilt
    (tmp_path / "tiny" / "data" / "shard_00007.parquet").write_bytes(b"stale")
    third = m.prepare(progress=False)
    assert (third["data"], third["tokenizer"]) == ("built", "trained")
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files


def test_harness_info(tiny):
    info = tiny.harness_info()
    assert info["profile"] == "tiny" and info["corpus"] == "kjv" and info["vocab_size"] == 512
    assert info["val_shard"] == "shard_val.parquet"
    assert info["val_shard_sha256"] == tiny.file_sha256(tiny.shard_paths("val")[0])
    assert info["python"] == sys.version and info["torch"] == torch.__version__


def test_cli_ready(tiny):
    env = {**os.environ, "COCKPIT_PROFILE": "tiny", "COCKPIT_CACHE_DIR": str(tiny.CACHE_DIR)}
    r = subprocess.run([sys.executable, str(PREPARE)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "data: ready" in r.stdout and "tokenizer: ready" in r.stdout and "(cached)" in r.stdout


def test_import_leaves_preparation_only_modules_unloaded(tiny):
    # train.py imports prepare; what only preparation needs (progress bars, the kjv database,
    # BPE training) is imported where it is used, to keep start-up short.
    code = "import sys, prepare; print(sorted(m for m in ('rich.progress', 'sqlite3', 'rustbpe') if m in sys.modules))"
    env = {**os.environ, "COCKPIT_PROFILE": "tiny", "COCKPIT_CACHE_DIR": str(tiny.CACHE_DIR)}
    r = subprocess.run([sys.executable, "-c", code], cwd=PREPARE.parent, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"

# -----------------------------------------------------------------------------
# Holdout (cockpit.rules.holdout): scored aside, only for a run that could be kept


def test_evaluate_bpb_scores_the_holdout_aside_only_below_the_best(tiny, tok, tmp_path, monkeypatch, capsys):
    V, B, out = tok.get_vocab_size(), 8, tmp_path / "holdout.json"
    monkeypatch.setenv(tiny.HOLDOUT_OUT_ENV, str(out))
    monkeypatch.delenv(tiny.HOLDOUT_BEST_ENV, raising=False)
    val = tiny.evaluate_bpb(LossModel(V), tok, B)  # no best given (a baseline): scored
    scored = json.loads(out.read_text())
    steps = max(1, tiny.HOLDOUT_TOKENS // (B * tiny.MAX_SEQ_LEN))
    loader = tiny.make_dataloader(tok, B, tiny.MAX_SEQ_LEN, "holdout")
    targets = [t for _ in range(steps) for t in next(loader)[1].reshape(-1).tolist()]
    special = {tok.enc.encode_single_token(s) for s in tiny.SPECIAL_TOKENS}
    n_tokens = sum(t not in special for t in targets)
    n_bytes = sum(len(tok.enc.decode_single_token_bytes(t)) for t in targets if t not in special)
    assert scored["holdout_bpb"] == pytest.approx(math.log2(V) * n_tokens / n_bytes, rel=1e-6)
    assert scored["holdout_bpb"] != pytest.approx(val, rel=1e-9) and scored["tokens"] == steps * B * tiny.MAX_SEQ_LEN
    assert "holdout" not in capsys.readouterr().out  # nothing printed: the agent may read the output
    out.unlink()
    monkeypatch.setenv(tiny.HOLDOUT_BEST_ENV, repr(val - 0.01))  # not better than the best: not scored
    tiny.evaluate_bpb(LossModel(V), tok, B)
    assert not out.exists()
    monkeypatch.setenv(tiny.HOLDOUT_BEST_ENV, repr(val + 0.01))
    tiny.evaluate_bpb(LossModel(V), tok, B)
    assert json.loads(out.read_text())["holdout_bpb"] == pytest.approx(scored["holdout_bpb"])


def test_a_missing_holdout_shard_is_said_in_the_file(tiny, tok, tmp_path, monkeypatch):
    out = tmp_path / "holdout.json"
    monkeypatch.setenv(tiny.HOLDOUT_OUT_ENV, str(out))
    monkeypatch.delenv(tiny.HOLDOUT_BEST_ENV, raising=False)
    holdout = tiny.shard_paths("holdout")[0]
    moved = holdout.with_name("moved.parquet")
    holdout.rename(moved)
    try:
        tiny.evaluate_bpb(LossModel(tok.get_vocab_size()), tok, 8)
    finally:
        moved.rename(holdout)
    assert "no holdout shard" in json.loads(out.read_text())["error"]

# -----------------------------------------------------------------------------
# CUDA: the reason a machine cannot train on it; the attention kernel fetched once


class FakeTorch:
    """What cuda_problem reads of torch: __version__, version.cuda, cuda.is_available()."""

    def __init__(self, version, cuda_build, available=False):
        self.__version__ = version
        self.version = type("V", (), {"cuda": cuda_build})()
        self.cuda = type("C", (), {"is_available": staticmethod(lambda: available)})()


def test_cuda_problem_names_the_build_the_driver_and_what_to_install(tiny):
    assert tiny.cuda_problem(FakeTorch("2.13.0+cu130", "13.0", available=True)) is None
    cpu = tiny.cuda_problem(FakeTorch("2.13.0+cpu", None))
    assert "CPU-only build" in cpu and "pip install torch==2.13.0" in cpu
    none = tiny.cuda_problem(FakeTorch("2.13.0", "13.0"), driver=None)
    assert none.startswith("no NVIDIA driver found") and "needs driver >= 580" in none
    old = tiny.cuda_problem(FakeTorch("2.13.0", "13.0"), driver="535.104.05")
    assert old.startswith("NVIDIA driver 535.104.05 is too old for torch 2.13.0 (built for CUDA 13.0, "
                          "needs driver >= 580)")
    assert "--index-url https://download.pytorch.org/whl/cu126" in old
    recent = tiny.cuda_problem(FakeTorch("2.13.0", "13.0"), driver="580.65.06")
    assert "sees no usable GPU with driver 580.65.06" in recent and "CUDA_VISIBLE_DEVICES" in recent
    assert "too old" not in tiny.cuda_problem(FakeTorch("2.13.0+cu126", "12.6"), driver="535.104.05")


def test_the_attention_kernel_is_fetched_once_per_torch_and_gpu(tiny, tmp_path, monkeypatch):
    calls = []

    def get_kernel(repo, version=None, trust_remote_code=False):
        calls.append((repo, version, trust_remote_code))
        if repo.startswith("varunneal/"):
            raise FileNotFoundError("no v1 branch")
        return object()
    monkeypatch.setattr(tiny, "cuda_problem", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    line = tiny.fetch_attention_kernels("h100", tmp_path, get_kernel=get_kernel)
    assert line == "attention kernel: fa3:kernels-community/flash-attn3 fetched into the Hugging Face cache"
    assert calls == [("varunneal/flash-attention-3", 1, True), ("kernels-community/flash-attn3", 1, False)]
    stamp = tmp_path / "h100" / tiny.KERNEL_STAMP
    assert stamp.read_text() == f"torch {torch.__version__}; sm_90; fa3:kernels-community/flash-attn3"
    calls.clear()
    assert tiny.fetch_attention_kernels("h100", tmp_path, get_kernel=get_kernel).endswith(", cached)")
    assert calls == []  # a second prepare makes no Hub call
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # another GPU: again
    tiny.fetch_attention_kernels("h100", tmp_path, get_kernel=get_kernel)
    assert calls == [("kernels-community/flash-attn3", 1, False)]  # varunneal's is Hopper-only
    # nothing loads: said in one line, and the next prepare tries again
    stamp.unlink()
    calls.clear()
    failing = lambda repo, **kw: (_ for _ in ()).throw(OSError("offline"))  # noqa: E731
    line = tiny.fetch_attention_kernels("h100", tmp_path, get_kernel=failing)
    assert line.startswith("attention kernel: none could be fetched (") and line.endswith("will use PyTorch attention")
    assert "none: " in stamp.read_text()
    assert tiny.fetch_attention_kernels("cpu", tmp_path, get_kernel=failing).endswith("runs PyTorch attention)")
