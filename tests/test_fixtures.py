from transformers import AutoModelForCausalLM, AutoTokenizer

from storyterm.engine.prompt import CLASSIC_GENRES, genres_from_special_tokens


def test_tiny_checkpoint_is_a_real_offline_gpt2(tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    assert genres_from_special_tokens(tokenizer.all_special_tokens) == list(CLASSIC_GENRES)
    ids = tokenizer("<BOS> <horror> The ghost", return_tensors="pt").input_ids
    assert model(ids).logits.shape[-1] == len(tokenizer)


def test_free_mode_checkpoint_has_no_genres(make_tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_checkpoint(genres=None))
    assert genres_from_special_tokens(tokenizer.all_special_tokens) == []
