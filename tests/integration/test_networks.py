"""LoRA, textual inversion and hypernetworks on the tiny real-layout checkpoints.

Every network must change the image, strength 0 must give the base image, and leaving the
``applied_networks`` block must give the base image back bit-exactly. Bad files become notes.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.kit.networks import (
    kohya_lora_state_dict,
    random_vectors,
    write_a1111_embedding,
    write_hypernetwork,
    write_kohya_lora,
    write_malicious_pickle,
    write_safetensors_embedding,
    write_sdxl_embedding,
)
from webui.models.hashes import HashCache
from webui.models.load import load_checkpoint
from webui.networks.apply import applied_networks
from webui.networks.catalog import NetworkCatalog, default_folders


@dataclass(frozen=True)
class Ref:
    kind: str
    name: str
    args: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def sd15(checkpoint_store):
    return load_checkpoint(checkpoint_store("sd15"))


@pytest.fixture(scope="module")
def sdxl(checkpoint_store):
    return load_checkpoint(checkpoint_store("sdxl-base"))


@pytest.fixture
def env(tmp_path):
    folders = default_folders(tmp_path)
    for paths in folders.values():
        for p in paths:
            p.mkdir(parents=True, exist_ok=True)
    hashes = HashCache(tmp_path / "cache.json")
    return tmp_path, folders, hashes


def catalog_of(env) -> NetworkCatalog:
    _, folders, hashes = env
    return NetworkCatalog(folders, hashes)


def image(pipe, prompt: str = "a photo of a cat", negative: str | None = None) -> np.ndarray:
    return pipe(prompt, negative_prompt=negative, num_inference_steps=2, height=64, width=64,
                generator=torch.Generator().manual_seed(0), output_type="np").images[0]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def addnet(path: Path) -> str:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + n:]).hexdigest()[:12]


def use(pipe, spec, refs, texts, env):
    root, _, hashes = env
    return applied_networks(pipe, spec, refs, texts, catalog_of(env), hashes)


# --- catalog -----------------------------------------------------------------------------------

def test_catalog_lists_thousands_instantly_and_finds_previews(tmp_path):
    lora_dir = tmp_path / "models" / "Lora"
    sub = lora_dir / "styles" / "deep"
    sub.mkdir(parents=True)
    for i in range(2000):
        (lora_dir / f"net{i:04d}.safetensors").touch()
    (sub / "Nested.safetensors").touch()
    (sub / "Nested.preview.png").touch()
    (lora_dir / "net0001.png").touch()
    (lora_dir / "notes.txt").touch()
    (lora_dir / ".hidden.safetensors").touch()
    emb_root = tmp_path / "embeddings"
    emb_root.mkdir()
    (emb_root / "badhands.pt").touch()
    (emb_root / "badhands.jpg").touch()
    models_emb = tmp_path / "models" / "embeddings"
    models_emb.mkdir(parents=True)
    (models_emb / "Style.bin").touch()
    hyper = tmp_path / "models" / "hypernetworks"
    hyper.mkdir()
    (hyper / "anime.pt").touch()

    start = time.perf_counter()
    catalog = NetworkCatalog(default_folders(tmp_path), HashCache(tmp_path / "cache.json"))
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, elapsed

    loras = catalog.list("lora")
    assert len(loras) == 2001
    # sorted case-insensitively: "Nested" before "net0000" ("s" < "t"), not first because of "N" < "n"
    assert [f.name for f in loras[:3]] == ["Nested", "net0000", "net0001"]
    assert loras[-1].name == "net1999"
    assert catalog.find("lora", "net0001").preview == lora_dir / "net0001.png"
    assert catalog.find("lora", "net0002").preview is None
    nested = catalog.find("lora", "nested")  # case-insensitive fallback
    assert nested is not None and nested.preview == sub / "Nested.preview.png"
    assert [f.name for f in catalog.list("embedding")] == ["badhands", "Style"]
    assert catalog.find("embedding", "badhands").preview == emb_root / "badhands.jpg"
    assert catalog.find("hypernetwork", "anime").kind == "hypernetwork"
    assert catalog.find("lora", "missing") is None

    (lora_dir / "late.safetensors").touch()
    assert catalog.find("lora", "late") is None
    catalog.refresh("lora")
    assert catalog.find("lora", "late") is not None


# --- LoRA --------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_lora_changes_image_weight_zero_and_removal_are_exact(family, request, env):
    model = request.getfixturevalue(family)
    pipe, spec = model.pipe, model.spec
    root, folders, _ = env
    path = write_kohya_lora(folders["lora"][0] / "style.safetensors", pipe, seed=1)
    if family == "sdxl":
        assert any(k.startswith("lora_unet_input_blocks_") for k in kohya_lora_state_dict(pipe))
        assert any(k.startswith("lora_te2_text_model_encoder_layers_") for k in kohya_lora_state_dict(pipe))
    base = image(pipe)

    with use(pipe, spec, [Ref("lora", "style", ("1",))], ["<lora:style:1> a photo of a cat"], env) as nets:
        changed = image(pipe)
        assert nets.notes == []
        assert nets.infotext == {"Lora hashes": f"style: {addnet(path)}"}
    assert not same(changed, base)
    assert same(image(pipe), base)

    with use(pipe, spec, [Ref("lora", "style", ("0",))], [""], env):
        assert same(image(pipe), base)
    with use(pipe, spec, [Ref("lora", "style", ("0", "1"))], [""], env):
        unet_only = image(pipe)
    with use(pipe, spec, [Ref("lora", "style", ("te=1", "unet=0"))], [""], env):
        te_only = image(pipe)
    assert not same(unet_only, base) and not same(te_only, base) and not same(unet_only, te_only)
    assert same(image(pipe), base)


def test_lora_text_encoder_weights_are_the_files(sd15, env):
    """The LoRA really reaches the (transformers 5, flattened) CLIP: delta = up·down·alpha/rank·w."""
    pipe = sd15.pipe
    _, folders, _ = env
    write_kohya_lora(folders["lora"][0] / "te.safetensors", pipe, seed=2, rank=4, alpha=2)
    state = kohya_lora_state_dict(pipe, seed=2, rank=4, alpha=2)
    key = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    x = torch.randn(1, 3, pipe.text_encoder.config.hidden_size, generator=torch.Generator().manual_seed(0))
    q = pipe.text_encoder.encoder.layers[0].self_attn.q_proj
    with torch.no_grad():
        before = q(x)
        with use(pipe, sd15.spec, [Ref("lora", "te", ("0.5", "1"))], [""], env):
            q_now = pipe.text_encoder.encoder.layers[0].self_attn.q_proj
            after = q_now(x)
    delta = state[f"{key}.lora_up.weight"] @ state[f"{key}.lora_down.weight"] * (2 / 4) * 0.5
    torch.testing.assert_close(after - before, x @ delta.T, rtol=1e-4, atol=1e-5)


def test_locon_conv_layers_apply(sd15, env):
    pipe = sd15.pipe
    _, folders, _ = env
    write_kohya_lora(folders["lora"][1] / "locon.safetensors", pipe, seed=3, conv=True, text_encoder=False)
    base = image(pipe)
    with use(pipe, sd15.spec, [Ref("lyco", "locon")], [""], env) as nets:
        assert nets.notes == []
        assert any("conv1" in n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A"))
        changed = image(pipe)
    assert not same(changed, base)
    assert same(image(pipe), base)


# --- textual inversion -------------------------------------------------------------------------

def test_embedding_sd1_formats_expand_and_restore(sd15, env):
    pipe = sd15.pipe
    root, folders, hashes = env
    width = pipe.text_encoder.get_input_embeddings().embedding_dim
    vectors = random_vectors(3, width, seed=4, scale=2.0)
    pt = write_a1111_embedding(folders["embedding"][1] / "MyStyle.pt", vectors)
    write_safetensors_embedding(folders["embedding"][0] / "other.safetensors", random_vectors(1, width, seed=5, scale=2.0))
    torch.save({"<thing>": random_vectors(1, width, seed=6, scale=2.0)[0]}, folders["embedding"][0] / "thing.bin")
    tok_len = len(pipe.tokenizer)
    emb_module = pipe.text_encoder.get_input_embeddings()
    prompt = "a photo of mystyle, other and thing"
    base = image(pipe, prompt)

    with use(pipe, sd15.spec, [], [prompt, "not a match: mystyles"], env) as nets:
        assert nets.notes == []
        expanded = nets.expand(prompt)
        assert "mystyle" not in expanded and "other" not in expanded
        ids = pipe.tokenizer(expanded, add_special_tokens=False)["input_ids"]
        added = [i for i in ids if i in nets.embedding_token_ids]
        assert len(added) == 5 and all(i >= tok_len for i in added)
        assert len(nets.embedding_token_ids) == 5
        # the first three added ids carry MyStyle's vectors, in order
        weight = pipe.text_encoder.get_input_embeddings().weight
        torch.testing.assert_close(weight[added[:3]], vectors)
        assert nets.infotext == {"TI hashes": ", ".join(
            f"{n}: {hashlib.sha256(p.read_bytes()).hexdigest()[:12]}"
            for n, p in [("MyStyle", pt), ("other", folders["embedding"][0] / "other.safetensors"),
                         ("thing", folders["embedding"][0] / "thing.bin")]
        )}
        changed = image(pipe, expanded)
    assert not same(changed, base)
    assert len(pipe.tokenizer) == tok_len
    assert pipe.text_encoder.get_input_embeddings() is emb_module
    assert pipe.text_encoder.config.vocab_size == tok_len
    assert same(image(pipe, prompt), base)

    # only embeddings named as whole words are loaded
    with use(pipe, sd15.spec, [], ["mystyles otherwise"], env) as nets:
        assert nets.infotext == {} and nets.embedding_token_ids == frozenset()


def test_embedding_sdxl_clip_l_clip_g_and_wrong_width_skipped(sdxl, env):
    pipe = sdxl.pipe
    _, folders, _ = env
    w1 = pipe.text_encoder.get_input_embeddings().embedding_dim
    w2 = pipe.text_encoder_2.get_input_embeddings().embedding_dim
    assert w1 != w2
    write_sdxl_embedding(folders["embedding"][0] / "xlstyle.safetensors",
                         random_vectors(2, w1, seed=7, scale=2.0), random_vectors(2, w2, seed=8, scale=2.0))
    write_a1111_embedding(folders["embedding"][0] / "sd1style.pt", random_vectors(2, w1, seed=9))
    lens = len(pipe.tokenizer), len(pipe.tokenizer_2)
    modules = pipe.text_encoder.get_input_embeddings(), pipe.text_encoder_2.get_input_embeddings()
    prompt = "xlstyle, sd1style, a house"
    base = image(pipe, prompt)
    with use(pipe, sdxl.spec, [], [prompt], env) as nets:
        assert len(nets.notes) == 1 and "sd1style" in nets.notes[0] and "single-text-encoder" in nets.notes[0]
        assert list(nets.infotext) == ["TI hashes"] and nets.infotext["TI hashes"].startswith("xlstyle: ")
        expanded = nets.expand(prompt)
        assert "sd1style" in expanded  # skipped: left as plain words
        for tok in (pipe.tokenizer, pipe.tokenizer_2):
            ids = tok(expanded, add_special_tokens=False)["input_ids"]
            assert sum(i in nets.embedding_token_ids for i in ids) == 2
        changed = image(pipe, expanded)
    assert not same(changed, base)
    assert (len(pipe.tokenizer), len(pipe.tokenizer_2)) == lens
    assert (pipe.text_encoder.get_input_embeddings(), pipe.text_encoder_2.get_input_embeddings()) == modules
    assert same(image(pipe, prompt), base)


def test_sdxl_embedding_on_sd1_is_skipped(sd15, env):
    _, folders, _ = env
    write_sdxl_embedding(folders["embedding"][0] / "xl.safetensors", random_vectors(1, 64, seed=1), random_vectors(1, 128, seed=2))
    write_a1111_embedding(folders["embedding"][0] / "wide.pt", random_vectors(1, 768, seed=1))
    with use(sd15.pipe, sd15.spec, [], ["xl wide"], env) as nets:
        assert nets.infotext == {}
        text = " | ".join(nets.notes)
        assert "xl" in text and "SDXL" in text and "wide" in text and "768" in text


# --- hypernetworks -----------------------------------------------------------------------------

def test_hypernetwork_changes_image_zero_and_restore(sd15, env):
    pipe = sd15.pipe
    _, folders, _ = env
    # 32: self-attention at level 0, 64: cross-attention context (and the 64-wide mid block)
    write_hypernetwork(folders["hypernetwork"][0] / "anime.pt", dims=(32, 64), layer_structure=(1, 2, 1),
                       activation="relu", seed=1, layer_norm=True)
    write_hypernetwork(folders["hypernetwork"][0] / "mish.pt", dims=(64,), layer_structure=(1, 1.5, 1),
                       activation="mish", seed=2, use_dropout=True, activate_output=True)
    processors = dict(pipe.unet.attn_processors)
    base = image(pipe)
    with use(pipe, sd15.spec, [Ref("hypernet", "anime", ("1",))], [""], env) as nets:
        assert nets.notes == [] and nets.infotext == {}
        changed = image(pipe)
    assert not same(changed, base)
    assert all(pipe.unet.attn_processors[k] is v for k, v in processors.items())
    assert same(image(pipe), base)
    with use(pipe, sd15.spec, [Ref("hypernet", "anime", ("0",))], [""], env):
        assert same(image(pipe), base)
    with use(pipe, sd15.spec, [Ref("hypernet", "anime", ("0.5",)), Ref("hypernet", "mish")], [""], env) as nets:
        assert nets.notes == [] and nets.hypernetworks == ["anime", "mish"]
        chained = image(pipe)
    assert not same(chained, base) and not same(chained, changed)
    assert same(image(pipe), base)
    # a 32-wide module only matches level-0 self-attention (the text context is 64): it still acts
    write_hypernetwork(folders["hypernetwork"][0] / "selfonly.pt", dims=(32,), seed=3)
    with use(pipe, sd15.spec, [Ref("hypernet", "selfonly")], [""], env):
        assert not same(image(pipe), base)
    assert same(image(pipe), base)


# --- together, and failures --------------------------------------------------------------------

def test_two_loras_hypernet_and_embedding_together(sd15, env):
    pipe = sd15.pipe
    _, folders, _ = env
    a = write_kohya_lora(folders["lora"][0] / "alpha.safetensors", pipe, seed=11)
    b = write_kohya_lora(folders["lora"][0] / "sub" / "beta.safetensors", pipe, seed=12, text_encoder=False)
    write_hypernetwork(folders["hypernetwork"][0] / "hn.pt", dims=(32, 64), seed=13)
    emb = write_a1111_embedding(folders["embedding"][0] / "emb.pt", random_vectors(2, 64, seed=14, scale=2.0))
    prompt = "emb, a cat"
    negative = "blurry"
    refs = [Ref("lora", "alpha", ("0.8",)), Ref("lora", "beta", ("1", "0.6")), Ref("hypernet", "hn", ("0.7",))]
    base = image(pipe, prompt, negative)
    with use(pipe, sd15.spec, refs, [prompt, negative], env) as nets:
        assert nets.notes == []
        assert nets.loras == ["alpha", "beta"] and nets.embeddings == ["emb"] and nets.hypernetworks == ["hn"]
        assert nets.infotext == {
            "Lora hashes": f"alpha: {addnet(a)}, beta: {addnet(b)}",
            "TI hashes": f"emb: {hashlib.sha256(emb.read_bytes()).hexdigest()[:12]}",
        }
        both = image(pipe, nets.expand(prompt), negative)
    assert not same(both, base)
    assert same(image(pipe, prompt, negative), base)


def test_bad_files_and_unknown_names_become_notes(sd15, sdxl, env, tmp_path):
    pipe = sd15.pipe
    _, folders, _ = env
    lora_dir, emb_dir, hn_dir = folders["lora"][0], folders["embedding"][0], folders["hypernetwork"][0]
    marker = tmp_path / "pwned"
    (lora_dir / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + b"x" * 64)
    # made for the SDXL model: its layers do not fit SD1 (names and widths)
    write_kohya_lora(lora_dir / "wrongshape.safetensors", sdxl.pipe, seed=1, sdxl=False)
    write_malicious_pickle(lora_dir / "evil.pt", marker)
    write_malicious_pickle(emb_dir / "evilemb.pt", marker)
    write_malicious_pickle(hn_dir / "evilhn.pt", marker)
    (hn_dir / "junk.pt").write_bytes(b"junk" * 10)
    (emb_dir / "junkemb.bin").write_bytes(b"\x80junk")
    good = write_kohya_lora(lora_dir / "good.safetensors", pipe, seed=5)
    refs = [Ref("lora", n) for n in ("garbage", "wrongshape", "evil", "good", "nosuch")]
    refs += [Ref("hypernet", "evilhn"), Ref("hypernet", "junk"), Ref("hypernet", "nohn"), Ref("textual", "x")]
    refs += [Ref("lora", "good", ("much",))]
    base = image(pipe)
    with use(pipe, sd15.spec, refs, ["evilemb junkemb a cat"], env) as nets:
        notes = "\n".join(nets.notes)
        changed = image(pipe)
    assert not marker.exists()
    for needle in ("garbage.safetensors", "wrongshape.safetensors", "evil.pt", "Lora not found: nosuch",
                   "evilhn.pt", "junk.pt", "Hypernetwork not found: nohn", "evilemb.pt", "junkemb.bin",
                   "unsupported extra network <textual:x>"):
        assert needle in notes, (needle, notes)
    assert "refused" in notes
    assert "size mismatch" in notes  # the wrong-shape LoRA names a mismatching tensor
    assert nets.loras == ["good"] and nets.infotext == {"Lora hashes": f"good: {addnet(good)}"}
    assert not same(changed, base)
    assert same(image(pipe), base)

    # a bad weight on a fresh name is a note too
    with use(pipe, sd15.spec, [Ref("lora", "good", ("much",))], [""], env) as nets:
        assert nets.loras == [] and "not a number" in nets.notes[0]

    # nan/inf weights would blacken the image: each is refused with a note and the model is untouched
    write_hypernetwork(hn_dir / "hn.pt", dims=(32, 64), seed=6)
    for weight in ("nan", "inf", "-inf"):
        refs = [Ref("lora", "good", (weight,)), Ref("lora", "good2", ("1", weight)), Ref("hypernet", "hn", (weight,))]
        shutil.copy(good, lora_dir / "good2.safetensors")
        with use(pipe, sd15.spec, refs, [""], env) as nets:
            assert nets.loras == [] and nets.hypernetworks == []
            assert sum("not a finite number" in note for note in nets.notes) == 3, nets.notes
            assert same(image(pipe), base)


def test_removed_even_when_the_job_raises(sd15, env):
    pipe = sd15.pipe
    _, folders, _ = env
    write_kohya_lora(folders["lora"][0] / "l.safetensors", pipe, seed=21)
    write_hypernetwork(folders["hypernetwork"][0] / "h.pt", dims=(32, 64), seed=22)
    write_a1111_embedding(folders["embedding"][0] / "e.pt", random_vectors(2, 64, seed=23))
    tok_len = len(pipe.tokenizer)
    base = image(pipe)
    with pytest.raises(RuntimeError, match="boom"):
        with use(pipe, sd15.spec, [Ref("lora", "l"), Ref("hypernet", "h")], ["e"], env):
            raise RuntimeError("boom")
    assert len(pipe.tokenizer) == tok_len
    assert not getattr(pipe.unet, "peft_config", None)
    assert same(image(pipe), base)
