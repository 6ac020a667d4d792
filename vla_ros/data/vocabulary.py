"""The closed world the model knows: shapes, colours, positions, sizes, counts.

Colours are easy-VQA's exact RGB values (measured on its images), so scenes the
package renders and easy-VQA images share one palette.
"""

SHAPES = ('circle', 'rectangle', 'triangle')

COLORS = {
    'red': (255, 0, 0),
    'green': (0, 255, 0),
    'blue': (0, 0, 255),
    'yellow': (255, 255, 0),
    'teal': (0, 128, 128),
    'brown': (165, 42, 42),
    'gray': (128, 128, 128),
    'black': (0, 0, 0),
}
COLOR_NAMES = tuple(COLORS)

# Words people use for the same thing; they map onto the canonical names above.
SHAPE_SYNONYMS = {'circle': ('circle', 'disc', 'round shape'),
                  'rectangle': ('rectangle', 'box', 'oblong'),
                  'triangle': ('triangle', 'triangular shape')}
COLOR_SYNONYMS = {'gray': ('gray', 'grey'), 'teal': ('teal', 'turquoise')}

NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five')

ROWS = ('top', 'middle', 'bottom')
COLUMNS = ('left', 'center', 'right')


def position_phrase(cx: float, cy: float) -> str:
    """Name the 3x3 cell of a point given as fractions of image width and height."""
    row = ROWS[min(2, int(cy * 3))]
    col = COLUMNS[min(2, int(cx * 3))]
    if row == 'middle' and col == 'center':
        return 'center'
    if row == 'middle':
        return col
    if col == 'center':
        return row
    return f'{row} {col}'


def size_word(size_fraction: float) -> str:
    """'small', '' or 'large' for a shape whose extent is this fraction of the image."""
    if size_fraction < 0.25:
        return 'small'
    if size_fraction > 0.42:
        return 'large'
    return ''
