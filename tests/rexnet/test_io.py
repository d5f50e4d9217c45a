"""rexnet.io.command_line: the command written to an experiment's command.txt reproduces the invocation."""

import shlex

import click
from click.testing import CliRunner

from rexnet.io import command_line


@click.command()
@click.option("--runs", "runs_dir", default="runs/x")
@click.option("--epochs", type=int, default=6)
@click.option("--train/--no-train", default=True)
@click.option("--quick", is_flag=True)
@click.option("--model", "models", multiple=True)
@click.option("--note")
def demo(**_):
    click.echo(command_line(click.get_current_context(), "experiments/demo.py"))


def invoked(args: list[str]) -> str:
    result = CliRunner().invoke(demo, args)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_defaults_are_left_out():
    assert invoked([]) == "python experiments/demo.py"
    assert invoked(["--epochs", "6"]) == "python experiments/demo.py --epochs 6"  # typed, though equal to the default


def test_options_flags_and_multiple_values_are_written_as_typed():
    line = invoked(["--runs", "/tmp/my runs", "--no-train", "--quick", "--model", "a", "--model", "b", "--epochs", "2"])
    # In the command's option order, under each option's first spelling (--runs, not --runs-dir).
    assert shlex.split(line) == [
        "python",
        "experiments/demo.py",
        "--runs",
        "/tmp/my runs",
        "--epochs",
        "2",
        "--no-train",
        "--quick",
        "--model",
        "a",
        "--model",
        "b",
    ]
    assert "False" not in line and "True" not in line
    assert invoked(["--train"]) == "python experiments/demo.py --train"


def test_the_line_reruns_to_the_same_parameters():
    args = ["--runs", "r d", "--no-train", "--model", "a", "--note", "x y"]
    first = invoked(args)
    assert invoked(shlex.split(first)[2:]) == first
