"""`.dockerignore`: moby's patternmatcher rules.

One pattern a line; `#` lines are comments; patterns are cleaned like Go's
filepath.Clean and a leading `/` is dropped.  `*` matches within one path
element, `?` one character, `[...]` a class, `**` any number of elements
(also none), `\\` escapes.  A pattern matching a directory matches all under
it.  Patterns apply in order; a later `!pattern` re-includes what it matches,
so the last matching pattern decides.
"""
import os
import posixpath
import re


def read_patterns(context_dir):
    try:
        with open(os.path.join(context_dir, ".dockerignore"), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def _clean(pattern):
    cleaned = posixpath.normpath(pattern)
    if cleaned.startswith("/"):
        cleaned = cleaned.lstrip("/") or "."
    return cleaned


def _regex(pattern):
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                if pattern[i + 1:i + 2] == "/":
                    i += 1
                if i + 1 >= len(pattern):
                    out.append(".*")  # a trailing **: everything (as .gitignore)
                else:
                    out.append("(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"bad pattern {pattern!r}: unclosed [")
            body = pattern[i + 1:end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


class Matcher:
    def __init__(self, patterns):
        self.rules = []
        for p in patterns:
            exclusion = p.startswith("!")
            if exclusion:
                p = p[1:].strip()
            if not p:
                raise ValueError("illegal exclusion pattern: \"!\"")
            p = _clean(p)
            self.rules.append((exclusion, _regex(p), p.count("/") + 1))
        self.has_exclusions = any(ex for ex, _, _ in self.rules)

    def excluded(self, path):
        """True when `path` (relative, '/'-separated) is ignored."""
        if not self.rules:
            return False
        parents = path.split("/")
        matched = False
        for exclusion, regex, depth in self.rules:
            if exclusion != matched:
                continue  # this rule cannot change the answer
            hit = bool(regex.match(path))
            if not hit and len(parents) > 1:
                # A pattern matching a parent directory matches all below it.
                for n in range(1, len(parents)):
                    if regex.match("/".join(parents[:n])):
                        hit = True
                        break
            if hit:
                matched = not exclusion
        return matched

    def may_contain_included(self, dirpath):
        """Whether an ignored directory can still hold re-included files (so
        its walk cannot be skipped)."""
        if not self.has_exclusions:
            return False
        for exclusion, regex, _ in self.rules:
            if exclusion:
                # Conservative: any exclusion rule whose literal prefix lies
                # within (or above) this directory.
                prefix = regex.pattern[1:].split("[")[0].split("(")[0].replace("\\", "")
                prefix = prefix.rstrip("$")
                if (prefix.startswith(dirpath + "/") or dirpath.startswith(prefix)
                        or not prefix):
                    return True
        return False
