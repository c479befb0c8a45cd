"""Compose files -> one merged, interpolated document, as the Compose spec reads them.

    files      -f FILE (repeatable), else compose.yaml / compose.yml /
               docker-compose.yaml / docker-compose.yml in the working directory,
               plus its override file (compose.override.yaml, ...) if there is one
    .env       in the project directory, or every --env-file instead; variables of
               the environment win over it
    ${VAR}     interpolation in every string: $VAR, ${VAR}, ${VAR:-default},
               ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt},
               $$ for a literal $ (defaults may nest: ${A:-${B}})
    YAML       PyYAML's safe loader: anchors, aliases, merge keys `<<: *x`;
               `x-` extension fields are dropped after interpolation
    extends    a service built on another of the same or another file (extends.py),
               resolved per file before the merge
    merge      later files override earlier ones by the spec's rules (model.merge)
    name       -p, else COMPOSE_PROJECT_NAME, else the top-level `name:`, else the
               project directory's name, normalised as Compose does
"""
import os
import re

from minirun.errors import MinirunError

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml",
                  "docker-compose.override.yaml", "docker-compose.override.yml")
PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ComposeError(MinirunError):
    """A mistake in the compose files or the command line (exit 1, one line)."""

    exit_code = 1


# --- .env files ------------------------------------------------------------------
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*(.*?))?\s*$")


def parse_env_file(path, lookup=None):
    """KEY=VALUE lines (Compose's dotenv): comments, `export`, single quotes
    literal, double quotes with \\n escapes, unquoted values up to ` #`.
    `lookup` interpolates ${VAR} in unquoted and double-quoted values."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ComposeError(f"couldn't read env file {path}: {e.strerror.lower()}") from None
    out = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _ENV_LINE.match(line)
        if not m:
            raise ComposeError(f"{path} line {n}: unexpected character in {line.strip()!r}")
        key, value = m.group(1), m.group(2)
        if value is None:
            # KEY alone: the value comes from the environment, if any
            if key in os.environ:
                out[key] = os.environ[key]
            continue
        if value[:1] == "'" and value.endswith("'") and len(value) > 1:
            value = value[1:-1]
        elif value[:1] == '"' and value.endswith('"') and len(value) > 1:
            value = value[1:-1].replace("\\n", "\n").replace('\\"', '"')
            if lookup:
                value = interpolate(value, lambda k: out.get(k, lookup(k)), f"{path}:{n}")
        else:
            value = re.split(r"\s+#", value, 1)[0].strip()
            if lookup:
                value = interpolate(value, lambda k: out.get(k, lookup(k)), f"{path}:{n}")
        out[key] = value
    return out


# --- interpolation --------------------------------------------------------------
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text, lookup, where):
    """Substitute variables in `text`; lookup(name) -> value or None (unset)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            value, i = _braced(text, i + 2, lookup, where)
            out.append(value)
        else:
            m = _NAME.match(text, i + 1)
            if not m:
                raise ComposeError(f"invalid interpolation format for {where}: {text!r}; "
                                   f"you may need to escape any $ with another $")
            out.append(lookup(m.group(0)) or "")
            i = m.end()
    return "".join(out)


def _braced(text, i, lookup, where):
    """${...} starting after '${': (value, index after the closing brace)."""
    m = _NAME.match(text, i)
    if not m:
        raise ComposeError(f"invalid interpolation format for {where}: {text!r}; "
                           f"you may need to escape any $ with another $")
    name, i = m.group(0), m.end()
    op = ""
    for candidate in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(candidate, i):
            op = candidate
            i += len(candidate)
            break
    # The word runs to the matching brace; nested ${...} in it are expanded.
    word, depth, start = [], 0, i
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            word.append("${")
            i += 2
            continue
        if text[i] == "}":
            if depth == 0:
                break
            depth -= 1
        word.append(text[i])
        i += 1
    else:
        raise ComposeError(f"invalid interpolation format for {where}: {text!r}: "
                           f"missing closing brace")
    if not op and i != start:
        raise ComposeError(f"invalid interpolation format for {where}: {text!r}")
    raw_word = "".join(word)
    value = lookup(name)
    i += 1
    if op in ("", ):
        return value or "", i
    unset = value is None
    empty = unset or value == ""
    missing = empty if op.startswith(":") else unset
    if op.endswith("-"):
        return (interpolate(raw_word, lookup, where) if missing else value), i
    if op.endswith("?"):
        if missing:
            msg = interpolate(raw_word, lookup, where)
            raise ComposeError(f"required variable {name} is missing a value"
                               + (f": {msg}" if msg else ""))
        return value, i
    # "+": the alternative when set
    return ("" if missing else interpolate(raw_word, lookup, where)), i


