"""The picture conversion's choices as params.yaml and the command lines name them, apart from the conversion itself
so that checking a params section needs none of the picture code."""

# Whether a picture's item is lighter than its background: found per picture (auto), or always inverted, or never.
INVERT_CHOICES = ("auto", "always", "never")
