"""Safe keys: every way a file name or key could escape its namespace, one case each."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_pipeline.storage.keys import (
    MAX_FILENAME_BYTES,
    UnsafeKey,
    key_in_namespace,
    make_key,
    namespace_of,
    safe_filename,
    validate_key,
    validate_namespace,
)

# -- file names that try to leave their directory: only the last segment survives -------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../x", "x"),
        ("a/../../x", "x"),
        ("/etc/passwd", "passwd"),
        ("C:\\x", "x"),
        ("..\\x", "x"),
        ("a\\..\\..\\windows\\win.ini", "win.ini"),
        ("%2e%2e%2fx", "x"),
        ("%2E%2E%2Fx", "x"),
        ("%252e%252e%252fx", "x"),  # double-encoded
        ("%25252e%25252e%25252fx", "x"),  # triple-encoded
        ("a%2Fb", "b"),
        ("a%5Cb", "b"),  # encoded backslash
        ("\uff0e\uff0e\uff0fx", "x"),  # fullwidth ．．／x
        ("a\uff3cb.png", "b.png"),  # fullwidth reverse solidus
        ("a\ufe68b.png", "b.png"),  # small reverse solidus (NFKC '\\')
        ("%EF%BC%8Fetc%EF%BC%8Fpasswd", "passwd"),  # percent-encoded fullwidth slash
    ],
    ids=lambda v: repr(v),
)
def test_path_parts_are_stripped(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "%252e%252e%252f",  # decodes to "../": nothing after the separator
        "dir/",
        "",
        ".",
        "..",
        "...",
        " . ",
        "\uff0e\uff0e",  # fullwidth ．．
        "\u2025",  # two dot leader, NFKC '..'
        "a/..",
        "%2e%2e",
        "%2e",
    ],
    ids=lambda v: repr(v),
)
def test_names_without_a_file_name_are_refused(name: str) -> None:
    with pytest.raises(UnsafeKey):
        safe_filename(name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("photo.php\x00.jpg", "NUL"),
        ("photo.php%00.jpg", "NUL"),  # encoded NUL
        ("a\nb.jpg", "control character U+000A"),
        ("a\rb.jpg", "control character U+000D"),
        ("a\tb.jpg", "control character U+0009"),
        ("a\x7fb.jpg", "control character U+007F"),
        ("a\x85b.jpg", "control character U+0085"),  # C1 next line
        ("a\u2028b.jpg", "control character U+2028"),  # line separator
        ("photo\u202egpj.exe", "bidirectional control U+202E"),  # displays as photoexe.jpg
        ("photo\u2067gpj.exe", "bidirectional control U+2067"),
        ("caf%E9.jpg", "not valid UTF-8"),  # Latin-1 escape
        ("x\ud800.jpg", "lone surrogate"),
        ("a%" + "25" * 20 + "2e", "too many times"),  # encoded 21 times
    ],
    ids=lambda v: repr(v),
)
def test_dangerous_characters_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(UnsafeKey, match=re.escape(reason)):
        safe_filename(name)


def test_nfd_and_nfc_names_give_the_same_key() -> None:
    nfc = unicodedata.normalize("NFC", "Café Noël.jpg")
    nfd = unicodedata.normalize("NFD", "Café Noël.jpg")
    assert nfc != nfd
    assert safe_filename(nfd) == safe_filename(nfc) == nfc
    assert make_key("blog", nfd, unique="abc") == make_key("blog", nfc, unique="abc")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("Photo [1] (copy).JPG", "Photo [1] (copy).JPG"),
        ("Фото отпуск.png", "Фото отпуск.png"),  # Cyrillic kept
        ("写真.jpeg", "写真.jpeg"),  # CJK kept
        ("صورة.png", "صورة.png"),  # Arabic kept
        ("ملف\u200cها.pdf", "ملف\u200cها.pdf"),  # zero-width non-joiner is meaningful in Persian
        (".htaccess", "htaccess"),  # no hidden files
        ("..jpg", "jpg"),
        ("name. ", "name"),  # trailing dot and space (Windows drops them)
        ("  spaced   out .png", "spaced out .png"),
        ("a\u200bb.png", "ab.png"),  # zero-width space dropped
        ("\ufeffbom.png", "bom.png"),
        ("a\u00a0b.png", "a b.png"),  # no-break space
        ("what?.png", "what_.png"),
        ('say "hi".png', "say _hi_.png"),
        ("a<b>c|d*e:f.png", "a_b_c_d_e_f.png"),
        ("100%.png", "100_.png"),
        ("frag#ment.png", "frag_ment.png"),
        ("ｆｕｌｌ％２Ｆw.png", "ｆｕｌｌ_２Ｆw.png"),  # fullwidth % never becomes an escape
        ("ns\u2215evil\u2215x.png", "ns_evil_x.png"),  # division slash looks like '/'
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT1.tar.gz", "_LPT1.tar.gz"),
        ("COM\u00b9.png", "_COM\u00b9.png"),  # superscript one: NFKC "COM1"
        ("console.png", "console.png"),
        ("a+b.png", "a+b.png"),
    ],
    ids=lambda v: repr(v),
)
def test_names_are_cleaned(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_very_long_names_are_cut_keeping_the_extension() -> None:
    name = "é" * 500 + ".jpeg"
    safe = safe_filename(name)
    assert safe.endswith(".jpeg")
    assert len(safe.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert safe.startswith("é" * 90)


def test_long_names_are_not_cut_inside_a_character_or_before_a_combining_mark() -> None:
    # q + COMBINING ACUTE has no precomposed form, so NFC keeps two characters.
    name = "q\u0301" * 300 + ".png"
    safe = safe_filename(name)
    assert len(safe.encode("utf-8")) <= MAX_FILENAME_BYTES
    stem = safe[: -len(".png")]
    assert not unicodedata.combining(stem[0]) and stem.endswith("\u0301")
    assert stem.replace("q\u0301", "") == ""


def test_a_long_name_of_only_combining_marks_keeps_a_stem() -> None:
    safe = safe_filename("\u0301" * 300 + ".png")
    assert safe.endswith(".png") and not safe.startswith(".")
    assert len(safe.encode("utf-8")) <= MAX_FILENAME_BYTES


def test_a_long_extension_is_not_treated_as_one() -> None:
    name = "x." + "a" * 300
    safe = safe_filename(name)
    assert len(safe.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert safe.startswith("x.aaa")


def test_non_string_names_are_refused() -> None:
    with pytest.raises(UnsafeKey, match="must be a string"):
        safe_filename(b"x.png")  # type: ignore[arg-type]


# -- properties: whatever comes in, the output is one safe, stable segment --------------------

NAMES = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("./\\%2eEfF5cC\u202e\uff0e\uff0f\u2215 ")),
    ),
    max_size=300,
)


@settings(max_examples=400, deadline=None)
@given(NAMES)
def test_output_is_a_single_safe_stable_segment(name: str) -> None:
    try:
        safe = safe_filename(name)
    except UnsafeKey:
        return
    assert safe and "/" not in safe and "\\" not in safe and "%" not in safe
    folded = unicodedata.normalize("NFKC", safe)
    assert "/" not in folded and "\\" not in folded
    assert not folded.startswith(".") and folded.strip(". ") != ""
    assert not any(unicodedata.category(c) in {"Cc", "Cs", "Zl", "Zp"} for c in safe)
    assert len(safe.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert unicodedata.is_normalized("NFC", safe)
    assert safe_filename(safe) == safe
    key = make_key("ns1", name, unique="0123456789ab")
    assert key_in_namespace(key, "ns1") and not key_in_namespace(key, "ns")
    assert validate_key(key) == key and namespace_of(key) == "ns1"


# -- namespaces, layout and membership ---------------------------------------------------------


@pytest.mark.parametrize("name", ["blog", "a", "0", "team-a", "team_b", "v1.2", "a" * 63])
def test_valid_namespaces(name: str) -> None:
    assert validate_namespace(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Blog", "a/b", "..", "a..b", ".hidden", "-dash", "_under", "a" * 64, "ns ", "ns\n",
     "café", "ns%2F", "\uff41"],
    ids=lambda v: repr(v),
)
def test_invalid_namespaces(name: str) -> None:
    with pytest.raises(UnsafeKey, match="namespace"):
        validate_namespace(name)


def test_make_key_layout() -> None:
    assert make_key("blog", "../Team Photo.JPG", unique="3f2a9c1b7d4e") == (
        "blog/3f2a9c1b7d4e/Team Photo.JPG")
    assert make_key("blog", "a/b/logo.png") == "blog/logo.png"


@pytest.mark.parametrize("unique", ["", "../x", "a/b", "x" * 65, "é", "-start"])
def test_make_key_refuses_unsafe_unique_segments(unique: str) -> None:
    with pytest.raises(UnsafeKey, match="unique"):
        make_key("blog", "x.png", unique=unique)


def test_make_key_refuses_a_bad_namespace() -> None:
    with pytest.raises(UnsafeKey, match="namespace"):
        make_key("../etc", "x.png")


@pytest.mark.parametrize(
    ("key", "namespace", "inside"),
    [
        ("ns1/a.png", "ns1", True),
        ("ns1/abc/a.png", "ns1", True),
        ("ns10/a.png", "ns1", False),  # a longer namespace with the same prefix
        ("ns1", "ns1", False),
        ("ns1/", "ns1", False),
        ("ns1a.png", "ns1", False),
        ("NS1/a.png", "ns1", False),
        ("ns1/../ns2/a.png", "ns1", False),
        ("ns1/./a.png", "ns1", False),
        ("ns1//a.png", "ns1", False),
        ("ns1/a/..", "ns1", False),
        ("ns1/%2e%2e/ns2/a.png", "ns1", False),
        ("ns1/%252e%252e/a.png", "ns1", False),
        ("ns1/a%2F..%2Fb.png", "ns1", False),
        ("ns1/\uff0e\uff0e/a.png", "ns1", False),
        ("ns1/..\\ns2\\a.png", "ns1", False),
        ("ns1/a\x00.png", "ns1", False),
        ("ns1/a.png", "../ns1", False),
        ("ns1/a.png", "", False),
        ("/ns1/a.png", "ns1", False),
    ],
    ids=lambda v: repr(v),
)
def test_key_in_namespace(key: str, namespace: str, inside: bool) -> None:
    assert key_in_namespace(key, namespace) is inside


@pytest.mark.parametrize(
    ("key", "namespace"),
    [("blog/a/b.png", "blog"), ("b.png", "default"), ("/b.png", ""), ("x/", "x")],
)
def test_namespace_of_follows_the_catalog_rule(key: str, namespace: str) -> None:
    assert namespace_of(key) == namespace


@pytest.mark.parametrize(
    "key", ["x.png", "Bad/x.png", "ns/../x.png", "ns//x.png", "ns/" + "a" * 1100, "ns/a\nb"],
    ids=lambda v: repr(v[:30]),
)
def test_validate_key_refuses_keys_we_would_not_write(key: str) -> None:
    with pytest.raises(UnsafeKey):
        validate_key(key)