def interpolate_tree(node, lookup, path=""):
    """Interpolate every string of a loaded YAML tree (keys are left alone)."""
    if isinstance(node, dict):
        return {k: interpolate_tree(v, lookup, f"{path}.{k}" if path else str(k))
                for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, lookup, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        return interpolate(node, lookup, path)
    return node


def drop_extensions(node):
    """x-* keys are for anchors and tools: gone once the file is read."""
    if isinstance(node, dict):
        return {k: drop_extensions(v) for k, v in node.items()
                if not (isinstance(k, str) and k.startswith("x-"))}
    if isinstance(node, list):
        return [drop_extensions(v) for v in node]
    return node


# --- files ----------------------------------------------------------------------------
def find_files(files=(), workdir=None):
    """The compose files to read, as absolute paths."""
    workdir = os.path.abspath(workdir or os.getcwd())
    if files:
        out = []
        for f in files:
            path = f if os.path.isabs(f) else os.path.join(workdir, f)
            if not os.path.isfile(path):
                raise ComposeError(f"open {path}: no such file or directory")
            out.append(path)
        return out
    d = workdir
    while True:
        for name in DEFAULT_FILES:
            if os.path.isfile(os.path.join(d, name)):
                out = [os.path.join(d, name)]
                for over in OVERRIDE_FILES:
                    if os.path.isfile(os.path.join(d, over)):
                        out.append(os.path.join(d, over))
                        break
                return out
        parent = os.path.dirname(d)
        if parent == d:
            raise ComposeError("no configuration file provided: not found (looked for "
                               + ", ".join(DEFAULT_FILES) + ")")
        d = parent


def _yaml12_loader():
    """PyYAML's safe loader with YAML 1.2's booleans: Compose parses files as
    YAML 1.2, where `on`, `off`, `yes` and `no` are strings (a service may be
    named `off`); only true/false are booleans."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    bool_tag = "tag:yaml.org,2002:bool"
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != bool_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    return Loader


def read_yaml(path):
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=_yaml12_loader())  # noqa: S506 (a SafeLoader)
    except OSError as e:
        raise ComposeError(f"open {path}: {e.strerror.lower()}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ComposeError(f"yaml: {os.path.basename(path)}{where}: {problem}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ComposeError(f"{os.path.basename(path)}: top-level object must be a mapping")
    return doc


def normalize_project_name(name):
    """Compose's rule for a name from a directory: lower case, only [a-z0-9_-],
    starting with a letter or digit."""
    name = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return name.lstrip("_-")


def check_project_name(name, origin):
    if not PROJECT_NAME_RE.match(name or ""):
        raise ComposeError(f"invalid project name {name!r} ({origin}): it must contain only "
                           f"lowercase letters, decimal digits, dashes and underscores, and "
                           f"begin with a lowercase letter or decimal digit")
    return name


class Source:
    """What `load` read: the merged document and where it came from."""

    def __init__(self, doc, files, project_dir, name, environment):
        self.doc = doc
        self.files = files
        self.project_dir = project_dir
        self.name = name
        self.environment = environment   # what interpolation saw (.env + os.environ)


def load(files=(), project_name=None, env_files=None, project_dir=None, workdir=None,
         environ=None):
    """Read, interpolate and merge the compose files (not yet validated: model.py)."""
    from minirun.compose import model

    environ = dict(os.environ if environ is None else environ)
    paths = find_files(files, workdir)
    project_dir = os.path.abspath(project_dir or os.path.dirname(paths[0]))
    dotenv = {}
    if env_files:
        wanted = [f if os.path.isabs(f) else os.path.join(workdir or os.getcwd(), f)
                  for f in env_files]
    else:
        default = os.path.join(project_dir, ".env")
        wanted = [default] if os.path.isfile(default) else []
    for path in wanted:
        dotenv.update(parse_env_file(path, lambda k: environ.get(k, dotenv.get(k))))
    env = dict(dotenv, **environ)

    from minirun.compose import extends

    def read(path):
        return drop_extensions(interpolate_tree(read_yaml(path), env.get))

    merged = None
    for path in paths:
        doc = extends.resolve(read(path), path, read)
        merged = doc if merged is None else model.merge(merged, doc)

    name = project_name
    origin = "-p"
    if not name and env.get("COMPOSE_PROJECT_NAME"):
        name, origin = env["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME"
    if not name and merged.get("name"):
        name, origin = str(merged["name"]), "the name: field"
    if name:
        check_project_name(name, origin)
    else:
        name = normalize_project_name(os.path.basename(project_dir))
        if not name:
            raise ComposeError(f"project name can't be derived from {project_dir!r}: use -p")
    return Source(merged, paths, project_dir, name, env)
