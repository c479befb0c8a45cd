"""`minirun completion bash|zsh|fish`: the shell completion script (click's).

    bash:  minirun completion bash > /etc/bash_completion.d/minirun
    zsh:   minirun completion zsh > "${fpath[1]}/_minirun"
    fish:  minirun completion fish > ~/.config/fish/completions/minirun.fish
"""
import click


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    Examples:
      minirun completion bash   # then: source <(minirun completion bash)
      minirun completion zsh    # saved as _minirun in a directory of $fpath
      minirun completion fish   # saved in ~/.config/fish/completions/minirun.fish
    """
    from click.shell_completion import get_completion_class

    from minirun.cli.app import cli

    comp = get_completion_class(shell)(cli, {}, "minirun", "_MINIRUN_COMPLETE")
    click.echo(comp.source())
