"""Examples as token ids (masking, special tokens, chats, truncation) and their batches."""

import numpy as np
import pytest
import torch
from checkpoints import UNMARKED_TEMPLATE, bpe_tokenizer

from lightning_rectlaw.hf.batching import LengthGroupedBatchSampler, SFTCollator
from lightning_rectlaw.hf.encoding import Encoder, EncodingError
from lightning_rectlaw.hf.formats import Record
from lightning_rectlaw.hf.tokenizer import EOS_BYTE, ByteTokenizer, HFTokenizer

PAIR = Record("t.jsonl, line 1", prompt="Q: héllo\n", response="A: wörld")


def _hf(path) -> HFTokenizer:
    return HFTokenizer(str(path))


def test_decoder_only_pair_is_prompt_response_end_with_the_loss_on_the_response():
    e = Encoder(ByteTokenizer(), 64, encoder_decoder=False)(PAIR)
    prompt, response = list(PAIR.prompt.encode()), list(PAIR.response.encode())
    assert e.input_ids == prompt + response + [EOS_BYTE]
    assert e.loss_mask == [0] * len(prompt) + [1] * (len(response) + 1)  # the end token is scored
    assert e.num_bytes == len(PAIR.response.encode("utf-8")) == 9 and e.truncated == 0


def test_a_bos_comes_once_before_the_prompt(tmp_path):
    tok = bpe_tokenizer(300, ["<s>", "</s>"], wrap="<s> $A")
    tok.bos_token, tok.eos_token = "<s>", "</s>"
    tok.save_pretrained(tmp_path)
    hf = _hf(tmp_path)
    e = Encoder(hf, 64, encoder_decoder=False)(PAIR)
    bos, eos = hf.hf.bos_token_id, hf.hf.eos_token_id
    assert e.input_ids[0] == bos and e.input_ids.count(bos) == 1 and e.input_ids[-1] == eos
    assert e.input_ids[1:-1] == hf.encode(PAIR.prompt) + hf.encode(PAIR.response)
    assert e.loss_mask[0] == 0


def test_encoder_decoder_pair_sends_the_prompt_to_the_encoder_and_the_response_to_the_labels(checkpoints):
    t5 = _hf(checkpoints["t5"])
    e = Encoder(t5, 64, encoder_decoder=True)(PAIR)
    eos = t5.hf.eos_token_id
    assert e.input_ids == t5.hf(PAIR.prompt)["input_ids"] and e.input_ids[-1] == eos  # T5 appends </s>
    assert e.labels == t5.encode(PAIR.response) + [eos] and e.loss_mask is None  # no BOS in the labels
    bart = _hf(checkpoints["bart"])
    e = Encoder(bart, 64, encoder_decoder=True)(PAIR)
    assert e.input_ids[0] == bart.hf.bos_token_id and e.labels[0] != bart.hf.bos_token_id


def test_too_long_examples_lose_prompt_tokens_from_the_start_never_the_response():
    long = Record("t.jsonl, line 3", prompt="x" * 50 + "END\n", response="ok")
    e = Encoder(ByteTokenizer(), 10, encoder_decoder=False)(long)
    assert bytes(e.input_ids[:-3]).decode() == "xxxEND\n" and len(e.input_ids) == 10
    assert e.input_ids[-3:] == [*b"ok", EOS_BYTE] and e.truncated == 47 and sum(e.loss_mask) == 3
    s2s = Encoder(ByteTokenizer(), 10, encoder_decoder=True)(long)
    assert bytes(s2s.input_ids).decode() == "xxxxxxEND\n" and s2s.truncated == 44
    with pytest.raises(
        EncodingError, match=r"^t.jsonl, line 3: the response is longer than max_length=2 .*at least 3$"
    ):
        Encoder(ByteTokenizer(), 2, encoder_decoder=False)(long)
    with pytest.raises(EncodingError, match=r"^t.jsonl, line 3: the response is 3 tokens .* at least 3$"):
        Encoder(ByteTokenizer(), 2, encoder_decoder=True)(long)


def test_a_tokenizer_without_an_end_token_is_refused(tmp_path):
    bpe_tokenizer(300, []).save_pretrained(tmp_path)
    with pytest.raises(EncodingError, match=r"has no end-of-sequence token.*set its eos_token"):
        Encoder(_hf(tmp_path), 64, encoder_decoder=False)


CHAT = Record(
    "c.jsonl, line 1",
    messages=(
        ("system", "Be brief."),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "bye"),
        ("assistant", "ciao"),
    ),
)


def test_chat_without_template_renders_plainly_with_the_loss_on_the_assistant_turns():
    e = Encoder(ByteTokenizer(), 256, encoder_decoder=False)(CHAT)
    text = bytes(i for i in e.input_ids if i != EOS_BYTE).decode()
    assert text == "system: Be brief.\nuser: hi\nassistant: hellouser: bye\nassistant: ciao"
    scored = bytes(i if i != EOS_BYTE else ord("|") for i, m in zip(e.input_ids, e.loss_mask) if m).decode()
    assert scored == "hello|ciao|" and e.num_bytes == len("helloCiao")


