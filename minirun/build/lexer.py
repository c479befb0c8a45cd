"""Docker's word processing for Dockerfile arguments (moby's shell/lex.go).

Quotes are removed, the escape character protects the next character, and
`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
`${VAR:?msg}` are replaced from the environment given.  Nothing else of a
shell is interpreted: no command substitution, no globbing.  Instructions
that Docker expands this way: ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER
VOLUME WORKDIR ARG (and the flags of COPY/ADD); RUN, CMD and ENTRYPOINT are
left to the shell in the container.
"""
from minirun.errors import MinirunError


class LexError(MinirunError):
    pass


class _Scanner:
    def __init__(self, text):
        self.text = text
        self.pos = 0

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self):
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch


class Lexer:
    def __init__(self, escape="\\"):
        self.escape = escape

    def process_word(self, word, env):
        """One word: quotes removed, variables replaced (whitespace kept)."""
        return "".join(self._words(word, env, split=False)[0] or [""])

    def process_words(self, text, env):
        """Split on unquoted whitespace, then process each word."""
        return self._words(text, env, split=True)

    def _words(self, text, env, split):
        sc = _Scanner(text)
        words, cur, in_word = [], [], False
        while True:
            ch = sc.peek()
            if not ch:
                break
            if split and ch in " \t\r\n":
                sc.next()
                if in_word:
                    words.append("".join(cur))
                    cur, in_word = [], False
                continue
            in_word = True
            if ch == "'":
                sc.next()
                cur.append(self._single(sc))
            elif ch == '"':
                sc.next()
                cur.append(self._double(sc, env))
            elif ch == "$":
                cur.append(self._dollar(sc, env))
            elif ch == self.escape:
                sc.next()
                nxt = sc.next()
                cur.append(nxt if nxt else self.escape)
            else:
                cur.append(sc.next())
        if in_word or not split:
            words.append("".join(cur))
        return words

    @staticmethod
    def _single(sc):
        out = []
        while True:
            ch = sc.next()
            if not ch:
                raise LexError("unexpected end of statement while looking for matching '")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double(self, sc, env):
        out = []
        while True:
            ch = sc.peek()
            if not ch:
                raise LexError('unexpected end of statement while looking for matching "')
            if ch == '"':
                sc.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar(sc, env))
            elif ch == self.escape:
                sc.next()
                nxt = sc.peek()
                if nxt in ('"', "$", self.escape):
                    out.append(sc.next())
                else:
                    out.append(ch)
            else:
                out.append(sc.next())

    def _dollar(self, sc, env):
        sc.next()  # the $
        ch = sc.peek()
        if ch != "{":
            name = self._name(sc)
            if not name:
                return "$"
            return env.get(name, "")
        sc.next()
        name = self._name(sc)
        if not name:
            raise LexError("bad substitution: missing variable name after ${")
        ch = sc.next()
        if ch == "}":
            return env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = sc.next()
        if ch not in ("-", "+", "?"):
            raise LexError(f"unsupported modifier ({ch or 'end of text'}) in substitution "
                           f"of ${{{name}}}")
        word = self._until_brace(sc, env)
        value = env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set else word
        if ch == "+":
            return word if is_set else ""
        if not is_set:
            raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
        return value

    def _until_brace(self, sc, env):
        out = []
        while True:
            ch = sc.peek()
            if not ch:
                raise LexError("missing '}' in substitution")
            if ch == "}":
                sc.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar(sc, env))
            elif ch == "'":
                sc.next()
                out.append(self._single(sc))
            elif ch == '"':
                sc.next()
                out.append(self._double(sc, env))
            elif ch == self.escape:
                sc.next()
                out.append(sc.next())
            else:
                out.append(sc.next())

    @staticmethod
    def _name(sc):
        out = []
        ch = sc.peek()
        if ch.isdigit():  # $1 ...: positional, one digit
            return sc.next()
        while ch and (ch.isalnum() or ch == "_") and ch.isascii():
            out.append(sc.next())
            ch = sc.peek()
        return "".join(out)
