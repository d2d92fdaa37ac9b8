"""The key footer, without the memory leak of Textual's: every bindings change (twice per generation) rebuilds
the footer, and each ``FooterKey``'s ``data_bind(compact=...)`` leaves a watcher on the footer that Textual prunes
only when ``compact`` changes (never, here), keeping every old key widget alive (~18 per generation). Removed
widgets' drawn lines are let go too (see ``recompose``).

On a narrow terminal Textual's footer cuts its keys off at the right edge ("f1 He"); this one shows only the keys
that fit whole, the most important first (``keymap.FOOTER_KEEP_FIRST``: Help always stays)."""

from __future__ import annotations

from textual._styles_cache import StylesCache
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from storyterm.tui.keymap import FOOTER_KEEP_FIRST


class StoryFooter(Footer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        # Rebuild only when what the footer shows changed (enabled state included), not on every refresh.
        if self.is_attached and screen is self.screen:
            shown = _signature(screen)
            if shown == self._shown and self._bindings_ready:
                return
            self._shown = shown
        super().bindings_changed(screen)

    async def recompose(self) -> None:
        await super().recompose()
        self.prune_watchers()
        # Textual's StylesCache.get_inner_outer is an lru_cache keyed by each widget's StylesCache, so up to 1 024
        # removed widgets' caches (footer keys, toasts…) stay alive with every line they drew. The footer is
        # rebuilt a few times per generation: a good moment to let them go (the cache only maps two colours).
        StylesCache.get_inner_outer.cache_clear()
        self.fit_keys()

    def on_resize(self) -> None:
        self.fit_keys()

    def fit_keys(self) -> None:
        """Hide the keys that would not fit whole, the least important first."""
        keys = list(self.query_children(FooterKey))
        if not keys or not self.size.width:
            return
        palette = [key for key in keys if key.has_class("-command-palette")]
        room = self.size.width - sum(_width(key) for key in palette)
        ranked = sorted((key for key in keys if key not in palette), key=lambda key: (
            FOOTER_KEEP_FIRST.index(key.action) if key.action in FOOTER_KEEP_FIRST else len(FOOTER_KEEP_FIRST),
            keys.index(key)))
        for key in ranked:
            width = _width(key)
            key.display = width <= room
            if key.display:
                room -= width

    def prune_watchers(self) -> None:
        """Forget the data-bind watchers of key widgets that were removed."""
        for watchers in getattr(self, "__watchers", {}).values():
            watchers[:] = [(node, callback) for node, callback in watchers
                           if not (node._closing or node._closed)]


def _width(key: FooterKey) -> int:
    """Cells the key takes: its text with the padding its parts have, its own padding, border and margin."""
    return key.render().cell_len + key.styles.gutter.width + key.styles.margin.width


def _signature(screen: Screen) -> tuple:
    return tuple(
        (key, binding.action, binding.description, binding.show, enabled)
        for key, (_node, binding, enabled, _tooltip) in screen.active_bindings.items()
    )
