"""A supervised example as token ids: what the model reads, which tokens carry the loss, and the
UTF-8 bytes of the text they score.

Decoder-only: the tokenizer's own leading special tokens (a BOS, once), the prompt as written, the
response as written, the end token; the loss is on the response and its end token. Encoder-decoder:
the prompt (with the tokenizer's special tokens) to the encoder, the response and its end token as
the labels. The response is tokenized on its own, so the tokens that carry the loss stand for
exactly its bytes.

A chat renders with the tokenizer's chat template where it has one, the loss on the tokens the
template marks as the assistant's (``{% generation %}``); without a template, in the plain form::

    system: {content}\\n
    user: {content}\\n
    assistant: {content}<eos>

where the assistant's contents and their end tokens carry the loss. For an encoder-decoder, the
turns before the last assistant turn (and ``assistant: ``) go to the encoder, the last assistant
turn is the response.

Too long for ``max_length``: a chat first loses its earliest turns after any system prompt, then
any example loses tokens from the start of its prompt, never from its response; a response that
alone is longer is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightning_rectlaw.hf.formats import ASSISTANT, Record
from lightning_rectlaw.hf.tokenizer import ByteTokenizer, HFTokenizer


class EncodingError(ValueError):
    """An example or tokenizer that cannot give a faithful training sequence."""


@dataclass(frozen=True)
class Encoded:
    """One example's ids. ``loss_mask`` (decoder-only): 1 on the tokens the loss scores; ``labels``
    (encoder-decoder): the decoder's targets. ``truncated``: prompt tokens dropped to fit."""

    input_ids: list[int]
    loss_mask: list[int] | None
    labels: list[int] | None
    num_bytes: int
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.input_ids) + len(self.labels or ())


class Encoder:
    """Turns :class:`Record` into :class:`Encoded` for one tokenizer, model kind and length."""

    def __init__(
        self, tokenizer: ByteTokenizer | HFTokenizer, max_length: int, encoder_decoder: bool
    ) -> None:
        if tokenizer.eos_id is None:
            raise EncodingError(
                f"tokenizer {tokenizer.name!r} has no end-of-sequence token, so a response has no end "
                "to learn; set its eos_token (tokenizer.eos_token = ...) and save it again"
            )
        self.tok, self.max_length, self.encoder_decoder = tokenizer, int(max_length), encoder_decoder
        self.use_template = bool(tokenizer.chat_template) and not encoder_decoder

    def __call__(self, record: Record) -> Encoded:
        if self.encoder_decoder:
            return self._seq2seq(record)
        if record.is_chat:
            return self._chat(record)
        return self._fit(record, [(record.prompt, 0), (record.response, 1)], record.response_texts())

    # --- decoder-only ---------------------------------------------------------------------------

    def _segments_ids(self, segments: list[tuple[str | int, int]]) -> tuple[list[int], list[int]]:
        """Ids and loss mask of text segments (an int segment is a token id, e.g. the end token)."""
        ids, mask = list(self.tok.special_wrap[0]), [0] * len(self.tok.special_wrap[0])
        for part, loss in segments:
            part_ids = [part] if isinstance(part, int) else self.tok.encode(part)
            ids += part_ids
            mask += [loss] * len(part_ids)
        return ids, mask

    def _fit(self, record: Record, segments: list[tuple[str | int, int]], scored: list[str]) -> Encoded:
        ids, mask = self._segments_ids([*segments, (self.tok.eos_id, 1)])
        return self._cut(record, ids, mask, scored)

    def _cut(
        self, record: Record, ids: list[int], mask: list[int], scored: list[str], dropped: int = 0
    ) -> Encoded:
        """Drop prompt tokens after the leading specials until the example fits ``max_length``."""
        head = len(self.tok.special_wrap[0])
        excess = len(ids) - self.max_length
        first_loss = mask.index(1) if 1 in mask else len(mask)
        if excess > first_loss - head:
            need = head + len(ids) - first_loss
            raise EncodingError(
                f"{record.where}: the response is longer than max_length={self.max_length} "
                f"tokens with its end token; raise max_length to at least {need}"
            )
        cut = max(excess, 0)
        ids, mask = ids[:head] + ids[head + cut :], mask[:head] + mask[head + cut :]
        num_bytes = sum(len(t.encode("utf-8")) for t in scored)
        return Encoded(ids, mask, None, num_bytes, truncated=dropped + cut)

    def _chat(self, record: Record) -> Encoded:
        """A chat rendered whole; while too long, without its earliest turn after the system prompt."""
        turns = list(record.messages)
        first = next((i for i, (role, _) in enumerate(turns) if role != "system"), len(turns))
        last = max(i for i, (role, _) in enumerate(turns) if role == ASSISTANT)
        full = None
        while True:
            ids, mask = self._render(record, turns)
            full = len(ids) if full is None else full
            if len(ids) <= self.max_length or first >= last:
                break
            turns.pop(first)
            last -= 1
        scored = [c for r, c in turns if r == ASSISTANT]
        return self._cut(record, ids, mask, scored, dropped=full - len(ids))

    def _render(self, record: Record, turns: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
        if self.use_template:
            return self._template(record, turns)
        segments: list[tuple[str | int, int]] = []
        for role, content in turns:
            if role == ASSISTANT:
                segments += [(f"{role}: ", 0), (content, 1), (self.tok.eos_id, 1)]
            else:
                segments.append((f"{role}: {content}\n", 0))
        return self._segments_ids(segments)

    def _template(self, record: Record, turns: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
        out: Any = self.tok.hf.apply_chat_template(
            [{"role": r, "content": c} for r, c in turns],
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        if not any(mask):
            raise EncodingError(
                f"{record.where}: the chat template of {self.tok.name!r} marks no assistant token, so "
                "nothing would carry the loss; give a template whose assistant turns are in "
                "{% generation %} ... {% endgeneration %}, or remove its chat_template for the plain form"
            )
        return ids, mask

    # --- encoder-decoder ------------------------------------------------------------------------

    def _seq2seq(self, record: Record) -> Encoded:
        if record.is_chat:
            turns = list(record.messages)
            last = max(i for i, (role, _) in enumerate(turns) if role == ASSISTANT)
            prompt = "".join(f"{r}: {c}\n" for r, c in turns[:last]) + f"{ASSISTANT}: "
            response = turns[last][1]
        else:
            prompt, response = record.prompt, record.response
        labels = [*self.tok.encode(response), self.tok.eos_id]
        if len(labels) > self.max_length:
            raise EncodingError(
                f"{record.where}: the response is {len(labels)} tokens with its end token, longer than "
                f"max_length={self.max_length}; raise max_length to at least {len(labels)}"
            )
        before, after = self.tok.special_wrap
        body = self.tok.encode(prompt)
        cut = max(0, len(before) + len(body) + len(after) - self.max_length)
        ids = [*before, *body[cut:], *after]
        return Encoded(ids, None, labels, len(response.encode("utf-8")), truncated=cut)
