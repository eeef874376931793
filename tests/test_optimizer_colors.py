"""plots.OPTIMIZER_COLORS: the one colour map of the optimizers that chapter 4's lessons share."""

from lessons_lib import optimizers, plots


def test_every_optimizer_has_its_own_colour():
    """Catches an optimizer added to the registry without a colour (zip would silently drop it
    once there are more optimizers than colours) and two optimizers drawn alike."""
    assert list(plots.OPTIMIZER_COLORS) == list(optimizers.OPTIMIZERS)
    assert len(set(plots.OPTIMIZER_COLORS.values())) == len(optimizers.OPTIMIZERS)


def test_the_colours_are_the_palette_in_registry_order():
    """Catches a lesson's colours drifting from the figures of the other lessons: SGD is the
    palette's first colour, momentum its second, and so on."""
    assert all(plots.OPTIMIZER_COLORS[name] == plots.PALETTE[i]
               for i, name in enumerate(optimizers.OPTIMIZERS))
