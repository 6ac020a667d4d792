from hypothesis import given, settings, strategies as st

from vla_ros.tokenizer import EOS, Tokenizer, normalize

TOK = Tokenizer.from_corpus(['what color is the shape?', 'is there a red circle?'])


def test_known_words_are_single_tokens():
    ids = TOK.encode('What COLOR is the shape?')
    assert len(ids) == 6
    assert TOK.decode(ids) == 'what color is the shape?'


def test_unknown_words_and_unicode_round_trip():
    text = 'is there a magenta 🦄 hexagon? ünïcödé\t\x00'
    assert TOK.decode(TOK.encode(text)) == ' '.join(normalize(text).split()).replace(' ?', '?')


def test_decode_stops_at_eos():
    ids = TOK.encode('red circle') + [EOS] + TOK.encode('shape')
    assert TOK.decode(ids) == 'red circle'


def test_vocabulary_survives_json():
    again = Tokenizer.from_json(TOK.to_json())
    assert again.vocab == TOK.vocab


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=200))
def test_any_string_encodes_and_decodes(text):
    ids = TOK.encode(text)
    assert all(0 <= i < len(TOK) for i in ids)
    assert isinstance(TOK.decode(ids), str)


def test_lone_surrogates_encode_as_a_replacement():
    assert TOK.decode(TOK.encode('red \ud800 circle')) == 'red? circle'   # '?' joins left
