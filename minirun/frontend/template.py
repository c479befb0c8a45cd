"""Go's text/template, the subset Docker's --format uses, with Docker's functions.

    {{.Field.Sub}} {{.}} {{$}} {{$v := PIPE}} {{$v}}   fields, dot, variables
    {{PIPE | fn ARG}} (fn ARG) "str" `raw` 12 true     pipelines, calls, literals
    {{if P}}..{{else if P}}..{{else}}..{{end}}          if / else if / else
    {{range P}}..{{else}}..{{end}} {{range $i, $v := P}}  range over lists and maps
    {{with P}}..{{else}}..{{end}}                       with
    {{- trims -}} spaces around an action; {{/* comments */}}
    functions: json join split upper lower title len index println print printf
               truncate pad eq ne lt le gt ge and or not

`table TEMPLATE` (list commands) prints a header made from the field names and
aligns the tab-separated columns (Docker's tabwriter: min width 10, padding 3).
A template that does not parse is a BadOption (exit 125) naming line:column;
errors while executing name the action, as Go does.  A missing key of a map
prints "<no value>" (inspect documents); with strict=True a missing field of
the top object is an error (Docker's typed list rows).
"""
import json
import re

from minirun.errors import BadOption


class TemplateError(BadOption):
    pass


class _NoValue:
    def __repr__(self):
        return "<no value>"


NO_VALUE = _NoValue()


