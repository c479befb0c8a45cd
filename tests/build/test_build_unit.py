"""Pure logic of the build: the Dockerfile parser, word expansion,
.dockerignore patterns, stages.  No root needed."""
import pytest

from minirun.build import dockerfile, dockerignore, stages
from minirun.build.instructions import expand_ports, parse_duration
from minirun.build.lexer import LexError, Lexer
from minirun.errors import MinirunError


def parse(text):
    return dockerfile.parse(text).instructions


def test_instructions_flags_json_and_lines():
    insts = parse("FROM busybox AS b\n\n# c\nrun echo a\nCOPY --chown=1:2 --from=b a b\n"
                  "CMD [\"x\", \"y\"]\nCMD [not json\n")
    assert [(i.cmd, i.line) for i in insts] == [("FROM", 1), ("RUN", 4), ("COPY", 5),
                                                 ("CMD", 6), ("CMD", 7)]
    assert insts[2].flags == {"chown": ["1:2"], "from": ["b"]} and insts[2].rest == "a b"
    assert insts[3].json == ["x", "y"] and insts[4].json is None


def test_continuations_and_comments():
    insts = parse("FROM x\nRUN a \\\n  # comment\n\n    b \\\n c\nRUN d\n")
    assert insts[1].rest == "a     b  c" and insts[1].line == 2
    assert insts[2].line == 7


def test_escape_and_syntax_directives():
    df = dockerfile.parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN a `\n b\\\n")
    assert df.escape == "`" and df.directives["syntax"] == "docker/dockerfile:1"
    assert df.instructions[1].rest == "a  b\\"
    # a directive after a comment is only a comment
    assert dockerfile.parse("# c\n# escape=`\nFROM x\n").escape == "\\"


@pytest.mark.parametrize("text,line,message", [
    ("FROM x\nBOGUS y\n", 2, "unknown instruction: BOGUS"),
    ("FROM x\nCOPY a\n", 2, "COPY requires at least two arguments"),
    ("FROM x\nSHELL sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM x y\n", 1, "FROM requires either one or three arguments"),
    ("RUN x\n", 1, "no build stage in current context"),
    ("FROM x\nRUN --bogus=1 x\n", 2, "unknown flag: --bogus"),
    ("FROM x\nENV a\n", 2, "ENV must have two arguments"),
    ("FROM x\nENV a=1 b\n", 2, "can't find = in"),
    ("FROM x\nONBUILD FROM y\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM x\nHEALTHCHECK echo\n", 2, "HEALTHCHECK requires CMD or NONE"),
    ("# escape=x\nFROM x\n", 1, "invalid escape token"),
])
def test_errors_name_the_line(text, line, message):
    with pytest.raises(dockerfile.DockerfileError) as e:
        dockerfile.parse(text)
    assert e.value.line == line and message in str(e.value)
    assert str(e.value).startswith(f"dockerfile parse error on line {line}:")


def test_pairs_legacy_and_quoted():
    assert dockerfile.parse_pairs("ENV", "A b c") == [("A", "b c")]
    assert dockerfile.parse_pairs("ENV", 'A="x y" B=z\\ w') == [("A", '"x y"'), ("B", "z\\ w")]
    assert dockerfile.parse_pairs("ARG", "A B=1") == [("A", None), ("B", "1")]


@pytest.mark.parametrize("word,expected", [
    ("$A", "1"), ("${A}x", "1x"), ("$UNSET", ""), ("${UNSET:-d}", "d"), ("${EMPTY:-d}", "d"),
    ("${EMPTY-d}", ""), ("${A:+s}", "s"), ("${EMPTY:+s}", ""), ("${EMPTY+s}", "s"),
    ("'$A'", "$A"), ('"$A b"', "1 b"), ("\\$A", "$A"), ('"\\$A"', "$A"), ("a\\ b", "a b"),
    ("${A:-$B}", "1"), ("${UNSET:-$B}", "two"), ("$", "$"), ("$$", "$$"), ("${A:-'x y'}", "1"),
])
def test_word_expansion(word, expected):
    env = {"A": "1", "B": "two", "EMPTY": ""}
    assert Lexer().process_word(word, env) == expected


def test_words_split_on_unquoted_space_and_backtick_escape():
    assert Lexer().process_words('a "b c" d\\ e  $A', {"A": "x y"}) == ["a", "b c", "d e", "x y"]
    assert Lexer("`").process_word("C:\\dir`$A", {"A": "1"}) == "C:\\dir$A"
    with pytest.raises(LexError):
        Lexer().process_word("${A:?must be set}", {})
    with pytest.raises(LexError):
        Lexer().process_word("'open", {})


@pytest.mark.parametrize("path,excluded", [
    ("x.log", True), ("keep.log", False), ("d/x.log", False), ("secret", True),
    ("secret/a", True), ("a/b/c.tmp", True), ("c.tmp", True), ("docs/x", True),
    ("docs/a/b/x", True), ("docs/y", False), ("a/b/c", True), ("a/b/c/d", True), ("ok", False),
    ("secret/public", False),
])
def test_dockerignore(path, excluded):
    m = dockerignore.Matcher(["*.log", "!keep.log", "/secret/", "**/*.tmp", "docs/**/x",
                              "a/*/c", "!secret/public"])
    assert m.excluded(path) is excluded


def test_dockerignore_last_match_wins():
    m = dockerignore.Matcher(["*", "!app", "app/tmp"])
    assert m.excluded("README") and not m.excluded("app/x") and m.excluded("app/tmp/y")


def test_stage_graph():
    df = dockerfile.parse("ARG V=1\nFROM busybox AS a\nFROM busybox AS b\n"
                          "FROM a AS c\nCOPY --from=b x y\nFROM busybox AS d\nCOPY --from=0 x y\n")
    meta, st = stages.split(df)
    assert [i.cmd for i in meta] == ["ARG"]
    assert stages.needed(st) == (3, [0, 3])
    assert stages.needed(st, "c") == (2, [0, 1, 2])
    assert stages.needed(st, "B") == (1, [1])
    with pytest.raises(MinirunError, match="target stage nope could not be found"):
        stages.needed(st, "nope")


def test_ports_and_durations():
    assert expand_ports(["80", "53/udp", "8000-8001"], 1) == {
        "80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert parse_duration("1m30s", 1) == 90 * 10**9 and parse_duration("500ms", 1) == 5 * 10**8
    with pytest.raises(dockerfile.DockerfileError):
        parse_duration("soon", 1)
