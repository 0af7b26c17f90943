"""Quality guard for bench/transcode.py's ladder: SSIM and bitrate of each rendition.

SSIM is always measured the same way: the rendition is scaled back up to the source's size
(bicubic) and compared with the source by FFmpeg's ``ssim`` filter; the printed figure is its
"All" value. "Before" is the same rendition made by the bench's baseline (one plain FFmpeg run per
rendition with the pre-issue-14 settings: scaled from the full decode, rung bitrates uncapped),
so both figures come from the same run. A rendition passes when new >= before - 0.002.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

SSIM_TOLERANCE = 0.002


def ssim(rendition: Path, source: Path, width: int, height: int) -> float:
    """SSIM (All) of rendition, scaled up to width x height, against source."""
    graph = f"[0:v]scale={width}:{height}:flags=bicubic,setsar=1[r];[r][1:v]ssim"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(rendition), "-i", str(source)]
    done = subprocess.run(
        [*argv, "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True, check=True
    )
    match = re.search(r"SSIM .*All:([0-9.]+)", done.stderr)
    if not match:
        raise RuntimeError(f"no SSIM in ffmpeg's output: {done.stderr[-500:]}")
    return float(match.group(1))


def media_facts(path: Path) -> dict:
    """Video size, video and overall bits/s, and the video codec's packet count."""
    argv = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    data = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    return {
        "width": int(video["width"]),
        "height": int(video["height"]),
        "video_bit_rate": int(video.get("bit_rate") or 0),
        "bit_rate": int(data["format"]["bit_rate"]),
    }


def report(source: Path, after: dict[str, Path], before: dict[str, Path], copied: set[str]) -> dict:
    """Print one line per rendition (SSIM after vs before, bitrate vs source); returns figures."""
    src = media_facts(source)
    print(
        f"source: {src['width']}x{src['height']}, video {src['video_bit_rate'] / 1e6:.2f} Mbit/s,"
        f" overall {src['bit_rate'] / 1e6:.2f} Mbit/s"
    )
    print(f"SSIM: rendition scaled up to {src['width']}x{src['height']} (bicubic) vs the source")
    rows: dict[str, dict] = {}
    for name, path in after.items():
        facts = media_facts(path)
        row: dict = {"video_bit_rate": facts["video_bit_rate"], "bit_rate": facts["bit_rate"]}
        bitrate_ok = facts["video_bit_rate"] <= src["video_bit_rate"]
        rate = (
            f"video {facts['video_bit_rate'] / 1e6:.2f} Mbit/s ="
            f" {facts['video_bit_rate'] / src['video_bit_rate']:.2f}x the source's"
            f" {'PASS' if bitrate_ok else 'FAIL'}"
        )
        if name in copied:
            row["ssim"] = None
            print(f"  {name}: passthrough (stream copy, no re-encode); {rate}")
        else:
            new = ssim(path, source, src["width"], src["height"])
            old = ssim(before[name], source, src["width"], src["height"])
            ok = new >= old - SSIM_TOLERANCE
            row.update(ssim=new, ssim_before=old, ssim_pass=ok)
            print(
                f"  {name}: SSIM {new:.4f} vs before {old:.4f} (target >= before -"
                f" {SSIM_TOLERANCE}) {'PASS' if ok else 'FAIL'}; {rate}"
            )
        row["bitrate_pass"] = bitrate_ok
        rows[name] = row
    return rows