# --- lexer -------------------------------------------------------------------------------
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\)(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<comma>,)
""", re.X)


def _position(text, offset):
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{col}"


def _lex(text):
    """-> [("text", str, pos) | ("action", [tokens], pos)]."""
    out, i = [], 0
    while True:
        j = text.find("{{", i)
        if j < 0:
            out.append(("text", text[i:], i))
            return out
        start = j + 2
        body_start = start
        literal = text[i:j]
        if text.startswith("- ", start) or text.startswith("-\t", start) or \
                text.startswith("-\n", start):
            literal = literal.rstrip()
            body_start = start + 1
        out.append(("text", literal, i))
        if text.startswith("/*", _skip_space(text, body_start)):
            k = text.find("*/", body_start)
            end = text.find("}}", k + 2) if k >= 0 else -1
            if k < 0 or end < 0:
                raise TemplateError(f"template: :{_position(text, j)}: unclosed comment")
            i = end + 2
            if text[k + 2:end].strip() == "-":
                i = _trim_right(text, i)
            continue
        tokens, k = [], body_start
        while True:
            if k >= len(text):
                raise TemplateError(f"template: :{_position(text, j)}: unclosed action")
            if text.startswith("}}", k):
                i = k + 2
                break
            if text.startswith(" -}}", k) or text.startswith("\t-}}", k) or \
                    text.startswith("\n-}}", k):
                i = _trim_right(text, k + 4)
                break
            m = _TOKEN.match(text, k)
            if not m:
                raise TemplateError(f"template: :{_position(text, k)}: unexpected "
                                    f"{text[k]!r} in command")
            if m.lastgroup != "space":
                tokens.append((m.lastgroup, m.group(), k))
            k = m.end()
        out.append(("action", tokens, j))


def _skip_space(text, k):
    while k < len(text) and text[k] in " \t\n":
        k += 1
    return k


def _trim_right(text, k):
    return _skip_space(text, k)


# --- parser ------------------------------------------------------------------------------
class Template:
    def __init__(self, source, nodes, strict=False):
        self.source = source
        self.nodes = nodes
        self.strict = strict

    def execute(self, data, strict=None):
        out = []
        strict = self.strict if strict is None else strict
        _run(self.nodes, _Scope(data, {"$": data}, strict, self.source), out)
        return "".join(out)


class _Parser:
    def __init__(self, source):
        self.source = source
        self.items = _lex(source)
        self.i = 0

    def error(self, pos, msg):
        raise TemplateError(f"template: :{_position(self.source, pos)}: {msg}")

    def parse(self, until=()):
        """Nodes up to an action whose keyword is in `until`; returns (nodes, keyword, item)."""
        nodes = []
        while self.i < len(self.items):
            kind, value, pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                if value:
                    nodes.append(("text", value))
                continue
            if not value:
                self.error(pos, "missing value for command")
            head = value[0]
            word = head[1] if head[0] == "ident" else None
            if word in ("end", "else"):
                if word not in until:
                    self.error(pos, f"unexpected {{{{{word}}}}}")
                return nodes, word, value
            if word in ("if", "range", "with"):
                nodes.append(self.control(word, value[1:], pos))
            elif word in ("define", "template", "block", "break", "continue"):
                self.error(pos, f"{{{{{word}}}}} is not supported in --format")
            else:
                nodes.append(("action", self.pipeline(value, pos)))
        if until:
            self.error(len(self.source), "unexpected EOF: missing {{end}}")
        return nodes, None, None

    def control(self, word, tokens, pos):
        if not tokens:
            self.error(pos, f"missing value for {word}")
        pipe = self.pipeline(tokens, pos, allow_two=word == "range")
        body, end, rest = self.parse(("end", "else"))
        other = []
        if end == "else":
            if len(rest) > 1 and rest[1][0] == "ident" and rest[1][1] in ("if", "with") \
                    and word in ("if", "with"):
                # {{else if ...}}: a nested if that shares our {{end}}
                other = [self.control(rest[1][1], rest[2:], rest[1][2])]
                return (word, pipe, body, other)
            if len(rest) > 1:
                self.error(rest[1][2], "unexpected token after else")
            other, end, rest = self.parse(("end",))
        if len(rest) > 1:
            self.error(rest[1][2], "unexpected token after end")
        return (word, pipe, body, other)

    def pipeline(self, tokens, pos, allow_two=False):
        """-> (declared variable names, [commands]); a command is a list of operands."""
        decl = []
        if tokens and tokens[0][0] == "variable":
            names = [tokens[0]]
            k = 1
            if allow_two and len(tokens) > 2 and tokens[1][0] == "comma" and \
                    tokens[2][0] == "variable":
                names.append(tokens[2])
                k = 3
            if len(tokens) > k and tokens[k][0] in ("declare", "assign"):
                decl = [n[1] for n in names]
                tokens = tokens[k + 1:]
                if not tokens:
                    self.error(pos, "missing value for command")
        cmds, cmd, k = [], [], 0
        while k < len(tokens):
            t = tokens[k]
            if t[0] == "pipe":
                if not cmd:
                    self.error(t[2], "missing command before |")
                cmds.append(cmd)
                cmd = []
                k += 1
                continue
            operand, k = self.operand(tokens, k)
            cmd.append(operand)
        if not cmd:
            self.error(pos, "missing value for command")
        cmds.append(cmd)
        for c in cmds[1:]:
            if c[0][0] not in ("func",):
                self.error(pos, "non executable command in pipeline stage")
        return (decl, cmds)

    def operand(self, tokens, k):
        kind, text, pos = tokens[k]
        if kind == "lparen":
            depth, j = 1, k + 1
            while j < len(tokens) and depth:
                if tokens[j][0] == "lparen":
                    depth += 1
                elif tokens[j][0] == "rparen":
                    depth -= 1
                j += 1
            if depth:
                self.error(pos, "unclosed left paren")
            inner = self.pipeline(tokens[k + 1:j - 1], pos)
            fields = [f for f in tokens[j - 1][1][1:].split(".") if f]
            return ("paren", inner, fields, pos), j
        if kind == "field":
            return ("field", [f for f in text.split(".") if f], pos), k + 1
        if kind == "variable":
            name, *fields = text.split(".")
            return ("var", name, fields, pos), k + 1
        if kind == "string":
            return ("const", _unquote(text, pos, self)), k + 1
        if kind == "raw":
            return ("const", text[1:-1]), k + 1
        if kind == "char":
            return ("const", ord(_unquote('"' + text[1:-1] + '"', pos, self))), k + 1
        if kind == "number":
            try:
                value = int(text, 0)
            except ValueError:
                value = float(text)
            return ("const", value), k + 1
        if kind == "ident":
            if text in ("true", "false"):
                return ("const", text == "true"), k + 1
            if text == "nil":
                return ("const", None), k + 1
            name = text.split(".")[0]
            if name not in FUNCTIONS:
                self.error(pos, f'function "{name}" not defined')
            return ("func", name, pos), k + 1
        self.error(pos, f"unexpected {text!r} in operand")


def _unquote(text, pos, parser):
    try:
        return json.loads(text)
    except ValueError:
        parser.error(pos, f"bad string syntax: {text}")


def parse(source, strict=False):
    """A Template, or TemplateError (exit 125) naming line:column."""
    try:
        nodes, _, _ = _Parser(source).parse()
    except TemplateError as e:
        raise TemplateError(f"template parsing error: {e}") from None
    return Template(source, nodes, strict)


# --- execution --------------------------------------------------------------------------
class _Scope:
    def __init__(self, dot, variables, strict, source):
        self.dot, self.vars, self.strict, self.source = dot, variables, strict, source

    def child(self, dot):
        return _Scope(dot, dict(self.vars), self.strict, self.source)


def _fail(scope, pos, what, msg):
    raise TemplateError(f'template: :{_position(scope.source, pos)}: executing "" at '
                        f'<{what}>: {msg}')


def _run(nodes, scope, out):
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "action":
            decl, _ = node[1]
            value = _pipeline(node[1], scope)
            if not decl:
                out.append(_text(value))
        elif kind in ("if", "with"):
            _, pipe, body, other = node
            value = _pipeline(pipe, scope)
            if _truth(value):
                _run(body, scope.child(value) if kind == "with" else scope, out)
            else:
                _run(other, scope, out)
        elif kind == "range":
            _, pipe, body, other = node
            decl, _ = pipe
            value = _pipeline((None, pipe[1]), scope)
            if isinstance(value, dict):
                pairs = [(k, value[k]) for k in sorted(value)]
            elif isinstance(value, (list, tuple)):
                pairs = list(enumerate(value))
            elif value is None or value is NO_VALUE:
                pairs = []
            elif isinstance(value, int) and not isinstance(value, bool):
                pairs = [(i, i) for i in range(value)]
            else:
                raise TemplateError(f"template: range can't iterate over {_text(value)}")
            if not pairs:
                _run(other, scope, out)
            for key, item in pairs:
                inner = scope.child(item)
                if len(decl) == 1:
                    inner.vars[decl[0]] = item
                elif len(decl) == 2:
                    inner.vars[decl[0]], inner.vars[decl[1]] = key, item
                _run(body, inner, out)


def _pipeline(pipe, scope):
    decl, cmds = pipe
    value = None
    for n, cmd in enumerate(cmds):
        value = _command(cmd, scope, value, n > 0)
    for name in decl or ():
        scope.vars[name] = value
    return value


def _command(cmd, scope, piped, has_piped):
    head = cmd[0]
    if head[0] == "func":
        args = [_operand(op, scope) for op in cmd[1:]]
        if has_piped:
            args.append(piped)
        try:
            return FUNCTIONS[head[1]](*args)
        except TemplateError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            _fail(scope, head[2], head[1], f"error calling {head[1]}: {e}")
    if len(cmd) > 1:
        _fail(scope, cmd[1][-1] if isinstance(cmd[1][-1], int) else 0, "",
              "can't give argument to non-function")
    return _operand(head, scope)


def _operand(op, scope):
    kind = op[0]
    if kind == "const":
        return op[1]
    if kind == "field":
        return _fields(scope.dot, op[1], scope, op[2], top=scope.strict)
    if kind == "var":
        _, name, fields, pos = op
        if name not in scope.vars:
            _fail(scope, pos, name, f"undefined variable: {name}")
        return _fields(scope.vars[name], fields, scope, pos)
    if kind == "paren":
        _, inner, fields, pos = op
        return _fields(_pipeline(inner, scope), fields, scope, pos)
    if kind == "func":
        return _command([op], scope, None, False)
    raise AssertionError(kind)


def _fields(value, names, scope, pos, top=False):
    for i, name in enumerate(names):
        if isinstance(value, dict):
            if name in value or isinstance(value, _Headers):
                value = value[name]
            elif top and i == 0:
                _fail(scope, pos, "." + name, f"can't evaluate field {name}")
            else:
                value = NO_VALUE
        elif value is None or value is NO_VALUE:
            if value is None:
                _fail(scope, pos, "." + ".".join(names[:i + 1]),
                      f"nil pointer evaluating interface {{}}.{name}")
            return NO_VALUE
        else:
            _fail(scope, pos, "." + ".".join(names[:i + 1]),
                  f"can't evaluate field {name} in type {_go_type(value)}")
    return value


def _go_type(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    return "interface {}"


def _truth(value):
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def _text(value):
    """Go's fmt %v of a JSON-like value."""
    if value is None or value is NO_VALUE:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_inner(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    return str(value)


def _inner(value):
    return "<nil>" if value is None else _text(value)


def _go_float(v):
    if v != v or v in (float("inf"), float("-inf")):
        return {True: "NaN"}.get(v != v, "+Inf" if v > 0 else "-Inf")
    digits = repr(v)
    mantissa = f"{v:e}"
    exp = int(mantissa.split("e")[1])
    if exp < -4 or exp >= 21:
        m, e = f"{float(digits):.16e}".split("e")
        m = m.rstrip("0").rstrip(".")
        return f"{m}e{'+' if int(e) >= 0 else '-'}{abs(int(e)):02d}"
    return digits[:-2] if digits.endswith(".0") else digits


# --- functions (Docker's set plus Go's builtins) --------------------------------------------
def _json(value):
    if value is NO_VALUE:
        value = None
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _join(items, sep):
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"wrong type for value; expected []string; got {_go_type(items)}")
    return sep.join(_text(i) for i in items)


