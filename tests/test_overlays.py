"""Overlays: the pure filter builder, its escaping, and what real FFmpeg draws with it.

No text reaches the filtergraph (drawtext reads a file, expansion=none); what does reach it
(paths, numbers, colours) is escaped for FFmpeg's two parsing levels. The escaping is checked
purely (a model of FFmpeg's tokenizer must read every value back exactly) and for real: text
full of metacharacters, read from a file under a directory whose name is full of them, draws
exactly what a trusted, hand-written textfile= command draws.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vasset.assets.jobs import frame_size
from vasset.transcode import commands, ladder, overlays

CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
LATIN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
NASTY = "q'uote d\"q co:lon co,mma se;mi [br]ack back\\slash %{pts} %{localtime} = sp ace"
METAS = "\\':[],; =%{}\"\n"

needs_fonts = pytest.mark.skipif(
    not (CJK_FONT.is_file() and LATIN_FONT.is_file()),
    reason="fonts-noto-cjk and fonts-dejavu-core are needed (./dev installs them)",
)


# ---- a model of FFmpeg's tokenizer (libavutil av_get_token), to read the escaping back


def get_token(text: str, term: str) -> tuple[str, str]:
    """(token, rest) the way av_get_token reads text up to an unescaped char of term."""
    i = 0
    while i < len(text) and text[i] in " \n\t\r":
        i += 1
    out: list[str] = []
    end = 0
    while i < len(text) and text[i] not in term:
        c = text[i]
        i += 1
        if c == "\\" and i < len(text):
            out.append(text[i])
            i += 1
            end = len(out)
        elif c == "'":
            while i < len(text) and text[i] != "'":
                out.append(text[i])
                i += 1
            if i < len(text):
                i += 1
                end = len(out)
        else:
            out.append(c)
    while len(out) > end and out[-1] in " \n\t\r":
        out.pop()
    return "".join(out), text[i:]


def parse_filter(escaped: str) -> tuple[str, dict[str, str]]:
    """A filter as FFmpeg reads it: graph level ([],;), then its options (key=value:...)."""
    whole, rest = get_token(escaped, "[],;")
    assert rest == "", f"the filter ended early at {rest!r}"
    name, _, args = whole.partition("=")
    options: dict[str, str] = {}
    while args:
        key, _, args = args.partition("=")
        value, args = get_token(args, ":")
        options[key] = value
        args = args[1:] if args.startswith(":") else args
    return name, options


# ---- pure


@pytest.mark.parametrize("meta", list("\\':[],; =%{}\""))
@pytest.mark.parametrize("where", ["start", "middle", "end", "alone", "double"])
def test_every_metacharacter_in_every_position_reads_back_exactly(meta, where):
    value = {
        "start": f"{meta}abc",
        "middle": f"ab{meta}c",
        "end": f"abc{meta}",
        "alone": meta,
        "double": f"a{meta}{meta}b",
    }[where]
    path = f"/tmp/x{value}/font.ttc"
    escaped = overlays.filter_text("drawtext", [("fontfile", path), ("textfile", value)])
    assert parse_filter(escaped) == ("drawtext", {"fontfile": path, "textfile": value})


def test_escaping_of_each_level_is_exact():
    assert overlays.escape_option("a\\b'c:d e") == "a\\\\b\\'c\\:d\\ e"
    assert overlays.escape_option("x,y;z[w]") == "x,y;z[w]"  # graph-level characters
    assert overlays.escape_filter("a\\b'c[d]e,f;g h") == "a\\\\b\\'c\\[d\\]e\\,f\\;g\\ h"
    assert overlays.escape_filter("k=v:w") == "k=v:w"  # option-level characters
    # The FFmpeg documentation's own example of two-level escaping.
    doc = "this is a 'string': may contain one, or more, special characters"
    assert (
        overlays.filter_text("drawtext", [("text", doc)])
        == "drawtext=text=this\\\\\\ is\\\\\\ a\\\\\\ \\\\\\'string\\\\\\'\\\\:\\\\\\ may\\\\\\ "
        "contain\\\\\\ one\\,\\\\\\ or\\\\\\ more\\,\\\\\\ special\\\\\\ characters"
    )
    assert parse_filter(overlays.filter_text("drawtext", [("text", doc)]))[1]["text"] == doc


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "tab\there", "nul\x00", "del\x7f"])
def test_control_characters_never_reach_a_filter(bad):
    with pytest.raises(ValueError):
        overlays.escape_option(bad)


@pytest.mark.parametrize(
    "colour", ["white", "#fff", "#ffffff:x", "#ffffff'", "0xffffff", "#gggggg", "#ffffff,1"]
)
def test_colours_are_hex_only(colour):
    with pytest.raises(ValueError):
        overlays.colour_value(colour)
    assert overlays.colour_value("#A0b1C2") == "0xA0b1C2"
    assert overlays.colour_value("#a0b1c2ff") == "0xa0b1c2ff"


def _text(**over) -> overlays.TextPlan:
    fields = {
        "textfile": "/w/t.txt",
        "fontfile": "/f/font.ttc",
        "size": 20,
        "margin": 8,
        "position": "bottom-left",
        "colour": "#ffffff",
    }
    return overlays.TextPlan(**{**fields, **over})


def test_drawtext_names_files_and_numbers_only():
    name, opts = parse_filter(overlays.drawtext_filter(_text(start_ms=1500, end_ms=4000)))
    assert name == "drawtext"
    assert opts == {
        "fontfile": "/f/font.ttc",
        "textfile": "/w/t.txt",
        "expansion": "none",
        "fontsize": "20",
        "fontcolor": "0xffffff",
        "x": "8",
        "y": "h-th-8",
        "enable": "between(t,1.5,4)",
    }
    assert "enable" not in parse_filter(overlays.drawtext_filter(_text()))[1]
    assert parse_filter(overlays.drawtext_filter(_text(start_ms=250)))[1]["enable"] == (
        "gte(t,0.25)"
    )


@pytest.mark.parametrize(
    ("position", "x", "y"),
    [
        ("top-left", "10", "10"),
        ("top-right", "main_w-overlay_w-10", "10"),
        ("bottom-left", "10", "main_h-overlay_h-10"),
        ("bottom-right", "main_w-overlay_w-10", "main_h-overlay_h-10"),
        ("center", "(main_w-overlay_w)/2", "(main_h-overlay_h)/2"),
    ],
)
def test_watermark_positions(position, x, y):
    plan = overlays.plan_overlays(500, 300, watermark_path="/w/wm.png", wm_position=position)
    assert plan is not None and plan.watermark is not None
    assert plan.watermark.width == 76  # 15 % of 500, even
    graph = overlays.apply(["[0:v:0]null[c]"], "0:v:0", plan)
    assert graph[0] == "[1:v]scale=w=76:h=-2,format=pix_fmts=rgba[wm]"
    filters = graph[1].removeprefix("[0:v:0][wm]").removesuffix(",null[c]")
    assert parse_filter(filters) == (
        "overlay",
        {"x": x, "y": y, "eof_action": "repeat"},
    )


def test_overlays_go_before_the_split_and_fade_only_when_asked():
    plan = overlays.plan_overlays(
        1280,
        720,
        watermark_path="/w/wm.png",
        wm_opacity=0.4,
        wm_scale=0.2,
        wm_margin=0.05,
        text_file="/w/t.txt",
        font_file="/f/font.ttc",
        text_size=0.1,
    )
    assert plan is not None
    base = ["[0:v:0]fps=60,split=2[c][snap]", "[c]scale=640:360[v0]"]
    graph = overlays.apply(base, "0:v:0", plan)
    assert graph[0].endswith("colorchannelmixer=aa=0.4[wm]") and "w=256" in graph[0]
    assert graph[1].startswith("[0:v:0][wm]overlay=x=main_w-overlay_w-64:y=64:")
    assert ",drawtext=" in graph[1] and "fontsize=72" in graph[1]
    assert graph[1].endswith(",fps=60,split=2[c][snap]") and graph[2:] == base[1:]
    assert overlays.plan_overlays(640, 360) is None
    with pytest.raises(ValueError):
        overlays.apply(["[1:v]null[c]"], "0:v:0", plan)


def test_build_transcode_adds_the_watermark_input_after_the_source():
    plans = ladder.plan_ladder(640, 360, 0, "240p,360p")
    plan = overlays.plan_overlays(640, 360, watermark_path="/w/wm.png")
    cmd = commands.build_transcode(
        "/s/src.mp4", plans, "/o", has_audio=True, frame_rate=25, overlay=plan
    )
    inputs = [cmd.argv[i + 1] for i, a in enumerate(cmd.argv) if a == "-i"]
    assert inputs == ["/s/src.mp4", "/w/wm.png"]
    at = cmd.argv.index("/w/wm.png")
    assert cmd.argv[at - 7 : at] == [
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        "png_pipe",
        "-f",
        "png_pipe",
        "-i",
    ]
    graph = cmd.argv[cmd.argv.index("-filter_complex") + 1]
    assert graph.startswith("[1:v]scale=") and "[0:v:0][wm]overlay=" in graph
    # the scale chain still feeds every rendition from the overlaid decode
    assert graph.count("scale=") == 3


def test_frame_size_turns_with_rotation():
    class Info:
        width, height, rotation = 1920, 1080, 90

    assert frame_size(Info()) == (1080, 1920)  # type: ignore[arg-type]
    Info.rotation = 180
    assert frame_size(Info()) == (1920, 1080)  # type: ignore[arg-type]


# ---- real FFmpeg


def _frames(
    graph: str, *extra_inputs: str, size: str = "480x270", seconds: float = 0.4
) -> list[str]:
    """framemd5 hashes of a black clip run through graph ([0:v] in, [o] out)."""
    argv = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"color=c=black:s={size}:r=5:d={seconds}",
        *extra_inputs,
        "-filter_complex",
        graph,
        "-map",
        "[o]",
        "-f",
        "framemd5",
        "-",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.rsplit(",", 1)[1].strip() for line in out.stdout.splitlines() if line[:1] != "#"]


@needs_fonts
def test_metacharacter_text_from_a_metacharacter_path_draws_exactly_the_reference(tmp_path):
    nasty_dir = tmp_path / "d'ir: [x],y; z\\w %{n}="
    nasty_dir.mkdir()
    font = nasty_dir / "fo'nt:,.ttc"
    shutil.copyfile(CJK_FONT, font)
    text = NASTY + "\nsecond line 'two' \\n not-a-newline"
    textfile = nasty_dir / "te:xt,[1];'.txt"
    textfile.write_bytes(text.encode())
    plan = _text(textfile=str(textfile), fontfile=str(font), size=16, position="top-left")
    drawn = _frames(f"[0:v]{overlays.drawtext_filter(plan)}[o]")

    # The trusted reference: written by hand, clean paths, the same bytes in the file.
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copyfile(CJK_FONT, clean / "font.ttc")
    (clean / "ref.txt").write_bytes(text.encode())
    reference = _frames(
        f"[0:v]drawtext=fontfile={clean}/font.ttc:textfile={clean}/ref.txt:expansion=none"
        ":fontsize=16:fontcolor=0xffffff:x=8:y=8[o]"
    )
    assert drawn == reference
    # ... and it is not blank, and it is not what the same text looks like once expanded.
    blank = _frames("[0:v]null[o]")
    assert drawn[0] != blank[0]
    expanded = _frames(
        f"[0:v]drawtext=fontfile={clean}/font.ttc:textfile={clean}/ref.txt:expansion=normal"
        ":fontsize=16:fontcolor=0xffffff:x=8:y=8[o]"
    )
    assert expanded[-1] != drawn[-1]


@needs_fonts
def test_cjk_text_is_drawn_with_real_glyphs_not_tofu(tmp_path):
    def draw(font: Path, text: str) -> str:
        path = tmp_path / f"t{abs(hash((str(font), text)))}.txt"
        path.write_bytes(text.encode())
        plan = _text(textfile=str(path), fontfile=str(font), size=40, position="center")
        return _frames(f"[0:v]{overlays.drawtext_filter(plan)}[o]", seconds=0.2)[0]

    blank = _frames("[0:v]null[o]", seconds=0.2)[0]
    hello = draw(CJK_FONT, "你好，世界")
    assert hello != blank
    # A font without CJK draws every one of these characters as the same box (tofu);
    # the CJK font draws different characters differently.
    assert draw(LATIN_FONT, "你") == draw(LATIN_FONT, "界")
    assert draw(CJK_FONT, "你") != draw(CJK_FONT, "界")
    assert hello != draw(LATIN_FONT, "你好，世界")


def test_watermark_and_text_in_a_real_ladder_run(tmp_path):
    src = tmp_path / "src.mp4"
    wm = tmp_path / "wm.png"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=320x180:r=10:d=1.2",
            "-pix_fmt",
            "yuv420p",
            str(src),
        ],
        check=True,
    )
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=white:s=40x20",
            "-frames:v",
            "1",
            str(wm),
        ],
        check=True,
    )
    plans = ladder.plan_ladder(320, 180, 0, "240p")
    plan = overlays.plan_overlays(
        320, 180, watermark_path=str(wm), wm_position="top-left", wm_margin=0.0, wm_scale=0.25
    )
    cmd = commands.build_transcode(
        src, plans, tmp_path / "out", has_audio=False, frame_rate=10, hls=False, overlay=plan
    )
    cmd.make_directories()
    subprocess.run(cmd.argv, check=True, capture_output=True, timeout=120)
    out = tmp_path / "last.rgb"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-sseof",
            "-0.15",
            "-i",
            cmd.outputs[0].mp4_path,
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            str(out),
        ],
        check=True,
    )
    pixels = out.read_bytes()
    assert len(pixels) == 320 * 180
    # the last frame still shows the (single-frame) watermark: white top-left, black elsewhere
    assert pixels[5 * 320 + 5] > 200 and pixels[150 * 320 + 300] < 40
