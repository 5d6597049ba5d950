"""The pure pieces, on their own: the content policy (mask, cut, blobs, Privacy Mode) and
metadata layering."""

from __future__ import annotations

from sentry_llm_callbacks.core.content import ContentPolicy
from sentry_llm_callbacks.core.metadata import MetadataLayer


def test_content_policy_masks_cuts_and_replaces_blobs() -> None:
    policy = ContentPolicy(max_chars=20, mask=lambda text: text.replace("secret", "******"))
    assert policy.render("my secret") == "my ******"
    assert policy.render("x" * 30) == "x" * 20 + "...[truncated 10 chars]"
    blob = "data:image/png;base64," + "A" * 64
    assert ContentPolicy().render({"image": blob}) == '{"image":"data:image/png;base64,<86 chars omitted>"}'
    assert ContentPolicy(private=True).render("anything") is None
    assert ContentPolicy(mask=lambda text: 1 / 0).render("boom") is None  # a failing mask drops, never leaks
    assert ContentPolicy().tightened(True).private and ContentPolicy(private=True).tightened(False).private


def test_metadata_layers_merge_key_by_key_and_privacy_only_tightens() -> None:
    handler = MetadataLayer.build(user="u1", trace={"team": "ml", "trace_name": "A"}, privacy_mode=True, strict=True)
    run = MetadataLayer.build(session_id="s1", trace={"trace_name": "B"}, privacy_mode=False, strict=False)
    merged = run.over(handler)
    assert (merged.user, merged.session_id) == ("u1", "s1")
    assert dict(merged.trace) == {"team": "ml", "trace_name": "B"}
    assert merged.privacy_mode is True
