"""The Dockerfile parser (the rules of moby's frontend/dockerfile/parser).

    # syntax=...          parser directives: only at the very top, before any
    # escape=`            comment, blank line or instruction; syntax is
                          accepted and ignored, escape is \\ or `
    # a comment           a line whose first non-blank character is #
    RUN a \\              the escape character at the end of a line joins the
        b                 next one (comment lines inside are dropped)
    COPY --chown=1 a b    --flags come right after the instruction name
    CMD ["a", "b"]        exec form: a JSON array of strings

Everything here is syntax; values are expanded when the step runs (lexer.py),
because they depend on ENV and ARG.  Every error names its line.
"""
import json
import re

from minirun.errors import MinirunError

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
                "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL",
                "USER", "VOLUME", "WORKDIR")
# --flags each instruction accepts (others are an error, as in Docker).
FLAGS = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "RUN": {"network", "mount", "security"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
# BuildKit-only flags: refused rather than silently ignored (their meaning
# would be lost).  COPY --link changes how layers are made, not what they hold.
UNSUPPORTED_FLAGS = {"RUN": ("mount", "security"), "COPY": ("parents", "exclude"),
                     "ADD": ("checksum", "keep-git-dir", "exclude")}
JSON_FORM = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"^--([a-zA-Z][a-zA-Z0-9-]*)(?:=(.*))?$")


class DockerfileError(MinirunError):
    def __init__(self, line, message):
        super().__init__(f"dockerfile parse error on line {line}: {message}")
        self.line = line


class Instruction:
    """One instruction: cmd (upper case), flags, the text after them (rest),
    the exec-form list when it is a JSON array, and where it came from."""

    def __init__(self, cmd, rest, flags, line, original, json_args=None):
        self.cmd = cmd
        self.rest = rest
        self.flags = flags
        self.line = line
        self.original = original
        self.json = json_args

    def __repr__(self):
        return f"Instruction({self.cmd} {self.rest!r} line {self.line})"


class Dockerfile:
    def __init__(self, instructions, escape, directives):
        self.instructions = instructions
        self.escape = escape
        self.directives = directives


