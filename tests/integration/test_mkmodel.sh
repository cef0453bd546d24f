#!/usr/bin/env bash
# test_mkmodel: proves the test model generator (tests/fixtures/mkmodel)
# writes what the conversion tests rely on. The checker below is written
# from the formats (safetensors, tokenizer.json, SentencePiece's protobuf),
# not from mkmodel: it does not import it. Checks: every shard's header and
# data layout, the index, the tensor names and shapes of each preset, the
# bf16 values, the tokenizers (with a BPE round trip), the configs (broken
# and correct), determinism (same seed: identical files; other seed: other
# weights, same tokenizer; shard and layer counts do not change a tensor's
# bytes) and the --dry-run plan for phi4-slice.
set -euo pipefail

: "${MB_SOURCE_DIR:?MB_SOURCE_DIR is not set}"
PY=${PYTHON:-python3}
MK="$MB_SOURCE_DIR/tests/fixtures/mkmodel"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mbtest-mkmodel-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

passed=0
fail() {
	echo "FAIL: $*" >&2
	echo "$passed passed, 1 failed" >&2
	exit 1
}

# gen NAME ARGS...: runs mkmodel into $TMP/NAME.
gen() {
	local name=$1
	shift
	"$PY" "$MK" --out "$TMP/$name" "$@" >"$TMP/$name.log" 2>&1 ||
		fail "mkmodel $* --out $TMP/$name failed: $(cat "$TMP/$name.log")"
	grep -q "^mkmodel: .*wrote" "$TMP/$name.log" ||
		fail "mkmodel $* printed no summary"
	passed=$((passed + 1))
}

# check WHAT ARGS...: runs the checker; it prints how many checks passed.
check() {
	local n
	n=$("$PY" "$TMP/check.py" "$@") || fail "check $*"
	passed=$((passed + n))
}

# refuse DESCRIPTION ARGS...: mkmodel must fail with a message on stderr.
refuse() {
	local what=$1 rc=0
	shift
	"$PY" "$MK" "$@" >/dev/null 2>"$TMP/refuse.err" || rc=$?
	[ "$rc" -ne 0 ] || fail "mkmodel accepted $what"
	grep -q "error" "$TMP/refuse.err" || fail "no error message for $what"
	passed=$((passed + 1))
}

cat >"$TMP/check.py" <<'PYEOF'
import hashlib
import json
import os
import re
import struct
import sys

count = 0


class Fail(Exception):
    pass


def check(cond, msg):
    global count
    if not cond:
        raise Fail(msg)
    count += 1


def load_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


# ---- safetensors