def _split(text, sep):
    if not isinstance(text, str):
        raise TypeError(f"wrong type for value; expected string; got {_go_type(text)}")
    return text.split(sep) if sep else list(text)


def _title(text):
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), str(text))


def _len(value):
    if value is None or value is NO_VALUE:
        raise TypeError("len of nil pointer")
    if not isinstance(value, (str, list, tuple, dict)):
        raise TypeError(f"len of type {_go_type(value)}")
    return len(value)


def _index(value, *keys):
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, NO_VALUE)
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise IndexError(f"index out of range: {key}")
            value = value[key]
        else:
            raise TypeError(f"can't index item of type {_go_type(value)}")
    return value


def _print(*args):
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_text(a))
    return "".join(out)


def _printf(fmt, *args):
    def conv(m):
        spec = m.group(0)
        if spec == "%%":
            return "%"
        if not conv.args:
            return f"%!{spec[-1]}(MISSING)"
        a = conv.args.pop(0)
        if spec[-1] in "vs":
            return (spec[:-1] + "s") % _text(a)
        if spec[-1] == "q":
            return json.dumps(_text(a))
        if spec[-1] == "d" and isinstance(a, (int, float)):
            return (spec) % int(a)
        try:
            return spec % a
        except TypeError:
            return f"%!{spec[-1]}({_go_type(a)}={_text(a)})"
    conv.args = list(args)
    return re.sub(r"%[-+ #0]*\d*(?:\.\d+)?[vsdqfgxXeEt%]", conv, fmt)