def test_chat_truncation_drops_the_earliest_turns_after_the_system_prompt():
    full = len(Encoder(ByteTokenizer(), 256, encoder_decoder=False)(CHAT).input_ids)
    e = Encoder(ByteTokenizer(), full - 5, encoder_decoder=False)(CHAT)
    text = bytes(i for i in e.input_ids if i != EOS_BYTE).decode()
    assert text == "system: Be brief.\nassistant: hellouser: bye\nassistant: ciao"  # "user: hi" went
    assert e.truncated == len("user: hi\n") and e.num_bytes == len("helloCiao")


def test_chat_template_marks_the_loss_and_one_marking_nothing_is_refused(checkpoints, tmp_path):
    tok = _hf(checkpoints["gpt2_bpe1000"])  # its template puts assistant turns in {% generation %}
    e = Encoder(tok, 256, encoder_decoder=False)(CHAT)
    scored = tok.hf.decode([i for i, m in zip(e.input_ids, e.loss_mask) if m])
    assert scored == "hello<|end|>ciao<|end|>"
    unmarked = tok.hf
    unmarked.chat_template = UNMARKED_TEMPLATE
    unmarked.save_pretrained(tmp_path)
    with pytest.raises(
        EncodingError, match=r"^c.jsonl, line 1: the chat template .* marks no assistant token"
    ):
        Encoder(_hf(tmp_path), 256, encoder_decoder=False)(CHAT)


def test_encoder_decoder_chat_answers_the_last_assistant_turn():
    e = Encoder(ByteTokenizer(), 256, encoder_decoder=True)(CHAT)
    assert (
        bytes(e.input_ids).decode() == "system: Be brief.\nuser: hi\nassistant: hello\nuser: bye\nassistant: "
    )
    assert bytes(e.labels[:-1]).decode() == "ciao" and e.num_bytes == 4


def test_batches_pad_on_the_right_and_keep_real_end_tokens_in_the_labels():
    enc = Encoder(ByteTokenizer(), 64, encoder_decoder=False)
    short, long = enc(Record("a", prompt="p", response="r")), enc(PAIR)
    batch = SFTCollator(pad_id=EOS_BYTE)([short, long])
    n = len(short.input_ids)
    assert batch["input_ids"].shape == (2, len(long.input_ids))
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (len(long.input_ids) - n)
    assert batch["labels"][0].tolist() == [-100, ord("r"), EOS_BYTE] + [-100] * (len(long.input_ids) - n)
    assert batch["num_bytes"].tolist() == [1, 9]
    trained = SFTCollator(pad_id=EOS_BYTE, train_on_prompt=True)([short, long])
    assert trained["labels"][0, :n].tolist() == short.input_ids


def test_length_grouped_batches_cover_every_example_once_with_less_padding():
    lengths = np.random.default_rng(0).integers(5, 500, size=1000)
    sampler = LengthGroupedBatchSampler(lengths, batch_size=16, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000)) and len(batches) == len(sampler)
    assert batches != list(sampler)  # a new order each epoch, the same for the same seed and epoch
    assert batches == list(LengthGroupedBatchSampler(lengths, batch_size=16, seed=3))

    def padding(bs):
        return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in map(np.asarray, bs))

    shuffled = np.random.default_rng(0).permutation(1000)
    plain = [shuffled[i : i + 16] for i in range(0, 1000, 16)]
    assert padding(batches) < 0.2 * padding(plain)
    sub = sampler.for_subset([5, 7, 9], seed=1)
    assert (
        sorted(i for b in sub for i in b) == [0, 1, 2] and sub.lengths.tolist() == lengths[[5, 7, 9]].tolist()
    )


def test_padded_batches_give_the_loss_of_each_example_alone():
    from lightning_rectlaw.hf.model import summed_nll

    torch.manual_seed(0)
    enc = Encoder(ByteTokenizer(), 64, encoder_decoder=False)
    examples = [enc(Record("a", prompt="pp", response="rrr")), enc(PAIR)]
    batch = SFTCollator(pad_id=EOS_BYTE)(examples)
    logits = torch.randn(*batch["input_ids"].shape, 257)
    nll, count = summed_nll(logits, batch["labels"], shift=True)
    alone = [
        summed_nll(
            logits[i : i + 1, : len(e.input_ids)], batch["labels"][i : i + 1, : len(e.input_ids)], True
        )
        for i, e in enumerate(examples)
    ]
    assert nll == pytest.approx(sum(a[0] for a in alone)) and count == 4 + 10 == sum(a[1] for a in alone)


def test_under_ddp_each_validation_example_is_scored_on_one_rank_only(monkeypatch):
    """Lightning's default distributed sampler repeats examples to even out the ranks; summed
    metrics (val_bpb) would count them twice."""
    from lightning_rectlaw.hf.batching import validation_loader

    data = list(range(11))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 4)
    seen = []
    for rank in range(4):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None, rank=rank: rank)
        seen += [int(x) for batch in validation_loader(data, batch_size=2) for x in batch]
    assert sorted(seen) == data  # 11 examples on 4 ranks: each once, none repeated
