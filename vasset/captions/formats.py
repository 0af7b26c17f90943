"""Caption files (pure): detect WebVTT or SRT, validate cue timings, convert SRT to WebVTT.

What is stored is always WebVTT, UTF-8, ``\\n`` line ends. A WebVTT body is kept as sent
(styles, regions, notes and cue settings survive) once every cue's timing parses; an SRT body
is rewritten cue by cue. Language tags and labels are checked here too: both end up inside the
HLS master playlist (``LANGUAGE="..."``, ``NAME="..."``), so neither may carry a quote.
"""

from __future__ import annotations

import re

import msgspec

from vasset import errors

#: A BCP-47-shaped tag: a 2-3 letter language, then up to four subtags (script, region, ...).
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}\Z")
MAX_LANG = 35
MAX_LABEL = 128
# HH:MM:SS.mmm or MM:SS.mmm (WebVTT; hours may be longer than two digits).
_VTT_TIME = r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_VTT_TIMING = re.compile(rf"^{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}(?:[ \t]+(.*))?\Z")
# SRT: HH:MM:SS,mmm (a '.' is common enough to accept); coordinates after the end are dropped.
_SRT_TIME = r"(\d{1,3}):([0-5]?\d):([0-5]?\d)[,.](\d{1,3})"
_SRT_TIMING = re.compile(rf"^{_SRT_TIME}[ \t]*-->[ \t]*{_SRT_TIME}(?:[ \t].*)?\Z")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_NAMES = {
    "ar": "العربية",
    "de": "Deutsch",
    "en": "English",
    "es": "Español",
    "fr": "Français",
    "hi": "हिन्दी",
    "id": "Bahasa Indonesia",
    "it": "Italiano",
    "ja": "日本語",
    "ko": "한국어",
    "nl": "Nederlands",
    "pl": "Polski",
    "pt": "Português",
    "ru": "Русский",
    "th": "ไทย",
    "tr": "Türkçe",
    "uk": "Українська",
    "vi": "Tiếng Việt",
    "zh": "中文",
    "zh-Hans": "简体中文",
    "zh-Hant": "繁體中文",
}


class Captions(msgspec.Struct, frozen=True):
    """A validated caption file: WebVTT text, what it was sent as, and its cue count."""

    vtt: str
    source_format: str  # "vtt" or "srt"
    cues: int


def canonical_lang(value: str) -> str:
    """The tag in BCP-47's conventional case (en, zh-Hans, pt-BR), or InvalidParameter."""
    if len(value) > MAX_LANG or not _LANG.match(value):
        raise errors.InvalidParameter(
            "lang must be a BCP-47 language tag such as en, pt-BR or zh-Hans", parameter="lang"
        )
    first, *rest = value.split("-")
    parts = [first.lower()]
    for sub in rest:
        if len(sub) == 4 and sub.isalpha():
            parts.append(sub.title())  # script
        elif len(sub) == 2 and sub.isalpha():
            parts.append(sub.upper())  # region
        else:
            parts.append(sub.lower())
    return "-".join(parts)


def label_for(lang: str, label: str | None) -> str:
    """The label players show: as given (checked), else a name for the language, else the tag."""
    if label is None or label == "":
        return _NAMES.get(lang) or _NAMES.get(lang.split("-", 1)[0]) or lang
    if (
        len(label) > MAX_LABEL
        or not label.isprintable()
        or '"' in label
        or label.strip() != label
        or not label
    ):
        raise errors.InvalidParameter(
            f"label must be 1-{MAX_LABEL} printable characters without quotes or edge spaces",
            parameter="label",
        )
    return label


def _invalid(message: str) -> errors.InvalidCaptions:
    return errors.InvalidCaptions(message)


