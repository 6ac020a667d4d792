"""Word-level tokenizer with a byte fallback: it never fails on any input string.

Known words (built from the package's own templates and easy-VQA) map to one token;
anything else (unseen words, emoji, control characters) is spelled as UTF-8 byte
tokens, so every string round-trips. Text is NFKC-normalised and lower-cased first:
the model's world has no case.
"""
import json
import re
import unicodedata

SPECIALS = ('<pad>', '<eos>', '<q>', '<a>', '<cap>', '<act>')
PAD, EOS, QUESTION, ANSWER, CAPTION, ACTION = range(len(SPECIALS))
_BYTES = tuple(f'<0x{b:02x}>' for b in range(256))
_PIECE = re.compile(r"[^\W_]+|\S")   # runs of letters/digits (any script), or one symbol


def normalize(text: str) -> str:
    return unicodedata.normalize('NFKC', text).lower()


class Tokenizer:
    def __init__(self, words):
        self.vocab = list(SPECIALS) + list(_BYTES) + sorted(set(words))
        self.index = {tok: i for i, tok in enumerate(self.vocab)}
        self._byte0 = len(SPECIALS)

    @classmethod
    def from_corpus(cls, texts):
        """Vocabulary = every piece of the given texts."""
        words = set()
        for t in texts:
            words.update(_PIECE.findall(normalize(t)))
        return cls(w for w in words if len(w) > 1 or w.isalnum() or w in '.,?!\'')

    def __len__(self):
        return len(self.vocab)

    def encode(self, text: str) -> list:
        ids, after_bytes = [], False
        for piece in _PIECE.findall(normalize(text)):
            i = self.index.get(piece)
            if i is not None:
                ids.append(i)
                after_bytes = False
            else:   # spell it in bytes; a byte space keeps two spelled pieces apart
                # (a lone surrogate, which str allows and UTF-8 does not, becomes '?')
                data = (b' ' if after_bytes else b'') + piece.encode('utf-8', 'replace')
                ids.extend(self._byte0 + b for b in data)
                after_bytes = True
        return ids

    def decode(self, ids) -> str:
        """Inverse of encode (up to normalisation and spacing); stops at <eos>."""
        words, pending = [], bytearray()
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if self._byte0 <= i < self._byte0 + 256:
                pending.append(i - self._byte0)
                continue
            if pending:
                words.append(pending.decode('utf-8', errors='replace'))
                pending.clear()
            if i >= self._byte0 + 256:
                words.append(self.vocab[i])
        if pending:
            words.append(pending.decode('utf-8', errors='replace'))
        text = ' '.join(words)
        return re.sub(r" ([.,?!'])", r'\1', text)

    def question_prompt(self, question: str) -> list:
        """`<q> question <a>`: the prompt after which the decoder writes the answer."""
        return [QUESTION] + self.encode(question) + [ANSWER]

    def to_json(self) -> str:
        return json.dumps({'words': self.vocab[len(SPECIALS) + 256:]})

    @classmethod
    def from_json(cls, text: str):
        return cls(json.loads(text)['words'])