def read_shard(path):
    """Validates the layout; returns [(name, shape, begin, end)] in header
    order and the absolute offset of the data."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        check(len(head) == 8, "%s: shorter than 8 bytes" % path)
        (n,) = struct.unpack("<Q", head)
        check(0 < n <= size - 8, "%s: header length %d, file %d"
              % (path, n, size))
        check(n % 8 == 0, "%s: header length %d not a multiple of 8"
              % (path, n))
        raw = f.read(n)
    hdr = json.loads(raw.decode("utf-8"))
    check(isinstance(hdr, dict), "%s: header is not an object" % path)
    meta = hdr.pop("__metadata__", None)
    check(meta == {"format": "pt"}, "%s: __metadata__ %r" % (path, meta))
    out = []
    for name, t in hdr.items():
        check(isinstance(t, dict) and
              sorted(t) == ["data_offsets", "dtype", "shape"],
              "%s: %s: bad entry %r" % (path, name, t))
        check(t["dtype"] == "BF16", "%s: %s: dtype %s"
              % (path, name, t["dtype"]))
        shape, offs = t["shape"], t["data_offsets"]
        check(isinstance(shape, list) and shape and
              all(isinstance(d, int) and d > 0 for d in shape),
              "%s: %s: shape %r" % (path, name, shape))
        check(isinstance(offs, list) and len(offs) == 2 and
              all(isinstance(o, int) for o in offs),
              "%s: %s: data_offsets %r" % (path, name, offs))
        elems = 1
        for d in shape:
            elems *= d
        check(offs[1] - offs[0] == 2 * elems,
              "%s: %s: %d bytes for shape %r" % (path, name,
                                               offs[1] - offs[0], shape))
        out.append((name, shape, offs[0], offs[1]))
    check(out, "%s: no tensors" % path)
    pos = 0
    for name, _, b, e in sorted(out, key=lambda t: t[2]):
        check(b == pos, "%s: %s starts at %d, expected %d"
              % (path, name, b, pos))
        pos = e
    check([t[2] for t in out] == sorted(t[2] for t in out),
          "%s: data not in header order" % path)
    check(8 + n + pos == size, "%s: data ends at %d, file is %d bytes"
          % (path, 8 + n + pos, size))
    return out, 8 + n


def read_repo_tensors(d):
    """{name: (shape, shard file, bytes getter)} over all shards."""
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    tensors = {}
    for fn in files:
        path = os.path.join(d, fn)
        entries, base = read_shard(path)
        for name, shape, b, e in entries:
            check(name not in tensors, "%s: %s also in %s"
                  % (fn, name, name in tensors and tensors[name][1]))
            tensors[name] = (shape, fn, (path, base + b, e - b))
    return files, tensors


def tensor_bytes(ref):
    path, off, n = ref
    with open(path, "rb") as f:
        f.seek(off)
        b = f.read(n)
    check(len(b) == n, "%s: short read" % path)
    return b


def bf16(h):
    return struct.unpack("<f", struct.pack("<I", h << 16))[0]


# High bytes (sign + top 7 exponent bits) of bf16 values with |w| < 0.25:
# biased exponent <= 123, i.e. (hi & 0x7f) <= 0x3d. Finite follows.
SMALL_HI = bytes(b for b in range(256) if (b & 0x7F) <= 0x3D)
NEG_HI = bytes(range(0x80, 0x100))


def check_values(name, data, norm):
    hi = data[1::2]
    n = len(hi)
    if norm:
        # 0.5 <= w < 2, positive: high byte exactly 0x3f
        check(hi.count(b"\x3f") == n, "%s: norm weights not near 1" % name)
    else:
        bad = hi.translate(None, SMALL_HI)
        check(not bad, "%s: %d values with |w| >= 0.25 or not finite"
              % (name, len(bad)))
        neg = n - len(hi.translate(None, NEG_HI))
        check(0.4 < neg / n < 0.6, "%s: %d of %d negative" % (name, neg, n))
    k = min(n, 4096)
    vals = [bf16(h) for h in struct.unpack("<%dH" % k, data[:2 * k])]
    mean = sum(abs(v) for v in vals) / k
    if norm:
        check(0.9 < mean < 1.1, "%s: mean %g, expected near 1" % (name, mean))
    else:
        check(0.004 < mean < 0.06, "%s: mean |w| %g" % (name, mean))
        check(len(set(vals)) > k // 8, "%s: few distinct values" % name)


# ---- tokenizers

def bytes_to_unicode():
    bs = (list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) +
          list(range(0xAE, 0x100)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


CL100K = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
          r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PHI4_PRE = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": CL100K}, "behavior": "Removed",
     "invert": True},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
     "use_regex": False}]}
SAMPLE = ("The model was trained on a large amount of text, and the "
          "tensors had 40 layers. It's a café!")


def bpe_encode(word, ranks):
    syms = list(word)
    while len(syms) > 1:
        best = None
        for i in range(len(syms) - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        syms[i:i + 2] = [syms[i] + syms[i + 1]]
    return syms


def check_bpe(d, merges_style):
    tok = load_json(os.path.join(d, "tokenizer.json"))
    model = tok["model"]
    check(model["type"] == "BPE", "model type %s" % model["type"])
    vocab = model["vocab"]
    check(sorted(vocab.values()) == list(range(len(vocab))),
          "vocab ids are not 0..n-1")
    b2u = bytes_to_unicode()
    check(sorted(vocab[b2u[b]] for b in range(256)) == list(range(256)),
          "ids 0..255 are not the 256 byte tokens")
    merges = model["merges"]
    check(len(merges) > 200, "%d merges" % len(merges))
    if merges_style == "pairs":
        check(all(isinstance(m, list) and len(m) == 2 and
                  all(isinstance(s, str) for s in m) for m in merges),
              "merges are not [a, b] pairs")
        pairs = [tuple(m) for m in merges]
    else:
        check(all(isinstance(m, str) and m.count(" ") == 1
                  for m in merges), 'merges are not "a b" strings')
        pairs = [tuple(m.split(" ")) for m in merges]
    check(all(a in vocab and b in vocab and a + b in vocab
              for a, b in pairs), "a merge uses or makes a non-token")
    check(len(set(pairs)) == len(pairs), "duplicate merges")
    ranks = {p: i for i, p in enumerate(pairs)}
    # round trip through the merges: every piece is a token, the bytes
    # come back, and the merges compress
    u2b = {c: b for b, c in b2u.items()}
    pieces = []
    for word in re.findall(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|\s+", SAMPLE):
        pieces += bpe_encode([b2u[b] for b in word.encode("utf-8")], ranks)
    check(all(p in vocab for p in pieces), "an encoded piece is no token")
    back = bytes(u2b[c] for p in pieces for c in p).decode("utf-8")
    check(back == SAMPLE, "round trip gave %r" % back)
    nbytes = len(SAMPLE.encode("utf-8"))
    check(len(pieces) < nbytes // 2, "%d tokens for %d bytes"
          % (len(pieces), nbytes))
    added = tok["added_tokens"]
    ids = [a["id"] for a in added]
    check(ids == list(range(len(vocab), len(vocab) + len(added))),
          "added token ids %r do not follow the vocab" % ids)
    by = {a["content"]: a for a in added}
    for s in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        check(s in by and by[s]["special"] is True, "special %s missing" % s)
        check(s not in vocab, "%s also in the vocab" % s)
    check(any(a["special"] is False for a in added), "no non-special token")
    for s in ("<s>", "</s>", "<unk>"):
        check(s not in vocab and s not in by,
              "%s present (the Phi-3 special case must fail)" % s)
    check(tok["pre_tokenizer"] == PHI4_PRE,
          "pre_tokenizer is not Phi-4's: %r" % tok["pre_tokenizer"])
    check(tok["decoder"]["type"] == "ByteLevel", "decoder")
    check(tok["normalizer"] is None, "normalizer")
    check(tok["post_processor"] is None or
          tok["post_processor"]["type"] == "ByteLevel", "post_processor")
    tc = load_json(os.path.join(d, "tokenizer_config.json"))
    check(tc["tokenizer_class"] == "GPT2Tokenizer", "tokenizer_class")
    for k in ("bos_token", "eos_token", "pad_token"):
        check(tc[k] in by, "%s %r is not an added token" % (k, tc[k]))
    dec = tc["added_tokens_decoder"]
    check({int(i): (e["content"], e["special"]) for i, e in dec.items()} ==
          {a["id"]: (a["content"], a["special"]) for a in added},
          "added_tokens_decoder differs from tokenizer.json")
    check("<|im_start|>" in tc["chat_template"] and
          "<|im_end|>" in tc["chat_template"], "chat_template not ChatML")
    check(isinstance(tc["model_max_length"], int), "model_max_length")
    stm = load_json(os.path.join(d, "special_tokens_map.json"))
    check(stm["eos_token"]["content"] == tc["eos_token"], "special map")
    ntok = len(vocab) + len(added)
    return ntok, {k: by[tc[k]]["id"] for k in ("bos_token", "eos_token",
                                               "pad_token")}, merges


def pb_fields(buf):
    """A minimal protobuf reader: [(field, wire, value)]."""
    out, i = [], 0

    def varint():
        nonlocal i
        v = s = 0
        while True:
            check(i < len(buf), "protobuf: truncated varint")
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << s
            s += 7
            if not b & 0x80:
                return v
    while i < len(buf):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            v = varint()
            if v >= 1 << 63:
                v -= 1 << 64
        elif wire == 1:
            v = buf[i:i + 8]
            i += 8
        elif wire == 2:
            n = varint()
            v = buf[i:i + n]
            check(len(v) == n, "protobuf: truncated bytes")
            i += n
        elif wire == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise Fail("protobuf: wire type %d" % wire)
        out.append((field, wire, v))
    return out


def check_spm(d):
    check(not os.path.exists(os.path.join(d, "tokenizer.json")),
          "llama-tiny has a tokenizer.json")
    with open(os.path.join(d, "tokenizer.model"), "rb") as f:
        top = pb_fields(f.read())
    pieces, trainer, norm = [], None, None
    for field, wire, v in top:
        if field == 1:
            p = {1: None, 2: 0.0, 3: 1}
            for f2, w2, v2 in pb_fields(v):
                if f2 == 1:
                    p[1] = v2.decode("utf-8")
                elif f2 == 2:
                    check(w2 == 5, "score is not a float")
                    p[2] = struct.unpack("<f", v2)[0]
                elif f2 == 3:
                    p[3] = v2
            pieces.append((p[1], p[2], p[3]))
        elif field == 2:
            trainer = {f2: v2 for f2, _, v2 in pb_fields(v)}
        elif field == 3:
            norm = {f2: v2 for f2, _, v2 in pb_fields(v)}
    check(pieces[:3] == [("<unk>", 0.0, 2), ("<s>", 0.0, 3),
                         ("</s>", 0.0, 3)], "first pieces %r" % pieces[:3])
    check([(p, t) for p, _, t in pieces[3:259]] ==
          [("<0x%02X>" % b, 6) for b in range(256)], "byte pieces")
    rest = pieces[259:]
    check(len(rest) > 200, "%d learned pieces" % len(rest))
    check(all(t == 1 for _, _, t in rest), "learned pieces not NORMAL")
    scores = [s for _, s, _ in rest]
    check(all(a > b for a, b in zip(scores, scores[1:])),
          "scores not strictly descending")
    names = [p for p, _, _ in pieces]
    check(len(set(names)) == len(names), "duplicate pieces")
    check("\u2581" in names and "\u2581the" in names, "no \u2581 pieces")
    check(trainer is not None and trainer.get(3) == 2, "model_type not BPE")
    check(trainer.get(4) == len(pieces), "trainer vocab_size %r"
          % trainer.get(4))
    check(trainer.get(35) == 1, "byte_fallback not set")
    check((trainer.get(40, 0), trainer.get(41, 1), trainer.get(42, 2)) ==
          (0, 1, 2), "unk/bos/eos ids")
    check(norm is not None and norm.get(1) == b"identity" and
          norm.get(3, 1) == 1, "normalizer spec %r" % norm)
    # SentencePiece BPE: merge the adjacent pair whose join is the best
    # scoring piece; the sample must come out in few, known pieces.
    score = {p: s for p, s, t in pieces if t == 1}
    syms = list("\u2581" + "the model was trained".replace(" ", "\u2581"))
    while True:
        best = None
        for i in range(len(syms) - 1):
            s = score.get(syms[i] + syms[i + 1])
            if s is not None and (best is None or s > best[0]):
                best = (s, i)
        if best is None:
            break
        i = best[1]
        syms[i:i + 2] = [syms[i] + syms[i + 1]]
    check(all(s in score for s in syms) and len(syms) <= 8,
          "spm encoding %r" % syms)
    tc = load_json(os.path.join(d, "tokenizer_config.json"))
    check(tc["tokenizer_class"] == "LlamaTokenizer", "tokenizer_class")
    check(tc["add_bos_token"] is True, "add_bos_token")
    check((tc["bos_token"], tc["eos_token"]) == ("<s>", "</s>"), "bos/eos")
    check("chat_template" in tc, "no chat_template")
    return len(pieces)


# ---- repos

def expect_shapes(preset, layers, V):
    if preset == "phi4-tiny":
        h, kv, ff = 512, 128, 1792
    else:
        h, kv, ff = 256, 128, 688
    e = {"model.embed_tokens.weight": [V, h], "model.norm.weight": [h],
         "lm_head.weight": [V, h]}
    for i in range(layers):
        p = "model.layers.%d." % i
        e[p + "input_layernorm.weight"] = [h]
        e[p + "post_attention_layernorm.weight"] = [h]
        e[p + "self_attn.o_proj.weight"] = [h, h]
        e[p + "mlp.down_proj.weight"] = [h, ff]
        if preset == "phi4-tiny":
            e[p + "self_attn.qkv_proj.weight"] = [h + 2 * kv, h]
            e[p + "mlp.gate_up_proj.weight"] = [2 * ff, h]
        else:
            e[p + "self_attn.q_proj.weight"] = [h, h]
            e[p + "self_attn.k_proj.weight"] = [kv, h]
            e[p + "self_attn.v_proj.weight"] = [kv, h]
            e[p + "mlp.gate_proj.weight"] = [ff, h]
            e[p + "mlp.up_proj.weight"] = [ff, h]
    return e


def cmd_repo(d, preset, config, merges_style, layers, nshards):
    layers, nshards = int(layers), int(nshards)
    files, tensors = read_repo_tensors(d)
    if nshards == 1:
        check(files == ["model.safetensors"], "files %r" % files)
        check(not os.path.exists(os.path.join(d,
                                              "model.safetensors.index.json")),
              "index with one shard")
    else:
        want = ["model-%05d-of-%05d.safetensors" % (k + 1, nshards)
                for k in range(nshards)]
        check(files == want, "shard files %r" % files)
        idx = load_json(os.path.join(d, "model.safetensors.index.json"))
        wm = idx["weight_map"]
        check(set(wm) == set(tensors), "index names differ from the shards")
        check(all(wm[n] == tensors[n][1] for n in tensors),
              "index maps a tensor to the wrong shard")
        check(set(wm.values()) == set(files), "a shard is not indexed")
        total = sum(t[2][2] for t in tensors.values())
        check(idx["metadata"]["total_size"] == total, "total_size %r, "
              "tensors %d" % (idx["metadata"]["total_size"], total))
    V = tensors["model.embed_tokens.weight"][0][0]
    want = expect_shapes(preset, layers, V)
    check(sorted(tensors) == sorted(want), "tensor names: extra %r, "
          "missing %r" % (sorted(set(tensors) - set(want)),
                          sorted(set(want) - set(tensors))))
    for name, shape in want.items():
        check(tensors[name][0] == shape, "%s: shape %r, expected %r"
              % (name, tensors[name][0], shape))
    for name, (shape, _, ref) in tensors.items():
        check_values(name, tensor_bytes(ref), len(shape) == 1)
    cfg = load_json(os.path.join(d, "config.json"))
    card = open(os.path.join(d, "README.md"), encoding="utf-8").read()
    check(card.startswith("---\n") and "\n---\n" in card[4:],
          "model card has no front matter")
    front = card[4:card.index("\n---\n", 4)].split("\n")
    check("library_name: transformers" in front, "library_name")
    load_json(os.path.join(d, "generation_config.json"))
    if preset == "phi4-tiny":
        ntok, special, _ = check_bpe(d, merges_style)
        check(V > ntok, "embedding rows %d not above %d tokens" % (V, ntok))
        check("base_model: microsoft/phi-4" in front, "base_model")
        if config == "broken":
            check(cfg["architectures"] == ["PhiForCausalLM"] and
                  cfg["model_type"] == "phi", "broken config is not Phi-2")
            check(cfg["num_hidden_layers"] == 32 != layers,
                  "num_hidden_layers %r" % cfg["num_hidden_layers"])
            check(cfg["hidden_size"] == 4096 and cfg["vocab_size"] == 50257,
                  "broken sizes")
            check("partial_rotary_factor" in cfg, "no partial_rotary_factor")
        else:
            want_cfg = {
                "architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
                "hidden_size": 512, "num_hidden_layers": layers,
                "num_attention_heads": 4, "num_key_value_heads": 1,
                "intermediate_size": 1792, "vocab_size": V,
                "rope_theta": 250000, "rms_norm_eps": 1e-5,
                "max_position_embeddings": 16384,
                "original_max_position_embeddings": 16384,
                "sliding_window": None, "tie_word_embeddings": False,
                "torch_dtype": "bfloat16",
                "bos_token_id": special["bos_token"],
                "eos_token_id": special["eos_token"],
                "pad_token_id": special["pad_token"]}
            for k, v in want_cfg.items():
                check(k in cfg and cfg[k] == v, "config %s: %r, expected %r"
                      % (k, cfg.get(k, "(absent)"), v))
    else:
        npieces = check_spm(d)
        check(V >= npieces, "embedding rows %d below %d pieces"
              % (V, npieces))
        if config == "broken":
            check(cfg["num_hidden_layers"] != layers and
                  cfg["hidden_size"] != 256, "broken llama config matches")
        else:
            want_cfg = {
                "architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": 256, "num_hidden_layers": layers,
                "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 688, "vocab_size": V,
                "rope_theta": 10000, "rms_norm_eps": 1e-5,
                "max_position_embeddings": 2048,
                "tie_word_embeddings": False, "bos_token_id": 1,
                "eos_token_id": 2}
            for k, v in want_cfg.items():
                check(k in cfg and cfg[k] == v, "config %s: %r, expected %r"
                      % (k, cfg.get(k, "(absent)"), v))


def sha_map(d):
    out = {}
    for fn in sorted(os.listdir(d)):
        with open(os.path.join(d, fn), "rb") as f:
            out[fn] = hashlib.sha256(f.read()).hexdigest()
    return out


def cmd_same(a, b):
    ha, hb = sha_map(a), sha_map(b)
    check(sorted(ha) == sorted(hb), "file lists differ")
    for fn in ha:
        check(ha[fn] == hb[fn], "%s differs between identical runs" % fn)


def cmd_seeds(a, b):
    ha, hb = sha_map(a), sha_map(b)
    check(sorted(ha) == sorted(hb), "file lists differ")
    for fn in ha:
        if fn.endswith(".safetensors"):
            check(ha[fn] != hb[fn], "%s same under another seed" % fn)
        elif fn != "model.safetensors.index.json":
            check(ha[fn] == hb[fn], "%s changed with the seed" % fn)
    _, ta = read_repo_tensors(a)
    _, tb = read_repo_tensors(b)
    for name in ta:
        check(tensor_bytes(ta[name][2]) != tensor_bytes(tb[name][2]),
              "%s same under another seed" % name)


def cmd_tensors(a, b):
    """Every tensor of b has the same bytes in a."""
    _, ta = read_repo_tensors(a)
    _, tb = read_repo_tensors(b)
    for name in tb:
        check(name in ta and ta[name][0] == tb[name][0] and
              tensor_bytes(ta[name][2]) == tensor_bytes(tb[name][2]),
              "%s differs between %s and %s" % (name, a, b))


def cmd_merges(a, b):
    ma = load_json(os.path.join(a, "tokenizer.json"))["model"]["merges"]
    mb = load_json(os.path.join(b, "tokenizer.json"))["model"]["merges"]
    check([m.split(" ") for m in ma] == mb, "pairs differ from strings")


def cmd_plan(plan_path, d):
    plan = load_json(plan_path)
    _, tensors = read_repo_tensors(d)
    got = {t["name"]: (t["shape"], t["shard"]) for t in plan["tensors"]}
    check(got == {n: (t[0], t[1]) for n, t in tensors.items()},
          "dry-run plan differs from the written repo")
    check(plan["total_size"] == sum(t[2][2] for t in tensors.values()),
          "dry-run total_size")


def cmd_slice(plan_path):
    plan = load_json(plan_path)
    total = plan["total_size"]
    check(3.3e9 < total < 3.5e9, "phi4-slice total %d" % total)
    shapes = {t["name"]: t["shape"] for t in plan["tensors"]}
    check(len(shapes) == 3 + 2 * 6, "%d tensors" % len(shapes))
    for name, shape in (
            ("model.embed_tokens.weight", [100352, 5120]),
            ("lm_head.weight", [100352, 5120]),
            ("model.layers.1.self_attn.qkv_proj.weight", [7680, 5120]),
            ("model.layers.1.self_attn.o_proj.weight", [5120, 5120]),
            ("model.layers.1.mlp.gate_up_proj.weight", [35840, 5120]),
            ("model.layers.1.mlp.down_proj.weight", [5120, 17920]),
            ("model.norm.weight", [5120])):
        check(shapes.get(name) == shape, "%s: %r" % (name, shapes.get(name)))
    check(sum(t["bytes"] for t in plan["tensors"]) == total, "bytes sum")
    shards = {}
    for t in plan["tensors"]:
        shards[t["shard"]] = shards.get(t["shard"], 0) + t["bytes"]
    check(sorted(shards) == ["model-00001-of-00002.safetensors",
                             "model-00002-of-00002.safetensors"],
          "shards %r" % sorted(shards))
    check(all(s <= 2 * 10**9 for s in shards.values()), "a shard > 2 GB")


def main(argv):
    cmds = {"repo": cmd_repo, "same": cmd_same, "seeds": cmd_seeds,
            "tensors": cmd_tensors, "merges": cmd_merges, "plan": cmd_plan,
            "slice": cmd_slice}
    try:
        cmds[argv[0]](*argv[1:])
    except Fail as e:
        print("check %s: %s" % (" ".join(argv), e), file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        print("check %s: %s: %s" % (" ".join(argv), type(e).__name__, e),
              file=sys.stderr)
        return 1
    print(count)
    return 0


sys.exit(main(sys.argv[1:]))
PYEOF

start=$(date +%s)

# phi4-tiny: the broken config by default, both configs, the knobs
gen p-broken --preset phi4-tiny
check repo "$TMP/p-broken" phi4-tiny broken strings 3 2
gen p-correct --preset phi4-tiny --config correct
check repo "$TMP/p-correct" phi4-tiny correct strings 3 2
gen p-pairs --preset phi4-tiny --config correct --merges pairs
check repo "$TMP/p-pairs" phi4-tiny correct pairs 3 2
check merges "$TMP/p-correct" "$TMP/p-pairs"
gen p-one --preset phi4-tiny --shards 1
check repo "$TMP/p-one" phi4-tiny broken strings 3 1
gen p-three --preset phi4-tiny --shards 3
check repo "$TMP/p-three" phi4-tiny broken strings 3 3
gen p-l2 --preset phi4-tiny --layers 2 --config correct
check repo "$TMP/p-l2" phi4-tiny correct strings 2 2

# llama-tiny
gen l-correct --preset llama-tiny
check repo "$TMP/l-correct" llama-tiny correct strings 2 2
gen l-broken --preset llama-tiny --config broken
check repo "$TMP/l-broken" llama-tiny broken strings 2 2

# determinism: same arguments, same bytes; a tensor's bytes depend on the
# seed and its name only
gen p-again --preset phi4-tiny
check same "$TMP/p-broken" "$TMP/p-again"
gen l-again --preset llama-tiny
check same "$TMP/l-correct" "$TMP/l-again"
gen p-seed --preset phi4-tiny --seed 2
check seeds "$TMP/p-broken" "$TMP/p-seed"
gen l-seed --preset llama-tiny --seed 7
check seeds "$TMP/l-correct" "$TMP/l-seed"
check tensors "$TMP/p-broken" "$TMP/p-one"
check tensors "$TMP/p-broken" "$TMP/p-three"
check tensors "$TMP/p-broken" "$TMP/p-l2"
check tensors "$TMP/p-broken" "$TMP/p-correct"

# --dry-run: the plan is what gets written; phi4-slice has Phi-4's shapes
"$PY" "$MK" --preset phi4-tiny --dry-run >"$TMP/plan-p.json" ||
	fail "phi4-tiny --dry-run"
check plan "$TMP/plan-p.json" "$TMP/p-broken"
"$PY" "$MK" --preset llama-tiny --shards 1 --dry-run >"$TMP/plan-l.json" ||
	fail "llama-tiny --dry-run"
"$PY" "$MK" --preset llama-tiny --shards 1 --out "$TMP/l-one" >/dev/null ||
	fail "llama-tiny --shards 1"
check plan "$TMP/plan-l.json" "$TMP/l-one"
"$PY" "$MK" --preset phi4-slice --layers 2 --dry-run >"$TMP/plan-s.json" ||
	fail "phi4-slice --dry-run"
check slice "$TMP/plan-s.json"

# errors: a message and a non-zero exit, nothing half done
refuse "an unknown preset" --preset phi5 --out "$TMP/x1"
refuse "a non-empty --out" --preset phi4-tiny --out "$TMP/p-broken"
refuse "--shards 0" --preset phi4-tiny --shards 0 --out "$TMP/x2"
refuse "more shards than tensors" --preset llama-tiny --shards 50 \
	--out "$TMP/x3"
[ ! -e "$TMP/x3" ] || fail "a refused run left $TMP/x3 behind"
passed=$((passed + 1))

echo "mkmodel checks took $(($(date +%s) - start)) s"
echo "$passed passed, 0 failed"