def _text_of(body: bytes) -> str:
    """UTF-8 text (a BOM dropped) with \\n line ends, or InvalidCaptions."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"captions must be UTF-8 (byte {exc.start} is not)") from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise _invalid("captions must not contain NUL characters")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _ms(hours: str | None, minutes: str, seconds: str, millis: str) -> int:
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


def _check_count(cues: int, max_cues: int) -> None:
    if cues == 0:
        raise _invalid("the file has no cues")
    if cues > max_cues:
        raise _invalid(f"the file has more than {max_cues} cues")


def parse_vtt(text: str, max_cues: int) -> int:
    """Cue count of a WebVTT text, or InvalidCaptions naming the first bad line."""
    header = text.split("\n", 1)[0]
    if not re.match(r"^WEBVTT(?:[ \t].*)?\Z", header):
        raise _invalid("a WebVTT file must start with a WEBVTT line")
    blocks = _BLANK_LINES.split(text.strip("\n"))
    if "-->" in blocks[0]:
        raise _invalid("the WEBVTT header must be followed by a blank line before cues")
    cues = 0
    line_no = blocks[0].count("\n") + 3  # the first line after the header and a blank one
    for block in blocks[1:]:
        lines = block.split("\n")
        first = lines[0]
        if first.startswith("NOTE") and (len(first) == 4 or first[4] in " \t"):
            pass  # a comment
        elif first in ("STYLE", "REGION") and cues == 0:
            pass  # style and region blocks precede the cues
        else:
            # A cue's timing is its first line, or its second after an identifier.
            timing_at = 0 if "-->" in first or len(lines) < 2 or "-->" not in lines[1] else 1
            _vtt_timing(lines[timing_at], line_no + timing_at)
            for offset, payload in enumerate(lines[timing_at + 1 :], timing_at + 1):
                if "-->" in payload:
                    raise _invalid(f"line {line_no + offset}: '-->' inside cue text")
            cues += 1
            if cues > max_cues:
                break
        line_no += block.count("\n") + 2
    _check_count(cues, max_cues)
    return cues


def _vtt_timing(line: str, line_no: int) -> None:
    match = _VTT_TIMING.match(line.strip())
    if not match:
        raise _invalid(f"line {line_no}: bad cue timing {line[:60]!r}")
    g = match.groups()
    start, end = _ms(*g[0:4]), _ms(*g[4:8])
    if end < start:
        raise _invalid(f"line {line_no}: cue ends before it starts")


def _srt_time(hours: str, minutes: str, seconds: str, millis: str) -> tuple[int, str]:
    ms = millis.ljust(3, "0")
    total = _ms(hours, minutes, seconds, ms)
    h, rest = divmod(total, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, rest = divmod(rest, 1000)
    return total, f"{h:02d}:{m:02d}:{s:02d}.{rest:03d}"


def srt_to_vtt(text: str, max_cues: int) -> tuple[str, int]:
    """WebVTT text and cue count of an SRT text, or InvalidCaptions naming the first bad line."""
    out = ["WEBVTT", ""]
    cues = 0
    line_no = 1
    stripped = text.strip("\n")
    line_no += len(text) - len(text.lstrip("\n"))
    for block in _BLANK_LINES.split(stripped) if stripped else []:
        lines = block.split("\n")
        timing_at = 1 if lines[0].strip().isdigit() and len(lines) > 1 else 0
        match = _SRT_TIMING.match(lines[timing_at].strip())
        if not match:
            raise _invalid(
                f"line {line_no + timing_at}: bad SRT timing {lines[timing_at][:60]!r}"
                " (expected 00:00:01,000 --> 00:00:02,000)"
            )
        g = match.groups()
        (start, first), (end, last) = _srt_time(*g[0:4]), _srt_time(*g[4:8])
        if end < start:
            raise _invalid(f"line {line_no + timing_at}: cue ends before it starts")
        payload = lines[timing_at + 1 :]
        for offset, line in enumerate(payload, timing_at + 1):
            if "-->" in line:
                raise _invalid(f"line {line_no + offset}: '-->' inside cue text")
        cues += 1
        if cues > max_cues:
            break
        out += [f"{first} --> {last}", *payload, ""]
        line_no += block.count("\n") + 2
    _check_count(cues, max_cues)
    return "\n".join(out), cues


def looks_like_vtt(text: str) -> bool:
    """Whether a body claims to be WebVTT (its first line starts with WEBVTT)."""
    return text.startswith("WEBVTT")


def parse_captions(body: bytes, max_cues: int) -> Captions:
    """A WebVTT or SRT body as validated WebVTT, or InvalidCaptions saying what is wrong."""
    text = _text_of(body)
    if looks_like_vtt(text):
        cues = parse_vtt(text, max_cues)
        vtt = text if text.endswith("\n") else text + "\n"
        return Captions(vtt=vtt, source_format="vtt", cues=cues)
    if not text.strip():
        raise _invalid("the body is empty; send a WebVTT or SRT file")
    vtt, cues = srt_to_vtt(text, max_cues)
    return Captions(vtt=vtt, source_format="srt", cues=cues)