def _compare(op):
    def fn(a, b):
        a = None if a is NO_VALUE else a
        b = None if b is NO_VALUE else b
        if op in ("lt", "le", "gt", "ge") and type(a) is not type(b) and not (
                isinstance(a, (int, float)) and isinstance(b, (int, float))):
            raise TypeError("incompatible types for comparison")
        return {"eq": lambda: a == b, "ne": lambda: a != b, "lt": lambda: a < b,
                "le": lambda: a <= b, "gt": lambda: a > b, "ge": lambda: a >= b}[op]()
    return fn


def _and(*args):
    for a in args:
        if not _truth(a):
            return a
    return args[-1]


def _or(*args):
    for a in args:
        if _truth(a):
            return a
    return args[-1]


def _truncate(text, n):
    return str(text)[:n]


def _pad(text, left, right):
    return " " * left + str(text) + " " * right


FUNCTIONS = {
    "json": _json, "join": _join, "split": _split, "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(), "title": _title, "len": _len, "index": _index,
    "println": lambda *a: " ".join(_text(x) for x in a) + "\n", "print": _print,
    "printf": _printf, "truncate": _truncate, "pad": _pad,
    "eq": _compare("eq"), "ne": _compare("ne"), "lt": _compare("lt"), "le": _compare("le"),
    "gt": _compare("gt"), "ge": _compare("ge"), "and": _and, "or": _or,
    "not": lambda a: not _truth(a),
}


# --- list output ------------------------------------------------------------------------
# Docker's column titles for the fields of its list commands.
HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
           "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
           "Status": "STATUS", "State": "STATE", "Size": "SIZE", "Labels": "LABELS",
           "Mounts": "MOUNTS", "Networks": "NETWORKS", "Repository": "REPOSITORY",
           "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED", "Name": "NAME",
           "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
           "Container": "CONTAINER", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
           "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
           "CreatedBy": "CREATED BY", "Comment": "COMMENT", "IPv6": "IPV6",
           "Internal": "INTERNAL", "Subnet": "SUBNET", "Gateway": "GATEWAY"}


class _Headers(dict):
    def __missing__(self, key):
        return HEADERS.get(key, re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key).upper())


def render_list(fmt, items):
    """Lines for a list command's --format: `table TEMPLATE` gets a header and
    aligned columns; any other template is executed once per item."""
    table = fmt.startswith("table ") or fmt == "table"
    body = (fmt[6:] if table else fmt).strip(" ")
    tmpl = parse(body.replace("\\t", "\t").replace("\\n", "\n"), strict=True)
    if not table:
        return [tmpl.execute(item) for item in items]
    lines = [tmpl.execute(_Headers(), strict=False)]
    lines += [tmpl.execute(item) for item in items]
    return tabwriter(lines)


def tabwriter(lines, minwidth=10, padding=3):
    """Go's text/tabwriter as Docker sets it up: tab-terminated cells padded to
    their column's width (at least minwidth), the last cell as it is."""
    rows = [line.split("\t") for line in "\n".join(lines).split("\n")]
    widths = {}
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, minwidth), len(cell) + padding)
    return ["".join(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])) + cells[-1]
            for cells in rows]


def render(fmt, data):
    """One document through a template (inspect -f); "json" prints it as JSON."""
    if fmt.strip() == "json":
        return json.dumps(data)
    return parse(fmt).execute(data)
