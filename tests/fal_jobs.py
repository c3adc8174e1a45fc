"""The kinds of job fal makes, shared by the unit tests of their bodies and the integration
test that runs one of each through the fal sandbox."""

from __future__ import annotations

from typing import Any

# A job of each kind fal can make, by model: (params given, input roles, fal's endpoint).
FAL_JOBS: list[tuple[str, dict[str, Any], list[str], str]] = [
    ("veo3.1-fast/text-to-video", {}, [], "fal-ai/veo3.1/fast"),
    ("veo3.1/text-to-video", {"resolution": "4k", "duration": 4}, [], "fal-ai/veo3.1"),
    (
        "veo3.1-fast/image-to-video",
        {"aspect_ratio": "Auto"},
        ["first_frame"],
        "fal-ai/veo3.1/fast/image-to-video",
    ),  # fmt: skip
    (
        "veo3.1/image-to-video",
        {"aspect_ratio": "9:16"},
        ["first_frame"],
        "fal-ai/veo3.1/image-to-video",
    ),  # fmt: skip
    ("kling-2.6/text-to-video", {"sound": True}, [], "fal-ai/kling-video/v2.6/pro/text-to-video"),
    ("kling-3.0/video", {}, [], "fal-ai/kling-video/v3/pro/text-to-video"),
    ("kling-3.0/video", {"mode": "std"}, [], "fal-ai/kling-video/v3/standard/text-to-video"),
    (
        "kling-3.0/video",
        {"duration": 12, "aspect_ratio": "9:16"},
        ["first_frame", "last_frame"],
        "fal-ai/kling-video/v3/pro/image-to-video",
    ),
    (
        "kling-3.0/video",
        {"mode": "std", "sound": True},
        ["first_frame"],
        "fal-ai/kling-video/v3/standard/image-to-video",
    ),
    (
        "bytedance/seedance-2",
        {"duration": -1, "aspect_ratio": "adaptive"},
        [],
        "bytedance/seedance-2.0/text-to-video",
    ),  # fmt: skip
    ("bytedance/seedance-2", {"resolution": "480p"}, [], "bytedance/seedance-2.0/text-to-video"),
    ("wan/2-6-text-to-video", {"duration": 15, "multi_shots": True}, [], "wan/v2.6/text-to-video"),
    (
        "wan/2-7-text-to-video",
        {"duration": 2, "seed": 7, "negative_prompt": "rain"},
        ["audio"],
        "fal-ai/wan/v2.7/text-to-video",
    ),  # fmt: skip
    (
        "hailuo/02-text-to-video-pro",
        {"prompt_optimizer": False},
        [],
        "fal-ai/minimax/hailuo-02/pro/text-to-video",
    ),  # fmt: skip
    (
        "hailuo/2-3-image-to-video-pro",
        {"duration": 10},
        ["first_frame"],
        "fal-ai/minimax/hailuo-2.3/standard/image-to-video",
    ),  # fmt: skip
    (
        "hailuo/2-3-image-to-video-pro",
        {"resolution": "1080P"},
        ["first_frame"],
        "fal-ai/minimax/hailuo-2.3/pro/image-to-video",
    ),  # fmt: skip
    (
        "kling-2.6/image-to-video",
        {"duration": 10, "sound": True},
        ["first_frame"],
        "fal-ai/kling-video/v2.6/pro/image-to-video",
    ),
    (
        "wan/2-6-image-to-video",
        {"resolution": "720p", "duration": 10},
        ["first_frame"],
        "wan/v2.6/image-to-video",
    ),
    (
        "wan/2-7-image-to-video",
        {"duration": 8, "prompt_extend": False},
        ["first_frame", "last_frame", "driving_audio"],
        "fal-ai/wan/v2.7/image-to-video",
    ),
    (
        "hailuo/02-text-to-video-standard",
        {"duration": 10},
        [],
        "fal-ai/minimax/hailuo-02/standard/text-to-video",
    ),
    (
        "hailuo/02-image-to-video-pro",
        {},
        ["first_frame", "last_frame"],
        "fal-ai/minimax/hailuo-02/pro/image-to-video",
    ),
    (
        "hailuo/02-image-to-video-standard",
        {"resolution": "512P"},
        ["first_frame"],
        "fal-ai/minimax/hailuo-02/standard/image-to-video",
    ),
    (
        "bytedance/seedance-2",
        {"aspect_ratio": "9:16"},
        ["first_frame", "last_frame"],
        "bytedance/seedance-2.0/image-to-video",
    ),
    ("bytedance/seedance-2-fast", {}, [], "bytedance/seedance-2.0/fast/text-to-video"),
    (
        "bytedance/seedance-2-fast",
        {"resolution": "480p", "duration": 4},
        ["first_frame"],
        "bytedance/seedance-2.0/fast/image-to-video",
    ),
    (
        "kling/v2-5-turbo-text-to-video-pro",
        {"duration": 10, "aspect_ratio": "1:1", "negative_prompt": "fog", "cfg_scale": 0.7},
        [],
        "fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
    ),
    (
        "kling/v2-5-turbo-image-to-video-pro",
        {},
        ["first_frame", "last_frame"],
        "fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
    ),
    (
        "kling/v2-1-master-text-to-video",
        {"duration": 10, "aspect_ratio": "9:16", "cfg_scale": 0.3},
        [],
        "fal-ai/kling-video/v2.1/master/text-to-video",
    ),
    (
        "kling/v2-1-master-image-to-video",
        {"negative_prompt": "blur"},
        ["first_frame"],
        "fal-ai/kling-video/v2.1/master/image-to-video",
    ),
    (
        "kling/v2-1-pro",
        {"duration": 10},
        ["first_frame"],
        "fal-ai/kling-video/v2.1/pro/image-to-video",
    ),
    ("kling/v2-1-standard", {}, ["first_frame"], "fal-ai/kling-video/v2.1/standard/image-to-video"),
]
