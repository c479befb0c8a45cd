"""`minirun --help` is good enough to learn from: every command is described,
every flag has a help text, every command shows an example, and every example
still parses against the real command line (so help cannot rot when a flag
is renamed).  Examples live in the docstrings or in minirun/cli/examples.py.
"""
import re
import shlex

import click
import pytest
from click.testing import CliRunner

from minirun.cli import COMMANDS, examples
from minirun.cli.app import cli

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root


def resolve(name):
    return cli.get_command(click.Context(cli, info_name="minirun"), name)


def all_commands():
    """(path, click command) for every visible command, both sides of the
    runc/Docker dispatchers (run, ps, exec), each object once."""
    seen, out = set(), []

    def walk(path, cmd):
        for target in examples._targets(cmd):
            if getattr(target, "hidden", False) or id(target) in seen:
                continue
            seen.add(id(target))
            out.append((path, target))
            if isinstance(target, click.Group):
                for name in sorted(target.commands):
                    walk(f"{path} {name}", target.commands[name])

    out.append(("", cli))
    for name in sorted(COMMANDS):
        walk(name, resolve(name))
    return out


COMMANDS_AND_PATHS = all_commands()
IDS = [f"{p or 'minirun'}:{type(c).__name__}:{c.name}" for p, c in COMMANDS_AND_PATHS]


def rendered_help(path, cmd):
    ctx = click.Context(cmd, info_name=f"minirun {path}".strip())
    return cmd.get_help(ctx)


@pytest.mark.parametrize("path,cmd", COMMANDS_AND_PATHS, ids=IDS)
def test_command_is_described_with_an_example(path, cmd):
    assert (cmd.help or "").strip(), f"`minirun {path}` has no help text"
    text = rendered_help(path, cmd)
    assert re.search(r"^\s*Examples?:\n\s+.*minirun", text, re.M), \
        f"`minirun {path} --help` shows no example: add one to minirun/cli/examples.py\n{text}"


@pytest.mark.parametrize("path,cmd", COMMANDS_AND_PATHS, ids=IDS)
def test_every_flag_is_described(path, cmd):
    missing = ["/".join(p.opts) for p in cmd.params
               if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
               and "--help" not in p.opts]
    assert not missing, f"`minirun {path}`: flags without help: {missing}"


def parse(args):
    """Parse a command line as minirun would, down to the command, without running it."""
    ctx = cli.make_context("minirun", list(args))
    while isinstance(ctx.command, click.Group):
        protected = getattr(ctx, "_protected_args", None)
        if protected is None:
            protected = ctx.protected_args
        name, cmd, rest = ctx.command.resolve_command(ctx, [*protected, *ctx.args])
        ctx = cmd.make_context(name, rest, parent=ctx)
    return ctx


def example_lines():
    for path, cmd in COMMANDS_AND_PATHS:
        for line in rendered_help(path, cmd).splitlines():
            for segment in re.split(r"\s(?:\||&&|;)\s", line.strip()):
                if segment.startswith("minirun "):
                    yield path, segment


EXAMPLES = sorted(set(example_lines()))


@pytest.mark.parametrize("path,line", EXAMPLES, ids=[line for _, line in EXAMPLES])
def test_example_parses(path, line):
    args = shlex.split(line, comments=True)[1:]
    try:
        ctx = parse(args)
    except click.ClickException as e:
        pytest.fail(f"example of `minirun {path}` does not parse: {line}\n{e.format_message()}")
    assert ctx.command is not cli


@pytest.mark.parametrize("path,cmd", [(p, c) for p, c in COMMANDS_AND_PATHS if c is not cli],
                         ids=IDS[1:])
def test_an_example_runs_the_command_itself(path, cmd):
    """`minirun kill -s HUP web` under `container kill` would parse, but as runc's kill."""
    reached = set()
    for where, line in EXAMPLES:
        if where == path:
            try:
                reached.add(id(parse(shlex.split(line, comments=True)[1:]).command))
            except click.ClickException:
                pass
    targets = [cmd] + (list(cmd.commands.values()) if isinstance(cmd, click.Group) else [])
    assert reached & {id(t) for t in targets}, \
        f"no example of `minirun {path}` reaches that command: {[l for w, l in EXAMPLES if w == path]}"


def test_a_broken_example_would_be_caught():
    with pytest.raises(click.UsageError):
        parse(["logs", "--no-such-flag", "web"])
    with pytest.raises(click.UsageError):
        parse(["image", "nonsense"])
    assert parse(["run", "--bundle", "images/out/busybox", "demo"]).command.params[0].name == "bundle"


def test_examples_table_names_only_real_commands():
    for key in list(examples.EXAMPLES) + list(examples.ALIASES) + list(examples.ALIASES.values()):
        group, _, sub = key.partition(" ")
        assert group in COMMANDS, key
        if sub:
            assert sub in resolve(group).commands, key


@pytest.mark.parametrize("argv", [["--help"], ["logs", "--help"], ["image", "ls", "--help"],
                                  ["ps", "--help"], ["run", "--bundle", "x", "--help"]])
def test_help_through_the_real_entry_point(argv):
    result = CliRunner().invoke(cli, argv, prog_name="minirun")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and "minirun " in result.output
