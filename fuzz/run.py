"""Run one fuzz target for a while: ``python -m fuzz.run TARGET --seconds N`` (what
``scripts/fuzz`` runs).

Engines:

* ``atheris`` (used when the ``atheris`` package imports): coverage-guided, libFuzzer under
  the hood. The target runs in a child process (libFuzzer ends its process when done or on
  the first crash); its output goes to ``fuzz/.work/TARGET/libfuzzer.log`` and the summary
  line is read from it. New inputs that reach new coverage are kept in
  ``fuzz/.work/TARGET/corpus/`` (the seeds in ``fuzz/corpus/TARGET/`` are only read), a
  crashing input is written as ``fuzz/.work/TARGET/crash-<sha1>``.
* ``mutate`` (the fallback when atheris cannot be installed, or with ``--engine mutate``):
  NO coverage feedback -- random byte flips, insertions of grammar tokens, deletions,
  truncations, line duplications and splices of the seed corpus, checked against the same
  properties. It keeps going after a failure and reports each distinct one.

Either way it prints the number of inputs executed and every failure found, and exits 1
when something was found.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import random
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

from fuzz import TARGETS
from fuzz._common import CORPUS, seeds

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"

#: bytes that matter to the grammars fuzzed here; the mutation engine inserts them, and
#: libFuzzer gets them as its dictionary
TOKENS = [b"\r\n", b"\n", b" ", b"\t", b";", b",", b":", b"<", b">", b'"', b"\\", b"%", b"@",
          b"[", b"]", b"=", b"?", b"&", b"/", b"\r\n ", b"\x00", b"\xff", b"\xc3\xa9", b"0", b"65536",
          b"-1", b"9" * 12, b"SIP/2.0", b"z9hG4bK", b"Content-Length: ", b"\r\n\r\n", b"Via: ",
          b"v:", b"l:", b"To:", b"tag=", b"sip:", b"sips:", b"tel:", b"m=", b"c=IN IP4 ", b"a=rtcp:",
          b"Digest ", b"{", b"}", b'":', b"null", b"true", b"[]", b"{}", b"<SOAP-ENV:Body>",
          b'href="#', b' id="', b'xsi:type="SOAP-ENC:Array"', b'SOAP-ENC:arrayType="xsd:string[',
          b"<item>", b"</item>", b"\xc0\x0c", b"\x00\x29\x10\x00", b"\x00\x01\x00\x01", b"\x00\x23",
          b"MSRP ", b"-------", b"$\r\n", b"+\r\n", b"#\r\n", b"To-Path: ", b"From-Path: ", b"Byte-Range: ",
          b"msrp://", b"msrps://", b";tcp", b"1-*/", b"Message-ID: "]


def _harness(target: str):
    if target not in TARGETS:
        raise SystemExit(f"unknown target {target!r}; one of: {', '.join(TARGETS)}")
    return importlib.import_module(f"fuzz.{target}")


def _work(target: str) -> Path:
    path = WORK / target
    (path / "corpus").mkdir(parents=True, exist_ok=True)
    return path


def _max_len(target: str) -> int:
    """Up to a UDP datagram's worth: costs that grow faster than the input show at that size
    (libFuzzer still starts short and lengthens its inputs as it goes)."""
    sizes = [len(s) for s in seeds(target)]
    return max(65535, int(max(sizes, default=0) * 1.5))


# -- atheris ----------------------------------------------------------------------------------


def main_for(module_name: str) -> None:
    """``python -m fuzz.TARGET [libFuzzer flags]``: the target under atheris directly."""
    target = module_name.rpartition(".")[2] if module_name != "__main__" else Path(sys.argv[0]).stem
    _atheris_child(target, sys.argv[1:])


def _atheris_child(target: str, flags: list[str]) -> None:
    import atheris

    harness = _harness(target)
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], *flags], harness.TestOneInput)
    atheris.Fuzz()


def _dictionary(work: Path) -> Path:
    path = work / "tokens.dict"
    path.write_text("".join('"' + "".join(f"\\x{b:02x}" for b in t) + '"\n' for t in TOKENS))
    return path


def run_atheris(target: str, seconds: int) -> int:
    work = _work(target)
    log_path = work / "libfuzzer.log"
    flags = [f"-max_total_time={seconds}", "-timeout=0", "-print_final_stats=1",
             f"-max_len={_max_len(target)}", f"-dict={_dictionary(work)}",
             f"-artifact_prefix={work}/", str(work / "corpus"), str(CORPUS / target)]
    cmd = [sys.executable, "-c", "import sys; from fuzz.run import _atheris_child; "
           "_atheris_child(sys.argv[1], sys.argv[2:])", target, *flags]
    print(f"fuzz {target}: atheris (coverage-guided libFuzzer), {seconds} s; log {log_path}", flush=True)
    start = time.monotonic()
    with open(log_path, "wb") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT.parent,
                             env={**os.environ, "PYTHONPATH": str(ROOT.parent)})
    elapsed = time.monotonic() - start
    text = log_path.read_text(errors="replace")
    executed = _executed(text)
    crash = re.search(r"Test unit written to (\S+)", text)
    corpus = len(list((work / "corpus").iterdir()))
    print(f"fuzz {target}: {executed} inputs executed in {elapsed:.0f} s (engine atheris, "
          f"{corpus} inputs in the work corpus)")
    if crash or rc != 0:
        where = text.find("=== Uncaught Python exception: ===")
        excerpt = text[where:where + 3000] if where >= 0 else text[-3000:]
        print(f"fuzz {target}: CRASH (exit {rc}); input: {crash.group(1) if crash else '?'}\n{excerpt}")
        return 1
    print(f"fuzz {target}: no crash")
    return 0


def _executed(text: str) -> int:
    m = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    if m:
        return int(m[-1])
    counts = re.findall(r"^#(\d+)\s", text, re.MULTILINE)
    return int(counts[-1]) if counts else 0


# -- the fallback: coverage-less mutation ------------------------------------------------------


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip bits of a byte
            i = min(pos, len(buf) - 1)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # a random byte
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 2:  # insert a grammar token
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 3:  # delete a run
            del buf[pos:pos + rng.randint(1, 32)]
        elif op == 4 and rng.random() < 0.3:  # truncate
            del buf[pos:]
        elif op == 5:  # duplicate a line
            lines = bytes(buf).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            buf = bytearray(b"\n".join(lines))
        elif op == 6 and pool:  # splice in a piece of another input
            other = rng.choice(pool)
            j = rng.randrange(len(other) + 1)
            buf[pos:pos] = other[j:j + rng.randint(1, 120)]
        elif op == 7 and buf:  # repeat a piece (long values, deep nesting)
            j = rng.randrange(len(buf))
            piece = bytes(buf[j:j + rng.randint(1, 8)])
            buf[pos:pos] = piece * rng.choice((2, 16, 256, 2048))
    return bytes(buf)


def run_mutate(target: str, seconds: int, seed: int | None = None) -> int:
    harness = _harness(target)
    work = _work(target)
    pool = seeds(target) or [b""]
    rng = random.Random(seed)
    print(f"fuzz {target}: fallback engine 'mutate' -- NO coverage feedback (random mutations of "
          f"{len(pool)} seeds), {seconds} s", flush=True)
    found: dict[str, Path] = {}
    executed = 0
    deadline = time.monotonic() + seconds
    kept: list[bytes] = []
    while time.monotonic() < deadline:
        for _ in range(50):
            base = rng.choice(kept) if kept and rng.random() < 0.2 else rng.choice(pool)
            data = mutate(rng, base, pool)
            executed += 1
            try:
                harness.TestOneInput(data)
            except BaseException as exc:  # noqa: BLE001 - every failure is a finding
                if isinstance(exc, KeyboardInterrupt):
                    raise
                tb = traceback.extract_tb(exc.__traceback__)
                key = f"{type(exc).__name__} at {tb[-1].filename}:{tb[-1].lineno}" if tb else type(exc).__name__
                if key not in found:
                    path = work / f"crash-{hashlib.sha1(data).hexdigest()}"
                    path.write_bytes(data)
                    found[key] = path
                    print(f"fuzz {target}: FAILURE {key}: {str(exc)[:300]}\n  input: {path}", flush=True)
                continue
            if rng.random() < 0.01 and len(kept) < 1000:
                kept.append(data)
    print(f"fuzz {target}: {executed} inputs executed in {seconds} s (engine mutate, no coverage)")
    print(f"fuzz {target}: {len(found)} distinct failure(s)" if found else f"fuzz {target}: no crash")
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/fuzz", description="Fuzz one network decoder.")
    p.add_argument("target", choices=TARGETS)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto",
                   help="auto: atheris when installed, else the coverage-less mutation loop")
    p.add_argument("--seed", type=int, default=None, help="random seed of the mutate engine")
    args = p.parse_args(argv)
    engine = args.engine
    if engine in ("auto", "atheris"):
        try:
            import atheris  # noqa: F401
        except ImportError:
            if engine == "atheris":
                raise SystemExit("atheris is not installed (pip install -e '.[fuzz]')") from None
            print("fuzz: atheris is not installed here: falling back to the coverage-less mutation "
                  "engine (install the 'fuzz' extra for coverage-guided fuzzing)", flush=True)
            engine = "mutate"
        else:
            engine = "atheris"
    if engine == "atheris":
        return run_atheris(args.target, args.seconds)
    return run_mutate(args.target, args.seconds, args.seed)


if __name__ == "__main__":
    sys.exit(main())