def parse(text):
    """Parse Dockerfile text (str) into a Dockerfile."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    directives = {}
    n = 0
    while n < len(lines):  # directives: only the first lines, each at most once
        m = _DIRECTIVE.match(lines[n].rstrip("\r"))
        if not m or m.group(1).lower() not in ("escape", "syntax", "check"):
            break
        key = m.group(1).lower()
        if key in directives:
            raise DockerfileError(n + 1, f"only one {key} parser directive can be used")
        directives[key] = m.group(2)
        n += 1
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(1, f"invalid escape token '{escape}' does not match ` or \\")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    out = []
    while n < len(lines):
        start = n
        line = lines[n].rstrip("\r")
        n += 1
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        text_line = stripped
        while continuation.search(text_line):
            text_line = continuation.sub("", text_line)
            joined = False
            while n < len(lines):
                nxt = lines[n].rstrip("\r")
                n += 1
                if nxt.lstrip(" \t").startswith("#"):
                    continue
                if not nxt.strip():
                    continue  # Docker warns about empty continuation lines, then goes on
                text_line += nxt
                joined = True
                break
            if not joined:
                break
        out.append(_instruction(text_line, start + 1))
    if not out:
        raise DockerfileError(1, "file with no instructions")
    if out[0].cmd not in ("FROM", "ARG"):
        raise DockerfileError(out[0].line, "no build stage in current context: the first "
                                           "instruction must be FROM (or ARG before FROM)")
    return Dockerfile(out, escape, directives)


def _instruction(text, line):
    word, _, rest = text.strip().partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    cmd = word.upper()
    if cmd not in INSTRUCTIONS:
        raise DockerfileError(line, f"unknown instruction: {word}")
    rest = rest.strip()
    flags = {}
    allowed = FLAGS.get(cmd, set())
    while rest.startswith("--") and cmd in FLAGS:
        token, _, after = rest.partition(" ")
        m = _FLAG.match(token)
        if not m:
            raise DockerfileError(line, f"{cmd}: bad flag {token!r}")
        name, value = m.group(1), m.group(2)
        if name not in allowed:
            raise DockerfileError(line, f"unknown flag: --{name}")
        if value is None:
            value = "true"
        if name in UNSUPPORTED_FLAGS.get(cmd, ()):
            raise DockerfileError(line, f"{cmd} --{name} is not supported by minirun build")
        flags.setdefault(name, []).append(value)
        rest = after.strip()
    json_args = None
    if cmd in JSON_FORM and rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
            json_args = parsed
    inst = Instruction(cmd, rest, flags, line, text.strip(), json_args)
    _check(inst)
    return inst


def _check(inst):
    """Structural checks that need no variables."""
    cmd, rest, line = inst.cmd, inst.rest, inst.line
    if cmd == "SHELL" and inst.json is None:
        raise DockerfileError(line, "SHELL requires the arguments to be in JSON form")
    if cmd == "SHELL" and not inst.json:
        raise DockerfileError(line, "SHELL requires at least one argument")
    needs_args = {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "MAINTAINER",
                  "ONBUILD", "RUN", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "HEALTHCHECK"}
    if cmd in needs_args and not rest:
        raise DockerfileError(line, f"{cmd} requires at least one argument")
    if cmd in ("COPY", "ADD"):
        count = len(inst.json) if inst.json is not None else len(rest.split())
        if count < 2:
            raise DockerfileError(line, f"{cmd} requires at least two arguments, but only "
                                        f"one was provided. Destination could not be determined")
    if cmd == "FROM":
        words = rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
            raise DockerfileError(line, "FROM requires either one or three arguments "
                                        "(FROM image [AS name])")
    if cmd == "ONBUILD":
        sub = rest.split(None, 1)[0].upper()
        if sub in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(line, f"{sub} isn't allowed as an ONBUILD trigger")
        _instruction(rest, line)
    if cmd == "HEALTHCHECK":
        word = rest.split(None, 1)[0].upper()
        if word not in ("NONE", "CMD"):
            raise DockerfileError(line, "HEALTHCHECK requires CMD or NONE")
        if word == "NONE" and (inst.flags or len(rest.split()) > 1):
            raise DockerfileError(line, "HEALTHCHECK NONE takes no arguments")
        if word == "CMD" and not rest[3:].strip():
            raise DockerfileError(line, "HEALTHCHECK CMD requires a command")
    if cmd == "ARG" and inst.rest.split()[0].startswith("="):
        raise DockerfileError(line, "ARG requires a name")
    if cmd in ("ENV", "LABEL"):
        try:
            parse_pairs(cmd, rest)
        except MinirunError as e:
            raise DockerfileError(line, str(e)) from None


def split_unquoted(text, escape="\\"):
    """Words separated by unquoted whitespace, quotes and escapes kept
    (moby's parseWords: the values are processed later)."""
    words, cur, quote, i = [], [], None, 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch in " \t":
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        if ch == escape and i + 1 < len(text) and quote != "'":
            cur.append(ch + text[i + 1])
            i += 2
            continue
        if quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
        cur.append(ch)
        i += 1
    if quote:
        raise MinirunError(f"unmatched {quote} quote")
    if cur:
        words.append("".join(cur))
    return words


def parse_pairs(cmd, rest, escape="\\"):
    """ENV/LABEL/ARG arguments -> [(key, raw value or None)], values unprocessed.
    `ENV key value words` (no =) is the legacy one-pair form."""
    words = split_unquoted(rest, escape)
    if not words:
        raise MinirunError(f"{cmd} requires at least one argument")
    if "=" not in words[0] and cmd in ("ENV", "LABEL"):
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise MinirunError(f"{cmd} must have two arguments")
        return [(parts[0], parts[1].strip())]
    out = []
    for word in words:
        key, eq, value = word.partition("=")
        if not key:
            raise MinirunError(f"{cmd} names can not be blank")
        if not eq:
            if cmd != "ARG":
                raise MinirunError(f"{cmd} {word}: syntax error - can't find = in \"{word}\". "
                                   f"Must be of the form: name=value")
            out.append((key, None))
        else:
            out.append((key, value))
    return out
